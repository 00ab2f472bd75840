"""Route Python logging into the app's Logs tab while the app owns the terminal.

A handler that writes to stderr during a Textual session paints over the
screen. `terminal_logging_muted` detaches such handlers for the session and
`LogCapture` collects records, from any thread, for the app to show.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections import deque
from collections.abc import Iterator

from gpttui.state import LogLine

MAX_PENDING_RECORDS = 1000
"""Records kept between two drains; older ones are dropped and counted."""


class LogCapture(logging.Handler):
    """Queues log records as LogLines until the app drains them.

    Records from `engine` loggers are skipped: the engine reports its log
    lines as LogRecord events, which reach the app from a thread and from a
    child process alike, so showing both would print each line twice.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        # deque.append and popleft are atomic, so engine threads may log while the app drains.
        self._lines: deque[LogLine] = deque()
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "engine" or record.name.startswith("engine."):
            return
        level = record.levelname if record.levelname in ("DEBUG", "INFO", "WARNING", "ERROR") else "ERROR"
        try:
            text = f"{record.name}: {record.getMessage()}"
        except (TypeError, ValueError):
            # A bad %-format in the call; showing the raw format string beats losing the record.
            text = f"{record.name}: {record.msg!r} {record.args!r}"
        if len(self._lines) >= MAX_PENDING_RECORDS:
            self._lines.popleft()
            self.dropped += 1
        self._lines.append(LogLine(record.created, level, text))  # type: ignore[arg-type]

    def drain(self) -> list[LogLine]:
        """Take every queued line, oldest first."""
        lines = []
        while self._lines:
            lines.append(self._lines.popleft())
        return lines


def _writes_to_terminal(handler: logging.Handler) -> bool:
    if isinstance(handler, logging.FileHandler) or not isinstance(handler, logging.StreamHandler):
        return False
    return handler.stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)


@contextlib.contextmanager
def terminal_logging_muted() -> Iterator[None]:
    """Detach root logging handlers that write to stdout or stderr, and restore them on exit."""
    root = logging.getLogger()
    muted = [handler for handler in root.handlers if _writes_to_terminal(handler)]
    for handler in muted:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in muted:
            root.addHandler(handler)
