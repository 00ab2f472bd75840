"""The dialog shown on quit while training is still running: save, discard or cancel."""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

QuitChoice = Literal["save", "discard", "cancel"]


class QuitDialog(ModalScreen[QuitChoice]):
    """Offers "Save and quit", "Quit without saving" and "Cancel"; dismisses with the choice.

    "Save and quit" has the focus, so Enter saves. Tab or the arrow keys move
    between buttons, and Escape cancels.
    """

    DEFAULT_CSS = """
    QuitDialog {
        align: center middle;
    }
    QuitDialog > Vertical {
        width: auto;
        max-width: 90%;
        height: auto;
        padding: 1 2;
        border: thick $warning;
        background: $surface;
    }
    QuitDialog Label {
        width: 100%;
        margin-bottom: 1;
    }
    QuitDialog Horizontal {
        width: auto;
        height: auto;
    }
    QuitDialog Button {
        margin-right: 1;
    }
    """

    BINDINGS = [
        Binding("escape", "choose('cancel')", "Cancel", id="quit-dialog-cancel"),
        Binding("right", "app.focus_next", "Next button", show=False),
        Binding("left", "app.focus_previous", "Previous button", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Training is still running. Stop it and quit?")
            with Horizontal():
                yield Button("Save and quit", id="quit-save", variant="primary")
                yield Button("Quit without saving", id="quit-discard", variant="error")
                yield Button("Cancel", id="quit-cancel")

    def on_mount(self) -> None:
        self.query_one("#quit-save", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        choices: dict[str | None, QuitChoice] = {
            "quit-save": "save", "quit-discard": "discard", "quit-cancel": "cancel",
        }
        self.dismiss(choices.get(event.button.id, "cancel"))

    def action_choose(self, choice: QuitChoice) -> None:
        self.dismiss(choice)
