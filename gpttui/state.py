"""The app's model of the run, rebuilt from engine events.

`RunView.apply` folds a batch of events into plain Python state and metric
histories and returns the lines the Logs tab should show. It imports neither
textual nor torch, so it is tested without a terminal, and widgets only read it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from engine.events import (
    CheckpointSaved, EvalResult, Event, LogRecord, NonFiniteLoss, ParameterSnapshot, ProfileCaptured,
    ProfileStarted, RunFinished, RunStarted, RunState, StateChanged, StepMetrics,
)
from gpttui.format import GIB, format_bytes, format_loss
from gpttui.series import Series

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

EMA_BETA = 0.95
"""Smoothing of the loss EMA; each step moves it 5 % of the way to the new loss."""

ETA_WINDOW = 50
"""Recent steps whose wall-clock rate predicts the time left."""


@dataclass(frozen=True)
class LogLine:
    """One line for the Logs tab."""

    time: float
    level: LogLevel
    text: str


class LossEma:
    """Bias-corrected exponential moving average, as Adam corrects its moments.

    Without the correction the average starts at 0 and takes about
    1 / (1 - beta) steps to reach the loss, which draws a misleading ramp.
    """

    def __init__(self, beta: float = EMA_BETA) -> None:
        self.beta = beta
        self._average = 0.0
        self._count = 0

    def update(self, value: float) -> float:
        self._count += 1
        self._average = self.beta * self._average + (1 - self.beta) * value
        return self._average / (1 - self.beta**self._count)


class MetricHistory:
    """Per-step histories of every plotted metric, keyed by step; memory in GiB."""

    def __init__(self) -> None:
        self.loss = Series("train/loss")
        self.loss_ema = Series("train/loss_ema")
        self.val_loss = Series("val/loss")
        self.lr = Series("train/lr")
        self.tokens_per_s = Series("perf/tokens_per_s")
        self.mfu_percent = Series("perf/mfu_percent")
        self.grad_norm = Series("train/grad_norm")
        self.gpu_allocated_gib = Series("memory/allocated_gib")
        self.gpu_reserved_gib = Series("memory/reserved_gib")
        self.gpu_peak_gib = Series("memory/peak_gib")
        self.rss_gib = Series("memory/rss_gib")
        self._ema = LossEma()

    def add_step(self, event: StepMetrics) -> None:
        step = event.step
        if self.loss.append(step, event.loss):
            self.loss_ema.append(step, self._ema.update(event.loss))
        self.lr.append(step, event.lr)
        self.tokens_per_s.append(step, event.tokens_per_s)
        if event.mfu is not None:
            self.mfu_percent.append(step, event.mfu * 100)
        self.grad_norm.append(step, event.grad_norm)
        for series, value in (
            (self.gpu_allocated_gib, event.gpu_allocated_bytes),
            (self.gpu_reserved_gib, event.gpu_reserved_bytes),
            (self.gpu_peak_gib, event.gpu_peak_bytes),
        ):
            if value is not None:
                series.append(step, value / GIB)
        self.rss_gib.append(step, event.rss_bytes / GIB)

    def add_eval(self, event: EvalResult) -> None:
        self.val_loss.append(event.step, event.val_loss)


class RunView:
    """The app's model of the run: latest values, histories and the finish."""

    def __init__(self, run_name: str) -> None:
        self.run_name = run_name
        self.started: RunStarted | None = None
        self.state: RunState = "starting"
        self.step = 0
        """Optimizer steps completed, as StateChanged and RunFinished count them."""
        self.max_iters: int | None = None
        self.latest: StepMetrics | None = None
        self.last_eval: EvalResult | None = None
        self.best_val_loss: float | None = None
        self.last_checkpoint: CheckpointSaved | None = None
        self.finished: RunFinished | None = None
        self.parameters: ParameterSnapshot | None = None
        self.profile: ProfileCaptured | None = None
        self.history = MetricHistory()
        self.dropped_steps = 0
        """StepMetrics the engine channel dropped because the app fell behind."""
        self.nonfinite_steps = 0
        self.version = 0
        """Counter of applied batches; views compare it with the value they drew to skip unchanged redraws."""
        self._recent: deque[tuple[float, int]] = deque(maxlen=ETA_WINDOW)
        self._first_event_time: float | None = None

    # --- applying events -----------------------------------------------------

    def apply(self, events: list[Event]) -> list[LogLine]:
        """Fold a batch of events into the view; return lines for the Logs tab."""
        lines: list[LogLine] = []
        for event in events:
            if self._first_event_time is None:
                self._first_event_time = event.time
            line = self._apply_one(event)
            if line is not None:
                lines.append(line)
        if events:
            self.version += 1
        return lines

    def _apply_one(self, event: Event) -> LogLine | None:
        if isinstance(event, StepMetrics):
            self._apply_step(event)
            return None
        if isinstance(event, StateChanged):
            self.state = event.state
            self.step = max(self.step, event.step)
            if event.state == "paused":
                # A pause is not training time; the ETA restarts from the steps after it.
                self._recent.clear()
            return None
        if isinstance(event, EvalResult):
            return self._apply_eval(event)
        if isinstance(event, RunStarted):
            return self._apply_started(event)
        if isinstance(event, RunFinished):
            return self._apply_finished(event)
        return self._apply_notice(event)

    def _apply_step(self, event: StepMetrics) -> None:
        self.latest = event
        # StepMetrics.step is the index of the finished step; the view counts completed steps.
        self.step = max(self.step, event.step + 1)
        self.dropped_steps += event.dropped_before
        self.history.add_step(event)
        self._recent.append((event.time, event.step))

    def _apply_eval(self, event: EvalResult) -> LogLine:
        self.last_eval = event
        if math.isfinite(event.val_loss) and (self.best_val_loss is None or event.val_loss < self.best_val_loss):
            self.best_val_loss = event.val_loss
        self.history.add_eval(event)
        return LogLine(
            event.time, "INFO",
            f"eval at step {event.step}: train loss {format_loss(event.train_loss)}, "
            f"val loss {format_loss(event.val_loss)}",
        )

    def _apply_started(self, event: RunStarted) -> LogLine:
        self.started = event
        self.max_iters = event.max_iters
        self.step = event.start_step
        return LogLine(
            event.time, "INFO",
            f"run started on {event.device_name} in {event.dtype} with {event.n_params:,} parameters; "
            f"run directory {event.run_dir}",
        )

    def _apply_finished(self, event: RunFinished) -> LogLine:
        self.finished = event
        self.state = "failed" if event.reason == "failed" else "finished"
        if event.step >= 0:
            self.step = max(self.step, event.step)
        if event.reason == "failed":
            return LogLine(event.time, "ERROR", f"run failed at step {event.step}: {event.error or 'no error text'}")
        return LogLine(event.time, "INFO", f"run {event.reason} at step {event.step}")

    def _apply_notice(self, event: Event) -> LogLine | None:
        if isinstance(event, LogRecord):
            return LogLine(event.time, event.level, event.message)
        if isinstance(event, CheckpointSaved):
            self.last_checkpoint = event
            return LogLine(event.time, "INFO", f"checkpoint saved at step {event.step} ({event.reason}): {event.path}")
        if isinstance(event, NonFiniteLoss):
            self.nonfinite_steps += 1
            action = "stopping the run" if event.stopping else "optimizer step skipped"
            return LogLine(event.time, "ERROR", f"loss is {event.loss} at step {event.step}; {action}")
        if isinstance(event, ProfileStarted):
            return LogLine(event.time, "INFO", f"profiling {event.steps} steps from step {event.step}")
        if isinstance(event, ProfileCaptured):
            self.profile = event
            peak = f", peak memory {format_bytes(event.peak_memory_bytes)}" if event.peak_memory_bytes else ""
            partial = " (partial window)" if event.partial else ""
            return LogLine(
                event.time, "INFO",
                f"profile captured at step {event.step}{partial}: {event.window_ms:.1f} ms{peak}, "
                f"trace {event.trace_path}",
            )
        if isinstance(event, ParameterSnapshot):
            self.parameters = event
            return None
        return None

    # --- derived values ------------------------------------------------------

    @property
    def is_over(self) -> bool:
        """Whether RunFinished has arrived."""
        return self.finished is not None

    def elapsed_s(self, now: float) -> float | None:
        """Wall-clock seconds since the run started, frozen once it finished."""
        start = self.started.time if self.started is not None else self._first_event_time
        if start is None:
            return None
        end = self.finished.time if self.finished is not None else now
        return max(0.0, end - start)

    def eta_s(self) -> float | None:
        """Seconds left at the wall-clock rate of the last ETA_WINDOW steps since any pause, evals included."""
        if self.max_iters is None or self.finished is not None or len(self._recent) < 2:
            return None
        (first_time, first_step), (last_time, last_step) = self._recent[0], self._recent[-1]
        if last_step <= first_step:
            return None
        seconds_per_step = (last_time - first_time) / (last_step - first_step)
        # StepMetrics.step is the index of the finished step, so step + 1 are done.
        remaining = max(0, self.max_iters - (last_step + 1))
        return remaining * seconds_per_step
