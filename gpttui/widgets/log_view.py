"""The Logs tab: engine log records, notices and the app's own logging, one line each."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from gpttui.state import LogLine

LEVEL_STYLES = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "bold red"}


class LogView(RichLog):
    """A RichLog of LogLines with a local-time stamp and the level; text is never read as markup."""

    DEFAULT_CSS = """
    LogView {
        padding: 0 1;
    }
    """

    def __init__(
        self,
        *,
        max_lines: int = 20_000,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's widget signature
        classes: str | None = None,
    ) -> None:
        super().__init__(max_lines=max_lines, wrap=True, markup=False, highlight=False,
                         name=name, id=id, classes=classes)

    def write_lines(self, lines: Iterable[LogLine]) -> None:
        """Append lines, styled by level."""
        for line in lines:
            stamp = time.strftime("%H:%M:%S", time.localtime(line.time))
            text = Text(f"{stamp} {line.level:<7} ", style="dim")
            text.append(line.text, style=LEVEL_STYLES.get(line.level, ""))
            self.write(text)
