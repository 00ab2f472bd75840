"""The Textual app: drains an engine host, keeps a RunView and shows it in five tabs.

Events are drained on a 10 Hz timer and folded into the RunView in batches.
Widgets are redrawn on a separate, slower clock inside `batch_update()`, and
plots only when they are shown and their data changed, because rebuilding a
plotext figure costs milliseconds and the app shares the CPU with training.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import ClassVar

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from engine.config import Config
from engine.events import Event, ParameterSnapshot, ProfileCaptured, ProfileStarted, RunFinished, RunStarted, Stop
from gpttui.bridge import EngineHost
from gpttui.log_capture import LogCapture, terminal_logging_muted
from gpttui.messages import EngineEvent
from gpttui.run_controls import RunControls
from gpttui.state import RunView
from gpttui.widgets.config_view import ConfigView
from gpttui.widgets.dashboard import Dashboard
from gpttui.widgets.help_screen import HelpScreen
from gpttui.widgets.log_view import LogView
from gpttui.widgets.loss_plot import LossPlot
from gpttui.widgets.parameter_tree import ParameterInspector
from gpttui.widgets.plot_grid import PlotGrid
from gpttui.widgets.profiler_view import ProfilerView
from gpttui.widgets.status_bar import StatusBar

PLOT_TICK_S = 0.1
"""Period of the plot redraw scheduler; each tick redraws at most one plot."""

MAX_EVENTS_PER_POLL = 5000
"""Events applied per drain, so a backlog cannot stall a frame for long."""

TABS = ("dashboard", "parameters", "profiler", "logs", "config")

PALETTE_COMMANDS = (
    ("Pause or resume training", "Pause at the next step boundary, or resume", "toggle_pause"),
    ("Save checkpoint", "Write ckpt.pt at the next step boundary", "save_checkpoint"),
    ("Capture profile", "Profile the next few training steps", "capture_profile"),
    ("Request parameter snapshot", "Fetch the parameter tree with norms", "request_parameters"),
    ("Save and quit", "Stop the run with a checkpoint, then exit", "save_and_quit"),
    ("Toggle log scale", "Switch the loss plot between linear and log y", "toggle_log_scale"),
    ("Toggle EMA line", "Show or hide the loss EMA", "toggle_ema"),
    ("Next plots", "Page to plots that do not fit the terminal", "next_plot"),
    ("Help", "List every key", "help"),
)
"""(title, help, action) of the command palette entries beyond Textual's own."""


