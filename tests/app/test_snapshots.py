"""Snapshots of the dashboard at a small and a large terminal size.

The run is scripted with fixed event times and the app clock is frozen, so
elapsed time and ETA are the same on every machine. Regenerate with
`pytest tests/app/test_snapshots.py --snapshot-update` and inspect the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scripted import ScriptedHost, opening, training_events
from textual.pilot import Pilot

from gpttui.app import GptTuiApp


async def _apply_all_events(pilot: Pilot) -> None:
    app = pilot.app
    assert isinstance(app, GptTuiApp)
    app.poll_engine()
    app.refresh_views()
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_dashboard_snapshot(size: tuple[int, int], make_app: Callable[..., GptTuiApp], snap_compare) -> None:
    app = make_app(ScriptedHost([*opening(), *training_events(300)]))
    assert snap_compare(app, terminal_size=size, run_before=_apply_all_events)
