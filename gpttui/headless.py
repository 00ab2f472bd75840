"""Plain-line reporter for runs without a terminal UI (`--headless`, pipes, batch jobs).

Prints a nanoGPT-style line every train.log_interval steps and one per eval,
and turns SIGINT/SIGTERM into a clean stop at the next step boundary.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType
from typing import TextIO

from engine.events import (
    CaptureProfile, CheckpointSaved, EvalResult, Event, LogRecord, NonFiniteLoss, ProfileCaptured,
    RunFinished, RunStarted, StepMetrics, Stop,
)
from gpttui.bridge import EngineHost
from gpttui.format import format_bytes, format_count, format_percent

_POLL_INTERVAL_S = 0.05


class HeadlessReporter:
    """Drains an engine host and prints its events as lines of text."""

    def __init__(self, host: EngineHost, *, log_interval: int, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.host = host
        self.log_interval = log_interval
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.finished: RunFinished | None = None
        self._interrupts = 0

    def install_signal_handlers(self) -> None:
        """Stop cleanly on the first SIGINT or SIGTERM, exit at once on a second; profile on SIGUSR1."""
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, self._on_profile_signal)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            print("gpttui: second interrupt, exiting without saving", file=self.err, flush=True)
            os._exit(130)
        name = signal.Signals(signum).name
        print(f"gpttui: {name} received, saving a checkpoint and stopping at the next step "
              "(press Ctrl+C again to exit at once)", file=self.err, flush=True)
        self.host.send(Stop(save=True))

    def _on_profile_signal(self, signum: int, frame: FrameType | None) -> None:
        self.host.send(CaptureProfile())

    def run(self) -> RunFinished:
        """Print events until the run finishes; return the finish event."""
        while self.finished is None:
            events = self.host.drain()
            for event in events:
                self.handle(event)
            if not events:
                time.sleep(_POLL_INTERVAL_S)
        self.host.close()
        return self.finished

    def handle(self, event: Event) -> None:
        if isinstance(event, StepMetrics):
            if event.step % self.log_interval == 0:
                self._print(_step_line(event))
        elif isinstance(event, EvalResult):
            self._print(f"step {event.step}: train loss {event.train_loss:.4f}, val loss {event.val_loss:.4f}")
        elif isinstance(event, RunStarted):
            self._print(_started_lines(event))
        elif isinstance(event, CheckpointSaved):
            self._print(f"saved checkpoint to {event.path} at step {event.step} ({event.reason})")
        elif isinstance(event, NonFiniteLoss):
            self._print(f"step {event.step}: loss is {event.loss}", error=True)
        elif isinstance(event, ProfileCaptured):
            self._print(_profile_lines(event))
        elif isinstance(event, LogRecord):
            if event.level != "DEBUG":
                prefix = "" if event.level == "INFO" else f"{event.level.lower()}: "
                self._print(prefix + event.message, error=event.level in ("WARNING", "ERROR"))
        elif isinstance(event, RunFinished):
            self.finished = event
            if event.reason == "failed":
                self._print(f"gpttui: error: {event.error}", error=True)
            else:
                self._print(f"run {event.reason} at step {event.step}")

    def _print(self, text: str, *, error: bool = False) -> None:
        print(text, file=self.err if error else self.out, flush=True)


def _step_line(event: StepMetrics) -> str:
    mfu = "n/a" if event.mfu is None else format_percent(event.mfu)
    line = (
        f"iter {event.step}: loss {event.loss:.4f}, time {event.step_time_s * 1e3:.2f}ms, "
        f"tok/s {format_count(event.tokens_per_s)}, mfu {mfu}, lr {event.lr:.2e}, "
        f"grad norm {event.grad_norm:.3f}, rss {format_bytes(event.rss_bytes)}"
    )
    if event.gpu_reserved_bytes is not None:
        line += f", gpu reserved {format_bytes(event.gpu_reserved_bytes)}"
    return line


def _started_lines(event: RunStarted) -> str:
    peak = "unknown" if event.peak_flops is None else f"{event.peak_flops / 1e12:.2f} TFLOP/s"
    return "\n".join([
        f"run {event.run_id} in {event.run_dir}",
        f"device {event.device_name}, dtype {event.dtype}",
        f"parameters {format_count(event.n_params)} ({format_count(event.n_params_non_embedding)} non-embedding), "
        f"{event.tokens_per_step:,} tokens per step",
        f"MFU: {event.flops_formula}",
        f"MFU peak: {peak} from {event.peak_flops_source}",
        f"steps {event.start_step} -> {event.max_iters}",
    ])


def _profile_lines(event: ProfileCaptured) -> str:
    last = event.step + event.steps - 1
    cut = " (cut short by the end of the run)" if event.partial else ""
    lines = [f"profile of steps {event.step}..{last}{cut}: {event.window_ms:.1f} ms, trace {event.trace_path}"]
    lines.append("  " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in event.phases))
    if event.peak_memory_bytes is not None:
        lines.append(f"  peak memory {format_bytes(event.peak_memory_bytes)}")
    if event.memory_snapshot_path is not None:
        lines.append(f"  memory snapshot {event.memory_snapshot_path}")
    lines.append(f"  {'op':<40} {'calls':>7} {event.time_column:>12} {'total':>12} {'%':>6} {'FLOPs':>7}")
    for row in event.rows:
        lines.append(
            f"  {row.name[:40]:<40} {row.calls:>7} {row.self_us / 1e3:>10.2f}ms {row.total_us / 1e3:>10.2f}ms "
            f"{row.percent:>5.1f}% {format_count(row.flops):>7}"
        )
    return "\n".join(lines)