class GptTuiApp(RunControls):
    """Monitors and steers one training run through an already started EngineHost.

    The app never starts or closes the host: `run_app` (or a test) owns it.
    RunControls defines the actions that send commands and the quit flow.
    The exit code is 0 when the run completed or the user stopped it and 1
    when it failed.
    """

    CSS_PATH = "app.tcss"
    TITLE = "gpttui"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (120, "-wide")]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_pause", "Pause/resume", id="pause"),
        Binding("s", "save_checkpoint", "Save ckpt", id="save"),
        Binding("p", "capture_profile", "Profile", id="profile"),
        Binding("q", "request_quit", "Quit", id="quit"),
        # Textual 8 binds ctrl+c to a hint about ctrl+q; here it stops the run, saving, and exits.
        Binding("ctrl+c", "save_and_quit", "Save and quit", show=False, priority=True, id="save-and-quit"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("1", "show_tab('dashboard')", "Dashboard tab", show=False, id="tab-dashboard"),
        Binding("2", "show_tab('parameters')", "Parameters tab", show=False, id="tab-parameters"),
        Binding("3", "show_tab('profiler')", "Profiler tab", show=False, id="tab-profiler"),
        Binding("4", "show_tab('logs')", "Logs tab", show=False, id="tab-logs"),
        Binding("5", "show_tab('config')", "Config tab", show=False, id="tab-config"),
        Binding("l", "toggle_log_scale", "Loss plot: log scale", show=False, id="log-scale"),
        Binding("e", "toggle_ema", "Loss plot: EMA line", show=False, id="ema"),
        Binding("v", "next_plot", "Show the next plots", show=False, id="next-plot"),
        Binding("r", "request_parameters", "Request a parameter snapshot", show=False, id="parameters"),
    ]

    run_state: reactive[str] = reactive("starting")
    """The engine's state as last reported; the status bar shows it as a CSS class."""

    def __init__(
        self,
        host: EngineHost,
        *,
        config: Config,
        run_name: str,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 0.1,
        redraw_interval: float = 0.5,
        plot_interval: float = 1.0,
        stop_timeout: float = 60.0,
    ) -> None:
        """Create the app.

        Args:
            host: a started engine host; the app drains and commands it.
            config: the resolved config, shown until the engine sends its own copy.
            run_name: shown in the status bar.
            clock: returns the current time in seconds, as event times do; tests pass a fixed one.
            poll_interval: seconds between drains of the host.
            redraw_interval: seconds between redraws of the status bar, latest values and sample.
            plot_interval: minimum seconds between redraws of one plot. A plot costs tens of
                milliseconds to draw (benchmarks/redraw.py), so plots redraw less often than the
                text, and one at a time so key presses are handled between them.
            stop_timeout: seconds to wait for RunFinished after a stop before exiting anyway.
        """
        super().__init__(host, RunView(run_name), clock=clock, stop_timeout=stop_timeout)
        self.config = config
        self.poll_interval = poll_interval
        self.redraw_interval = redraw_interval
        self.plot_interval = plot_interval
        self.log_capture = LogCapture()
        self._values_version = -1
        self._plots_version = -1
        self._mounted = False
        # Widgets the timers update, looked up once in on_mount.
        self._status: StatusBar
        self._tabs: TabbedContent
        self._dashboard: Dashboard
        self._log_view: LogView

    # --- layout --------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(self.view.run_name, self.config.train.max_iters, id="status")
        with TabbedContent(initial="dashboard", id="tabs"):
            with TabPane("1 Dashboard", id="dashboard"):
                yield Dashboard(self.view, id="dashboard-body")
            with TabPane("2 Parameters", id="parameters"):
                yield ParameterInspector(watch_every=10, id="parameters-body")
            with TabPane("3 Profiler", id="profiler"):
                yield ProfilerView(self.config.profile.steps, id="profiler-body")
            with TabPane("4 Logs", id="logs"):
                yield LogView(id="log")
            with TabPane("5 Config", id="config"):
                yield ConfigView(self.config.to_toml(), id="config-view")
        yield Footer()

    def on_mount(self) -> None:
        self._status = self.query_one(StatusBar)
        self._tabs = self.query_one(TabbedContent)
        self._dashboard = self.query_one(Dashboard)
        self._log_view = self.query_one(LogView)
        self._mounted = True
        logging.getLogger().addHandler(self.log_capture)
        self.set_interval(self.poll_interval, self.poll_engine, name="poll-engine")
        self.set_interval(self.redraw_interval, lambda: self.refresh_views(plots=False), name="redraw")
        self.set_interval(PLOT_TICK_S, self._redraw_one_plot, name="redraw-plots")
        self.refresh_views()

    def on_unmount(self) -> None:
        logging.getLogger().removeHandler(self.log_capture)

    # --- engine events -------------------------------------------------------

    def poll_engine(self) -> None:
        """Drain the host, apply the events and route them to logs, tabs and the quit flow."""
        if not self._widgets_attached():
            return
        # Read `alive` before draining: a host that was already dead has queued its last event.
        was_alive = self.host.alive
        events = self.host.drain(MAX_EVENTS_PER_POLL)
        if not was_alive and len(events) < MAX_EVENTS_PER_POLL and not self.view.is_over:
            if not any(isinstance(event, RunFinished) for event in events):
                events.append(RunFinished(
                    reason="failed", step=self.view.step,
                    error="the engine stopped without reporting why; see the Logs tab", time=self.clock(),
                ))
        self._log_view.write_lines(self.log_capture.drain())
        if not events:
            return
        self._log_view.write_lines(self.view.apply(events))
        self._route(events)
        self.run_state = self.view.state
        if self.note_engine_events():
            return
        if any(isinstance(event, RunFinished) for event in events):
            self.query_one(ProfilerView).show_run_finished()
            self._announce_finish()

    def _route(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, RunStarted):
                self.query_one(ConfigView).show_toml(event.config_toml)
            elif isinstance(event, ParameterSnapshot):
                self.query_one("#parameters-body").post_message(EngineEvent(event))
            elif isinstance(event, (ProfileStarted, ProfileCaptured)):
                self.query_one("#profiler-body").post_message(EngineEvent(event))

    def _widgets_attached(self) -> bool:
        # Timers can still fire while the app shuts down and removes its widgets.
        return self._mounted and self._log_view.is_attached

    def _announce_finish(self) -> None:
        finished = self.view.finished
        assert finished is not None
        if finished.reason == "failed":
            self.notify(finished.error or "no error text", title="Run failed", severity="error", timeout=10)
        else:
            self.notify(f"Run {finished.reason} at step {finished.step:,}. Press q to quit.", title="Run over")
        self.refresh_views()

    # --- drawing -------------------------------------------------------------

    def refresh_views(self, *, plots: bool = True) -> None:
        """Redraw the status bar, and what the dashboard shows when the data changed since it was drawn.

        Args:
            plots: also repaint plots whose data changed; False redraws only text.
        """
        if not self._widgets_attached():
            return
        with self.batch_update():
            self._status.show(self.view, self.clock(), pending=self.pending_request())
            if self._tabs.active != "dashboard":
                return
            if self._values_version != self.view.version:
                self._values_version = self.view.version
                self._dashboard.show_values()
            if plots and self._plots_version != self.view.version:
                self._plots_version = self.view.version
                self._dashboard.show_plots()

    def _redraw_one_plot(self) -> None:
        if self._widgets_attached() and self._tabs.active == "dashboard":
            self._dashboard.show_one_plot(time.monotonic(), self.plot_interval)

    def watch_run_state(self) -> None:
        self.show_status()

    def show_status(self) -> None:
        if self._widgets_attached():
            self._status.show(self.view, self.clock(), pending=self.pending_request())

    # --- navigation and plot options -----------------------------------------

    def action_show_tab(self, tab: str) -> None:
        self._tabs.active = tab
        # Focus the tab's main widget so arrow keys work at once, without a Tab press first.
        focus_targets = {
            "parameters": "#inspector-table", "profiler": "#profiler-ops",
            "logs": "#log", "config": "#config-view",
        }
        if tab in focus_targets:
            self.query_one(focus_targets[tab]).focus()
        # Plots show their cached figures at once; the plot scheduler brings them up to date.
        self.refresh_views(plots=False)

    def action_toggle_log_scale(self) -> None:
        plot = self.query_one(LossPlot)
        plot.log_scale = not plot.log_scale
        self.notify(f"Loss plot: {'log' if plot.log_scale else 'linear'} scale.", timeout=2)

    def action_toggle_ema(self) -> None:
        plot = self.query_one(LossPlot)
        plot.show_ema = not plot.show_ema
        self.notify(f"Loss plot: EMA line {'shown' if plot.show_ema else 'hidden'}.", timeout=2)

    def action_next_plot(self) -> None:
        self.query_one(PlotGrid).show_next()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            bindings = [binding for binding in self.BINDINGS if isinstance(binding, Binding)]
            self.push_screen(HelpScreen(bindings))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in PALETTE_COMMANDS:
            yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))
        for index, tab in enumerate(TABS, start=1):
            yield SystemCommand(f"Show {tab} tab", f"Switch to tab {index}",
                                lambda tab=tab: self.action_show_tab(tab))


def run_app(host: EngineHost, config: Config) -> int:
    """Run the dashboard on this terminal until the user quits; return the process exit code.

    While the app owns the terminal, logging handlers that write to it are
    muted and their records go to the Logs tab instead. After the app exits
    the engine is asked to stop with a checkpoint if it is still running, and
    its host is closed.

    Returns:
        0 when the run completed or the user stopped it, 1 when it failed.
    """
    app = GptTuiApp(host, config=config, run_name=config.run.name)
    try:
        with terminal_logging_muted():
            app.run()
    finally:
        if host.alive:
            host.send(Stop(save=True))
        host.close()
    if app.exit_notice:
        logging.getLogger(__name__).warning(app.exit_notice)
    if app.return_code not in (None, 0):
        return app.return_code
    return app.exit_code
