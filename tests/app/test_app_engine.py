"""Pilot tests of GptTuiApp steering a real Trainer on a tiny CPU model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pilot_helpers import wait_for

from engine.config import Config
from gpttui.app import GptTuiApp
from gpttui.bridge import EngineHost, start_engine
from tests.engine.conftest import text_file, tiny_config  # noqa: F401 - fixtures

LONG_RUN = ("train.max_iters=100000", "schedule.lr_decay_iters=100000", "eval.interval=0")
"""A run that cannot finish during a test, so the test decides when it stops."""


def make_engine_app(config: Config, run_dir: Path) -> tuple[GptTuiApp, EngineHost]:
    host = start_engine(config, host="thread", run_dir=run_dir)
    app = GptTuiApp(host, config=config, run_name="tiny", poll_interval=0.05, redraw_interval=0.2,
                    plot_interval=0.5, stop_timeout=60.0)
    return app, host


async def test_space_pauses_real_engine(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    app, host = make_engine_app(tiny_config(*LONG_RUN), tmp_path / "run")
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.view.step >= 3, "three steps")
            await pilot.press("space")
            await wait_for(pilot, lambda: app.run_state == "paused", "the paused state")
            paused_at = app.view.step
            await pilot.pause(0.5)
            assert app.view.step == paused_at, "steps must not advance while paused"
            await pilot.press("space")
            await wait_for(pilot, lambda: app.view.step > paused_at + 2, "steps after resuming")
            assert app.run_state == "running"
            await pilot.press("ctrl+c")
            await wait_for(pilot, lambda: app.return_code is not None, "the app to exit")
    finally:
        host.close()


async def test_s_writes_checkpoint(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    app, host = make_engine_app(tiny_config(*LONG_RUN, 'checkpoint.save="never"'), run_dir)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.view.step >= 2, "two steps")
            assert not (run_dir / "ckpt.pt").exists()
            await pilot.press("s")
            await wait_for(pilot, lambda: app.view.last_checkpoint is not None, "CheckpointSaved")
            assert app.view.last_checkpoint is not None
            assert app.view.last_checkpoint.reason == "manual"
            assert (run_dir / "ckpt.pt").is_file()
            await pilot.press("ctrl+c")
            await wait_for(pilot, lambda: app.return_code is not None, "the app to exit")
    finally:
        host.close()


async def test_quit_dialog_saves_and_exits(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    app, host = make_engine_app(tiny_config(*LONG_RUN, 'checkpoint.save="never"'), run_dir)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.view.step >= 2, "two steps")
            await pilot.press("q")
            await pilot.click("#quit-save")
            await wait_for(pilot, lambda: app.return_code is not None, "the app to exit after the stop")
        assert app.return_code == 0
        assert app.view.finished is not None
        assert app.view.finished.reason == "stopped"
        assert (run_dir / "ckpt.pt").is_file()
        assert app.exit_notice is None
    finally:
        host.close()


async def test_engine_failure_shows_failed(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-corpus.txt"
    app, host = make_engine_app(tiny_config(f'data.path="{missing}"'), tmp_path / "run")
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.view.is_over, "RunFinished")
            await pilot.pause(0.3)
            assert app.view.state == "failed"
            error = str(app.query_one("#status-error").content)  # type: ignore[attr-defined]
            assert "no-such-corpus.txt" in error
            assert app.return_code is None, "the app stays open on a failure"
            await pilot.press("q")
        assert app.return_code == 1
    finally:
        host.close()
