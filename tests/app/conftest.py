"""Fixtures for app tests: a scripted host and an app factory with a frozen clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scripted import T0, ScriptedHost, make_config

from gpttui.app import GptTuiApp

FROZEN_NOW = T0 + 5.0 + 300 * 0.25
"""The app clock in tests: just after the 300th scripted step."""


@pytest.fixture
def make_app() -> Callable[..., GptTuiApp]:
    """Build a GptTuiApp over a ScriptedHost, with slow timers so tests drive drains and redraws."""

    def build(host: ScriptedHost, **kwargs: object) -> GptTuiApp:
        config = make_config()
        options: dict[str, object] = {"clock": lambda: FROZEN_NOW, "poll_interval": 60.0, "redraw_interval": 60.0,
                                      "plot_interval": 60.0}
        options.update(kwargs)
        return GptTuiApp(host, config=config, run_name=config.run.name, **options)  # type: ignore[arg-type]

    return build
