"""Pilot tests of GptTuiApp against a scripted engine host."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pilot_helpers import pump
from scripted import T0, SAMPLE, ScriptedHost, eval_result, opening, training_events
from textual.app import SystemCommand
from textual.pilot import Pilot
from textual.widgets import RichLog, Static, TabbedContent

from engine.events import (
    CaptureProfile, LogRecord, Pause, RequestParameters, Resume, RunFinished, SaveCheckpoint, StateChanged, Stop,
)
from gpttui.app import GptTuiApp
from gpttui.widgets.help_screen import HelpScreen
from gpttui.widgets.loss_plot import LossPlot
from gpttui.widgets.plot_grid import PlotGrid
from gpttui.widgets.quit_dialog import QuitDialog
from gpttui.widgets.status_bar import StatusBar

AppFactory = Callable[..., GptTuiApp]


def static_text(app: GptTuiApp, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


async def log_text(pilot: Pilot, app: GptTuiApp) -> str:
    """Return the Logs tab's text; the tab is shown first because RichLog defers writes until it has a size."""
    await pilot.press("4")
    await pilot.pause()
    log = app.query_one("#log", RichLog)
    return "\n".join(strip.text for strip in log.lines)


async def test_step_counter_advances(make_app: AppFactory) -> None:
    host = ScriptedHost(opening())
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        assert static_text(app, "#status-step") == "step 0 / 1,000"
        host.push(*training_events(10))
        await pump(pilot, app)
        assert static_text(app, "#status-step") == "step 10 / 1,000"
        host.push(*training_events(15, start=10))
        await pump(pilot, app)
        assert static_text(app, "#status-step") == "step 25 / 1,000"
        assert app.view.latest is not None and app.view.latest.step == 24


async def test_space_pauses_then_resumes(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), *training_events(5)])
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        status = app.query_one(StatusBar)
        await pilot.press("space")
        assert host.commands == [Pause()]
        assert status.state == "pausing"
        await pump(pilot, app)
        assert app.run_state == "paused"
        assert status.has_class("-paused")
        await pilot.press("space")
        assert host.commands == [Pause(), Resume()]
        assert status.state == "resuming"
        await pump(pilot, app)
        assert app.run_state == "running"
        assert status.has_class("-running")
        assert not status.has_class("-paused")


async def test_s_requests_checkpoint(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), *training_events(5)])
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        await pilot.press("s")
        assert host.commands == [SaveCheckpoint()]
        await pump(pilot, app)
        assert app.view.last_checkpoint is not None
        assert "checkpoint saved" in await log_text(pilot, app)


async def test_p_requests_profile(make_app: AppFactory) -> None:
    host = ScriptedHost(opening())
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        await pilot.press("p")
        assert host.commands == [CaptureProfile()]
        await pilot.press("r")
        assert host.commands[-1] == RequestParameters()


async def test_q_save_and_quit_waits_for_finish(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), *training_events(5)], respond=False)
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        await pilot.press("q")
        assert isinstance(app.screen, QuitDialog)
        await pilot.press("enter")  # "Save and quit" has the focus
        assert host.commands == [Stop(save=True)]
        assert not isinstance(app.screen, QuitDialog)
        await pump(pilot, app)
        assert app.return_code is None, "the app must wait for RunFinished"
        host.push(RunFinished(reason="stopped", step=5, time=T0 + 20))
        await pump(pilot, app)
        assert app.return_code == 0
    assert app.exit_notice is None


async def test_q_quit_without_saving(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), *training_events(5)])
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        await pilot.press("q")
        await pilot.click("#quit-discard")
        assert host.commands == [Stop(save=False)]
        await pump(pilot, app)
        assert app.return_code == 0


async def test_q_cancel_keeps_running(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), *training_events(5)])
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        await pilot.press("q")
        await pilot.press("escape")
        assert not isinstance(app.screen, QuitDialog)
        await pilot.press("q")
        await pilot.press("right", "right", "enter")  # focus moves to "Cancel"
        assert not isinstance(app.screen, QuitDialog)
        assert host.commands == []
        assert app.return_code is None


async def test_q_exits_at_once_after_finish(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), *training_events(5), RunFinished(reason="completed", step=5, time=T0 + 9)])
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        assert app.view.is_over
        assert app.return_code is None, "a finished run stays on screen"
        await pilot.press("q")
        assert app.return_code == 0
    assert host.commands == []


async def test_ctrl_c_saves_and_quits(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), *training_events(5)])
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        await pilot.press("ctrl+c")
        assert host.commands == [Stop(save=True)]
        assert not isinstance(app.screen, QuitDialog)
        await pump(pilot, app)
        assert app.return_code == 0


async def test_ctrl_c_closes_open_dialog(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), *training_events(5)])
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        await pilot.press("q")
        await pilot.press("ctrl+c")
        assert host.commands == [Stop(save=True)]
        assert not isinstance(app.screen, QuitDialog)


