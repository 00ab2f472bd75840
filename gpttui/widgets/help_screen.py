"""A modal list of every key the app binds, with what it does."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    """Shows the app's key bindings; Escape, q or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > Vertical {
        width: auto;
        max-width: 90%;
        height: auto;
        max-height: 90%;
        overflow-y: auto;
        padding: 0 2;
        border: thick $primary;
        border-title-align: center;
        background: $surface;
    }
    HelpScreen Static {
        width: auto;
    }
    """

    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close help", id="help-close"),
    ]

    def __init__(self, bindings: list[Binding]) -> None:
        """Create the screen.

        Args:
            bindings: the bindings to list, in display order.
        """
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        rows = [(self.app.get_key_display(binding), binding.description) for binding in self.bindings]
        palette = Binding(self.app.COMMAND_PALETTE_BINDING, "command_palette")
        rows.append((self.app.get_key_display(palette), "Command palette: every action by name"))
        key_width = max(len(key) for key, _ in rows)
        # Text rather than a rich Table: Textual cannot size a Table inside an auto-width container.
        text = Text()
        for key, description in rows:
            text.append(f"{key:<{key_width}}  ", style="bold")
            text.append(f"{description}\n")
        text.rstrip()
        box = Vertical()
        box.border_title = "Keys"
        with box:
            yield Static(text)
