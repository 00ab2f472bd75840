"""The resolved run configuration as read-only, highlighted TOML."""

from __future__ import annotations

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static


class ConfigView(VerticalScroll):
    """Scrollable TOML; not an editor, because a running config cannot change."""

    DEFAULT_CSS = """
    ConfigView {
        padding: 0 1;
    }
    ConfigView > Static {
        width: auto;
    }
    """

    def __init__(
        self,
        toml_text: str,
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's widget signature
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.toml_text = toml_text

    def compose(self) -> ComposeResult:
        yield Static(self._render_toml(), id="config-text")

    def show_toml(self, toml_text: str) -> None:
        """Replace the shown TOML, for example with the engine's resolved copy."""
        if toml_text == self.toml_text:
            return
        self.toml_text = toml_text
        self.query_one("#config-text", Static).update(self._render_toml())

    def _render_toml(self) -> Syntax:
        return Syntax(self.toml_text, "toml", theme="ansi_dark", background_color="default", word_wrap=False)