async def test_stop_timeout_exits_with_notice(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), *training_events(5)], respond=False)
    app = make_app(host, stop_timeout=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        await pilot.press("ctrl+c")
        await pilot.pause(0.5)
        assert app.return_code == 0
    assert app.exit_notice is not None
    assert "did not finish" in app.exit_notice


async def test_failed_run_shows_error(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), *training_events(3), RunFinished(reason="failed", step=3, error="boom",
                                                                      time=T0 + 9)])
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        status = app.query_one(StatusBar)
        assert status.state == "failed"
        assert static_text(app, "#status-state") == "failed"
        assert "boom" in static_text(app, "#status-error")
        assert app.query_one("#status-error").display
        assert "boom" in await log_text(pilot, app)
        assert app.return_code is None, "the app stays open after a failure"
        await pilot.press("q")
        assert app.return_code == 1


async def test_host_dying_silently_counts_as_failure(make_app: AppFactory) -> None:
    host = ScriptedHost(opening())
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        host._finished_drained = True  # the engine is gone without a RunFinished
        await pump(pilot, app)
        assert app.view.state == "failed"
        assert "without reporting why" in static_text(app, "#status-error")


async def test_number_keys_switch_tabs(make_app: AppFactory) -> None:
    app = make_app(ScriptedHost(opening()))
    async with app.run_test(size=(100, 30)) as pilot:
        tabs = app.query_one(TabbedContent)
        for key, tab in [("2", "parameters"), ("3", "profiler"), ("4", "logs"), ("5", "config"), ("1", "dashboard")]:
            await pilot.press(key)
            assert tabs.active == tab


async def test_l_and_e_toggle_loss_plot(make_app: AppFactory) -> None:
    app = make_app(ScriptedHost([*opening(), *training_events(50)]))
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        plot = app.query_one(LossPlot)
        assert not plot.log_scale
        assert plot.show_ema
        await pilot.press("l")
        assert plot.log_scale
        await pilot.press("e")
        assert not plot.show_ema
        assert all(line.label != "EMA" for line in plot.visible_lines())
        await pilot.press("l", "e")
        assert not plot.log_scale
        assert plot.show_ema


async def test_v_pages_plots_on_small_terminal(make_app: AppFactory) -> None:
    app = make_app(ScriptedHost([*opening(), *training_events(50)]))
    async with app.run_test(size=(80, 24)) as pilot:
        await pump(pilot, app)
        grid = app.query_one(PlotGrid)
        assert [plot.id for plot in grid.visible_plots()] == ["plot-loss"]
        await pilot.press("v")
        assert [plot.id for plot in grid.visible_plots()] == ["plot-throughput"]


async def test_large_terminal_shows_all_plots(make_app: AppFactory) -> None:
    app = make_app(ScriptedHost([*opening(), *training_events(50)]))
    async with app.run_test(size=(200, 60)) as pilot:
        await pump(pilot, app)
        assert len(app.query_one(PlotGrid).visible_plots()) == 6


async def test_help_screen_lists_keys(make_app: AppFactory) -> None:
    app = make_app(ScriptedHost(opening()))
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        descriptions = {binding.description for binding in app.screen.bindings}
        assert {"Pause/resume", "Save ckpt", "Profile", "Quit", "Loss plot: log scale"} <= descriptions
        listing = app.screen.query_one(Static)
        assert listing.size.width > 20, "the key list must be laid out, not collapsed"
        assert "Loss plot: EMA line" in str(listing.content)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_palette_offers_app_commands(make_app: AppFactory) -> None:
    app = make_app(ScriptedHost(opening()))
    async with app.run_test(size=(100, 30)):
        titles = {command.title for command in app.get_system_commands(app.screen)
                  if isinstance(command, SystemCommand)}
        assert {"Pause or resume training", "Save checkpoint", "Capture profile", "Save and quit"} <= titles


async def test_sample_and_logs_are_shown_literally(make_app: AppFactory) -> None:
    markup_sample = "[bold]not markup[/bold] and a [link]"
    host = ScriptedHost([*opening(), eval_result(0), *training_events(1)])
    host.push(LogRecord(level="WARNING", message="[red]literal[/red]", time=T0 + 1))
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        assert static_text(app, "#sample-text") == SAMPLE
        host.push(type(eval_result(100))(step=100, train_loss=1.0, val_loss=1.1, sample=markup_sample, time=T0 + 30))
        await pump(pilot, app)
        assert static_text(app, "#sample-text") == markup_sample
        assert "[red]literal[/red]" in await log_text(pilot, app)


async def test_gpttui_logging_reaches_logs_tab(make_app: AppFactory) -> None:
    app = make_app(ScriptedHost(opening()))
    async with app.run_test(size=(100, 30)) as pilot:
        logging.getLogger("gpttui.test").warning("bridge hiccup")
        logging.getLogger("engine.trainer").warning("already sent as an event")
        await pump(pilot, app)
        assert "gpttui.test: bridge hiccup" in await log_text(pilot, app)
        assert "already sent as an event" not in await log_text(pilot, app)


async def test_commands_ignored_after_finish(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), RunFinished(reason="completed", step=0, time=T0 + 1)])
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        await pilot.press("space", "s", "p")
        assert host.commands == []


async def test_paused_state_from_engine_makes_space_resume(make_app: AppFactory) -> None:
    host = ScriptedHost([*opening(), StateChanged(state="paused", step=0, time=T0 + 1)])
    app = make_app(host)
    async with app.run_test(size=(100, 30)) as pilot:
        await pump(pilot, app)
        await pilot.press("space")
        assert host.commands == [Resume()]
