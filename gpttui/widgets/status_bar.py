"""The run's status: name, device, state, progress, elapsed time, ETA and any error."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import ProgressBar, Static

from gpttui.format import MISSING, format_duration
from gpttui.state import RunView


class StatusBar(Widget):
    """Two lines of run status, and a third with the error text once a run failed.

    The `state` reactive mirrors the engine's state and sets the class
    `-<state>` (for example `-paused`), so styles follow the state.
    """

    DEFAULT_CSS = """
    StatusBar {
        height: auto;
        padding: 0 1;
        background: $panel;
    }
    StatusBar Horizontal {
        height: 1;
    }
    StatusBar #status-title {
        width: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    StatusBar #status-state {
        width: auto;
        min-width: 10;
        padding: 0 1;
        text-style: bold;
        background: $primary-muted;
    }
    StatusBar.-running #status-state, StatusBar.-compiling #status-state { background: $success-muted; }
    StatusBar.-paused #status-state { background: $warning; color: $text-warning; }
    StatusBar.-evaluating #status-state, StatusBar.-saving #status-state,
    StatusBar.-profiling #status-state { background: $accent-muted; }
    StatusBar.-failed #status-state { background: $error; }
    StatusBar #status-step {
        width: auto;
        padding-right: 1;
    }
    StatusBar ProgressBar {
        width: 1fr;
    }
    StatusBar ProgressBar Bar {
        width: 1fr;
    }
    StatusBar #status-time {
        width: auto;
        padding-left: 2;
    }
    StatusBar #status-error {
        display: none;
        height: auto;
        max-height: 3;
        color: $text-error;
        background: $error-muted;
    }
    StatusBar.-failed #status-error {
        display: block;
    }
    """

    state: reactive[str] = reactive("starting", init=False)
    """The engine's run state, or "pausing", "resuming" or "stopping" while a request is in flight."""

    def __init__(
        self,
        run_name: str,
        max_iters: int,
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's widget signature
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.add_class("-starting")
        self.run_name = run_name
        self._initial_total = max_iters

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static(Text(self.run_name, style="bold"), id="status-title")
            yield Static("starting", id="status-state")
        with Horizontal():
            yield Static("step 0", id="status-step")
            yield ProgressBar(total=self._initial_total, show_eta=False, id="status-progress")
            yield Static("", id="status-time")
        yield Static("", id="status-error", markup=False)

    def watch_state(self, old: str, new: str) -> None:
        self.remove_class(f"-{old}")
        self.add_class(f"-{new}")
        self.query_one("#status-state", Static).update(new)

    def show(self, view: RunView, now: float, *, pending: str | None = None) -> None:
        """Update every field from the view.

        Args:
            view: the app's model of the run.
            now: the current time from the app's clock, for the elapsed time.
            pending: "pausing", "resuming" or "stopping" while such a request waits for the engine.
        """
        self.state = pending or view.state
        self._show_title(view)
        total = view.max_iters or self._initial_total
        self.query_one("#status-step", Static).update(f"step {view.step:,} / {total:,}")
        self.query_one(ProgressBar).update(total=total, progress=min(view.step, total))
        elapsed = format_duration(view.elapsed_s(now))
        eta = format_duration(view.eta_s())
        time_text = f"elapsed {elapsed}" if view.is_over or eta == MISSING else f"elapsed {elapsed}  ETA {eta}"
        self.query_one("#status-time", Static).update(time_text)
        if view.finished is not None and view.finished.reason == "failed":
            self.query_one("#status-error", Static).update(f"error: {view.finished.error or 'no error text'}")

    def _show_title(self, view: RunView) -> None:
        title = Text(self.run_name, style="bold")
        if view.started is not None:
            title.append(f"  {view.started.device_name} · {view.started.dtype}")
        self.query_one("#status-title", Static).update(title)
