"""Helpers that step an app under Pilot: deterministic pumping, and waiting on a real engine."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot

from gpttui.app import GptTuiApp


async def pump(pilot: Pilot, app: GptTuiApp, rounds: int = 1) -> None:
    """Drain the host, redraw and let Textual process the resulting messages, `rounds` times."""
    for _ in range(rounds):
        app.poll_engine()
        app.refresh_views()
        await pilot.pause()


async def wait_for(pilot: Pilot, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Let the app run until `condition` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)
