"""Helpers that step a GptTuiApp deterministically under Pilot."""

from __future__ import annotations

from textual.pilot import Pilot

from gpttui.app import GptTuiApp


async def pump(pilot: Pilot, app: GptTuiApp, rounds: int = 1) -> None:
    """Drain the host, redraw and let Textual process the resulting messages, `rounds` times."""
    for _ in range(rounds):
        app.poll_engine()
        app.refresh_views()
        await pilot.pause()
