"""The text generated at the latest eval."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from gpttui.state import RunView


class SampleView(VerticalScroll):
    """A scrollable view of the newest sample, titled with its step."""

    DEFAULT_CSS = """
    SampleView {
        border: round $primary-muted;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    SampleView > Static {
        width: 1fr;
    }
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's widget signature
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "sample"
        self._shown_step: int | None = None

    def compose(self) -> ComposeResult:
        yield Static("No sample yet: one is generated at each eval.", markup=False, id="sample-text")

    def show(self, view: RunView) -> None:
        """Show the sample of the latest eval, if it is newer than the one shown."""
        result = view.last_eval
        if result is None or result.step == self._shown_step:
            return
        self._shown_step = result.step
        self.border_title = f"sample @ step {result.step:,}"
        text = result.sample if result.sample else "(sampling is off: eval.sample_tokens = 0)"
        self.query_one("#sample-text", Static).update(text)
        self.scroll_home(animate=False)
