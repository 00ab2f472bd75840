"""On-demand torch.profiler windows and their summaries, run on the engine thread.

A CaptureProfile command schedules a window: `profile.warmup` warm-up steps,
then `steps` active steps. The controller opens a torch.profiler.profile at the
step boundary where the window begins and closes it after the last active step.
It writes a Chrome trace to <run_dir>/profiles/step_<first active step>/ and
emits ProfileCaptured with the top ops, the time per phase and the peak memory.
Between windows no profiler exists, so training runs at full speed.

The profiler's step numbers follow the training steps, so the trace's
ProfilerStep#N ranges are training steps N. Each range runs from the end of
the previous optimizer step to the end of its own (only the first of a window
without warm-up starts at its own step), so it also contains the metrics
publication, any evaluation and any pause between the two steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from engine.config import ProfileConfig
from engine.events import CaptureProfile, Event, ProfileCaptured, ProfileStarted, RunState
from engine.profile_summary import Summary, summarise

MEMORY_HISTORY_ENTRIES = 100_000
"""Allocation events kept for the CUDA memory snapshot. torch's docs estimate several KB per entry."""

TRACE_SUFFIXES = (".pt.trace.json", ".pt.trace.json.gz")
"""File endings that torch.profiler.tensorboard_trace_handler writes, without and with gzip."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


@dataclass
class _Window:
    """A scheduled or running capture."""

    begin: int
    """First step under the profiler, warm-up included."""
    first: int
    """First active (recorded) step."""
    steps: int
    trace_dir: Path
    profile: torch.profiler.profile | None = None
    exit_stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    completed: int = 0
    """Active steps that finished."""
    trace_path: Path | None = None
    memory_snapshot_path: Path | None = None
    existing_traces: frozenset[str] = frozenset()
    """Trace files already in trace_dir (a resumed run may profile the same step again)."""
    wall_started: float = 0.0

    @property
    def last(self) -> int:
        return self.first + self.steps - 1

    @property
    def span(self) -> str:
        return f"steps {self.first}..{self.last}"


class ProfilerController:
    """Schedules, runs and summarises profiler windows for one Trainer.

    Every method runs on the engine thread between optimizer steps. A failing
    profiler is reported as a WARNING and never ends the training run.

    Args:
        cfg: the run's [profile] section.
        run_dir: traces go to run_dir/profiles/step_<k>/.
        device: the training device. On CUDA a window also records GPU activity, peak memory and a memory snapshot.
        emit: publishes an event.
        log: publishes a log line, as log(level, message).
        set_state: reports the run state ("profiling" during a window).
    """

    def __init__(
        self,
        cfg: ProfileConfig,
        run_dir: Path,
        device: torch.device,
        *,
        emit: Callable[[Event], None],
        log: Callable[[LogLevel, str], None],
        set_state: Callable[[RunState], None],
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = device
        self._emit = emit
        self._log = log
        self._set_state = set_state
        self._window: _Window | None = None

    @property
    def active(self) -> bool:
        """Whether a capture is scheduled or running."""
        return self._window is not None

    @property
    def _on_cuda(self) -> bool:
        return self.device.type == "cuda"

    # --- the step hooks ----------------------------------------------------

    def request(self, command: CaptureProfile, step: int) -> None:
        """Schedule a window. `step` is the next step the loop will run."""
        if self._window is not None:
            status = "scheduled" if self._window.profile is None else "running"
            self._log("WARNING", f"a profile capture is already {status} ({self._window.span}); ignoring")
            return
        steps = self.cfg.steps if command.steps is None else command.steps
        if steps < 1:
            self._log("WARNING", f"a profile capture needs at least 1 step, got {steps}; ignoring")
            return
        # The warm-up steps run under the profiler before the first recorded step.
        earliest = step + self.cfg.warmup
        first = earliest if command.start_step is None else max(command.start_step, earliest)
        window = _Window(begin=first - self.cfg.warmup, first=first, steps=steps,
                         trace_dir=self.run_dir / "profiles" / f"step_{first}")
        if command.start_step is not None and command.start_step < earliest:
            self._log("INFO", f"profile start step {command.start_step} has passed or leaves no room for "
                              f"{self.cfg.warmup} warm-up steps; profiling {window.span} instead")
        elif window.begin > step:
            self._log("INFO", f"profile of {window.span} scheduled")
        self._window = window

    def before_step(self, step: int) -> None:
        window = self._window
        if window is None or step < window.begin:
            return
        if window.profile is None and not self._open(window):
            return
        if step == window.first:
            self._start_memory_tracking(window)
        # Evaluation and pauses set their own state, but the window is still open.
        self._set_state("profiling")

    def after_step(self, step: int) -> None:
        window = self._window
        if window is None or window.profile is None:
            return
        if step >= window.first:
            window.completed += 1
        if self._on_cuda and step in (window.first - 1, window.last):
            # Synchronizing puts the window's edges between the GPU work of two steps.
            torch.cuda.synchronize(self.device)
        try:
            window.profile.step()
        except Exception as exc:  # noqa: BLE001 - a profiler failure must not end the run
            self._abandon(window, f"the profiler failed at step {step}: {type(exc).__name__}: {exc}")
            return
        if step == window.first - 1:
            window.wall_started = time.perf_counter()
        if step == window.last:
            self._close(window, partial=False)

    def finish(self, step: int) -> None:
        """Save a window that the end of the run cut short. `step` is the number of steps run."""
        window = self._window
        if window is None:
            return
        if window.profile is None:
            self._window = None
            self._log("WARNING", f"profile of {window.span} not captured: the run ended at step {step} before it began")
        elif window.completed == 0:
            self._abandon(window, f"the run ended at step {step} before any step of the profile window finished")
        else:
            self._close(window, partial=True)

    # --- opening and closing a window ----------------------------------------

    def _open(self, window: _Window) -> bool:
        # Kineto prints "profiler_start"/"profiler_stop" lines straight to stderr, which
        # would paint over the terminal UI. Level 6 silences them (kineto's levels end at
        # USDT = 5) and setdefault keeps a level the user chose for debugging.
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")

        activities = [torch.profiler.ProfilerActivity.CPU]
        if self._on_cuda:
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        window.existing_traces = _trace_names(window.trace_dir)

        try:
            profile = torch.profiler.profile(
                activities=activities,
                schedule=_schedule(window.begin, self.cfg.warmup, window.steps),
                on_trace_ready=lambda prof: self._write_trace(window, prof),
                record_shapes=self.cfg.record_shapes,
                profile_memory=self.cfg.profile_memory,
                with_stack=self.cfg.with_stack,
                with_flops=self.cfg.with_flops,
            )
            profile.step_num = window.begin
            if self._on_cuda and self.cfg.warmup == 0:
                torch.cuda.synchronize(self.device)
            window.exit_stack.enter_context(profile)
        except Exception as exc:  # noqa: BLE001 - a profiler failure must not end the run
            self._window = None
            window.exit_stack.close()
            self._log("WARNING", f"could not start the profiler for {window.span}: {type(exc).__name__}: {exc}")
            return False

        window.profile = profile
        window.wall_started = time.perf_counter()
        self._emit(ProfileStarted(step=window.first, steps=window.steps))
        return True

    def _write_trace(self, window: _Window, prof: torch.profiler.profile) -> None:
        torch.profiler.tensorboard_trace_handler(str(window.trace_dir))(prof)
        written = sorted(window.trace_dir / name for name in _trace_names(window.trace_dir) - window.existing_traces)
        if written:
            window.trace_path = max(written, key=lambda path: path.stat().st_mtime_ns)

    def _close(self, window: _Window, *, partial: bool) -> None:
        """Stop the profiler, save the trace and memory snapshot, and publish the summary."""
        wall_us = (time.perf_counter() - window.wall_started) * 1e6
        profile = window.profile
        assert profile is not None
        try:
            # Exiting the profile stops it, and for a cut-short window it also writes the trace.
            window.exit_stack.close()
        except Exception as exc:  # noqa: BLE001 - a profiler failure must not end the run
            self._abandon(window, f"the profiler failed while stopping: {type(exc).__name__}: {exc}")
            return
        self._stop_memory_tracking(window)
        self._window = None
        window.profile = None

        summary = self._summarise(window, profile, wall_us)
        # torch's profile object is part of reference cycles (its action table holds its own
        # methods), so only the cycle collector frees the recorded events, which can be large.
        del profile
        gc.collect()
        if summary is not None:
            self._publish(window, summary, partial)
        self._after_window(partial)

    def _summarise(self, window: _Window, profile: torch.profiler.profile, wall_us: float) -> Summary | None:
        try:
            if window.trace_path is None:
                raise RuntimeError(f"no trace file appeared in {window.trace_dir}")
            summary = summarise(
                profile, first=window.first, completed=window.completed, on_device=self._on_cuda,
                top_ops=self.cfg.top_ops, wall_us=wall_us,
                cpu_memory=self.cfg.profile_memory and not self._on_cuda,
            )
        except Exception as exc:  # noqa: BLE001 - a summary failure must not end the run
            self._log("WARNING", f"profile of {window.span} saved to {window.trace_dir}, "
                                 f"but its summary failed: {type(exc).__name__}: {exc}")
            return None
        if self._on_cuda:
            summary = dataclasses.replace(summary, peak_memory_bytes=torch.cuda.max_memory_allocated(self.device))
        return summary

    def _publish(self, window: _Window, summary: Summary, partial: bool) -> None:
        assert window.trace_path is not None
        recorded = window.completed
        self._emit(ProfileCaptured(
            step=window.first, steps=recorded, trace_path=str(window.trace_path),
            memory_snapshot_path=str(window.memory_snapshot_path) if window.memory_snapshot_path else None,
            window_ms=summary.window_us / 1e3, rows=summary.rows, phases=summary.phases,
            peak_memory_bytes=summary.peak_memory_bytes,
            time_column="self CUDA" if self._on_cuda else "self CPU", partial=partial,
        ))
        cut = f" (cut short after {recorded} of {window.steps} steps)" if partial else ""
        self._log("INFO", f"profile of steps {window.first}..{window.first + recorded - 1}{cut} "
                          f"saved to {window.trace_path}")
        if window.memory_snapshot_path is not None:
            self._log("INFO", f"CUDA memory snapshot saved to {window.memory_snapshot_path} "
                              "(open it at https://pytorch.org/memory_viz)")

    def _abandon(self, window: _Window, reason: str) -> None:
        self._window = None
        with contextlib.suppress(Exception):
            window.exit_stack.close()
        window.profile = None
        self._stop_memory_tracking(window, save=False)
        self._log("WARNING", f"profile of {window.span} abandoned: {reason}")
        self._after_window(partial=True)

    def _after_window(self, partial: bool) -> None:
        # A cut-short window means the run is ending, and the Trainer reports that state itself.
        if not partial:
            self._set_state("running")

    # --- CUDA memory -----------------------------------------------------------

    def _start_memory_tracking(self, window: _Window) -> None:
        if not self._on_cuda:
            return
        # NOTE: the CUDA branches have not run in this project's CPU-only tests. Resetting the
        # peak also makes StepMetrics.gpu_peak_bytes count from the window's start afterwards.
        torch.cuda.reset_peak_memory_stats(self.device)
        if not self.cfg.profile_memory:
            return
        try:
            torch.cuda.memory._record_memory_history(max_entries=MEMORY_HISTORY_ENTRIES)
        except Exception as exc:  # noqa: BLE001 - the snapshot is optional
            self._log("WARNING", f"CUDA memory history not recorded: {type(exc).__name__}: {exc}")
            return
        window.memory_snapshot_path = window.trace_dir / "memory_snapshot.pickle"

    def _stop_memory_tracking(self, window: _Window, *, save: bool = True) -> None:
        path = window.memory_snapshot_path
        if path is None:
            return
        try:
            if save:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.cuda.memory._dump_snapshot(str(path))
        except Exception as exc:  # noqa: BLE001 - the snapshot is optional
            window.memory_snapshot_path = None
            self._log("WARNING", f"CUDA memory snapshot not saved to {path}: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                torch.cuda.memory._record_memory_history(enabled=None)
        if not save:
            window.memory_snapshot_path = None


def _schedule(begin: int, warmup: int, active: int) -> Callable[[int], torch.profiler.ProfilerAction]:
    """Build a profiler schedule over training steps: `warmup` steps from `begin`, then `active` recorded ones.

    This is torch.profiler.schedule(wait=0, warmup=warmup, active=active, repeat=1)
    counted from `begin`, so that ProfilerStep#N in the trace is training step N.
    It also skips torch's warning about warmup=0, which would print over the
    terminal UI.
    """
    Action = torch.profiler.ProfilerAction

    def action(step_num: int) -> torch.profiler.ProfilerAction:
        # The profile evaluates step 0 before the controller sets step_num to `begin`.
        offset = max(step_num - begin, 0)
        if offset < warmup:
            return Action.WARMUP
        if offset < warmup + active - 1:
            return Action.RECORD
        if offset == warmup + active - 1:
            return Action.RECORD_AND_SAVE
        return Action.NONE

    return action


def _trace_names(folder: Path) -> frozenset[str]:
    if not folder.is_dir():
        return frozenset()
    return frozenset(path.name for path in folder.iterdir() if path.name.endswith(TRACE_SUFFIXES))
