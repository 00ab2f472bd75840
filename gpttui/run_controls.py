"""Steering a run from the app: pause, save, profile, and stop-then-exit.

The engine acts on commands only at step boundaries, so every request here
is sent at once and confirmed later by an event. Until then the status bar
shows the request as pending ("pausing", "resuming", "stopping").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from textual.app import App
from textual.widgets import TabbedContent

from engine.events import (
    CaptureProfile, Command, Pause, RequestParameters, Resume, SaveCheckpoint, SetRequiresGrad, Stop,
)
from gpttui.bridge import EngineHost
from gpttui.messages import SendCommand
from gpttui.state import RunView
from gpttui.widgets.parameter_tree import ParameterInspector
from gpttui.widgets.quit_dialog import QuitChoice, QuitDialog

PendingRequest = Literal["pausing", "resuming", "stopping"]


class RunControls(App[int]):
    """The actions that send commands to the engine, and the quit flow, for GptTuiApp.

    Quitting while the run is going asks whether to save, sends Stop, and
    exits when RunFinished arrives, or after `stop_timeout` seconds with a
    notice. Once the run is over, quitting exits at once. The exit code is 1
    when the run failed and 0 otherwise.
    """

    def __init__(self, host: EngineHost, view: RunView, *, clock: Callable[[], float], stop_timeout: float) -> None:
        super().__init__()
        self.host = host
        self.view = view
        self.clock = clock
        self.stop_timeout = stop_timeout
        self.exit_notice: str | None = None
        """Set when the app exits without seeing RunFinished; run_app logs it after the terminal is restored."""
        self._pause_requested = False
        self._stopping = False

    # --- hooks for the app ---------------------------------------------------

    def show_status(self) -> None:
        """Redraw whatever shows the pending request; the app overrides this."""

    def note_engine_events(self) -> bool:
        """Update the request state after new events; return True when the app is exiting."""
        if self.view.state == "paused":
            self._pause_requested = True
        if not self.view.is_over:
            return False
        self._pause_requested = False
        if self._stopping:
            self.exit(self.exit_code, return_code=self.exit_code)
            return True
        return False

    def pending_request(self) -> PendingRequest | None:
        """Return the request sent but not yet confirmed by the engine, if any."""
        if self.view.is_over:
            return None
        if self._stopping:
            return "stopping"
        if self._pause_requested and self.view.state != "paused":
            return "pausing"
        if not self._pause_requested and self.view.state == "paused":
            return "resuming"
        return None

    @property
    def exit_code(self) -> int:
        """1 when the run failed, else 0 (completed, stopped, or quit before it finished)."""
        finished = self.view.finished
        return 1 if finished is not None and finished.reason == "failed" else 0

    # --- commands ------------------------------------------------------------

    def send(self, command: Command) -> None:
        """Send a command to the engine; it acts on it at the next step boundary."""
        self.host.send(command)

    def on_send_command(self, message: SendCommand) -> None:
        self.send(message.command)

    def _require_running(self, what: str) -> bool:
        if self.view.is_over:
            self.notify(f"The run is over; cannot {what}.", severity="warning")
            return False
        return True

    def action_toggle_pause(self) -> None:
        if not self._require_running("pause or resume"):
            return
        self._pause_requested = not self._pause_requested
        self.send(Pause() if self._pause_requested else Resume())
        self.show_status()

    def action_save_checkpoint(self) -> None:
        if self._require_running("save a checkpoint"):
            self.send(SaveCheckpoint())
            self.notify("Checkpoint requested; it is written at the next step boundary.")

    def action_capture_profile(self) -> None:
        if self._require_running("profile"):
            self.send(CaptureProfile())
            self.notify("Profile requested; the summary appears in the Profiler tab.")

    def action_request_parameters(self) -> None:
        if self._require_running("request parameters"):
            self.send(RequestParameters(watch_every=self._parameter_watch_interval()))
            self.notify("Parameter snapshot requested.")

    def _parameter_watch_interval(self) -> int:
        # While the Parameters tab is shown, keep its periodic refresh going.
        if self.query_one(TabbedContent).active == "parameters":
            return self.query_one(ParameterInspector).watch_every
        return 0

    def on_parameter_inspector_refresh_requested(self, message: ParameterInspector.RefreshRequested) -> None:
        if not self.view.is_over:
            self.send(RequestParameters(watch_every=message.watch_every))

    def on_parameter_inspector_freeze_toggled(self, message: ParameterInspector.FreezeToggled) -> None:
        if self._require_running("freeze or unfreeze parameters"):
            self.send(SetRequiresGrad(message.name, message.requires_grad))

    # --- quitting ------------------------------------------------------------

    async def action_quit(self) -> None:
        """Quit as `q` does, so Textual's own ctrl+q and palette "Quit" never skip the stop."""
        self.action_request_quit()

    def action_request_quit(self) -> None:
        """Exit at once when the run is over or already stopping; otherwise ask whether to save first."""
        if self.view.is_over or self._stopping:
            self._exit_now()
            return
        if not any(isinstance(screen, QuitDialog) for screen in self.screen_stack):
            self.push_screen(QuitDialog(), self._on_quit_choice)

    def action_save_and_quit(self) -> None:
        """Stop the run with a checkpoint and exit once it finished; a second press exits at once."""
        if self.view.is_over or self._stopping:
            self._exit_now()
            return
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self._stop_then_exit(save=True)

    def _on_quit_choice(self, choice: QuitChoice | None) -> None:
        if choice == "save":
            self._stop_then_exit(save=True)
        elif choice == "discard":
            self._stop_then_exit(save=False)

    def _stop_then_exit(self, *, save: bool) -> None:
        if self.view.is_over:
            self._exit_now()
            return
        self._stopping = True
        self.send(Stop(save=save))
        action = "saving a checkpoint" if save else "without saving"
        self.notify(f"Stopping at the next step boundary, {action}; the app exits when the engine is done. "
                    "Press q again to exit at once.", timeout=self.stop_timeout)
        self.set_timer(self.stop_timeout, self._on_stop_timeout)
        self.show_status()

    def _on_stop_timeout(self) -> None:
        self.exit_notice = (
            f"the engine did not finish within {self.stop_timeout:.0f} s of the stop request; "
            "the app exited without waiting for it"
        )
        self._exit_now()

    def _exit_now(self) -> None:
        if not self.view.is_over and self.exit_notice is None:
            self.exit_notice = "the app exited before the run finished; the engine was asked to stop and save"
        self.exit(self.exit_code, return_code=self.exit_code)
