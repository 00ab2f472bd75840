"""Measure training step time before, inside and after a profiler window.

Runs a real Trainer (bench mode: no eval, samples or checkpoints) on
config/small.toml's model on this thread, sends one CaptureProfile so that
the window opens after --before timed steps, and reports medians of:
- wall: the step time that StepMetrics reports;
- CPU: this thread's CPU time inside Trainer.train_step (time.thread_time),
  which other processes on a shared machine barely disturb.
over three ranges:
- before: the steps between the burn-in and the window's warm-up;
- inside: the window's active (recorded) steps;
- after: the steps from --settle steps after the window to the end of the run.
The wall time of the last active step also contains the trace export and the
summary, so it is reported on its own. The check is that `after` stays
within 2 % of `before` in CPU time, which shows that the profiler was stopped
and its callbacks removed. torch runs on one thread by default here, so that
the thread's CPU time is all of the step's work. --no-capture runs the same
steps without a window, which measures how much the machine alone drifts.

    python benchmarks/profiler_overhead.py [--before 100] [--after 100] [--set section.key=value ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import load_config  # noqa: E402
from engine.events import (  # noqa: E402
    CaptureProfile, Command, EventChannel, ProfileCaptured, RunFinished, RunStarted, StepMetrics,
)
from engine.trainer import Trainer  # noqa: E402

TOLERANCE = 0.02
"""The largest relative change of `after` against `before` that passes."""


class TimedTrainer(Trainer):
    """A Trainer that also records each train_step's thread CPU time, in milliseconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cpu_ms: dict[int, float] = {}

    def train_step(self) -> Any:
        started = time.thread_time()
        result = super().train_step()
        self.cpu_ms[self.step] = (time.thread_time() - started) * 1e3
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config" / "small.toml"), help="TOML config of the model")
    parser.add_argument("--burn-in", type=int, default=10, help="untimed steps first")
    parser.add_argument("--before", type=int, default=100, help="timed steps before the window")
    parser.add_argument("--settle", type=int, default=2, help="steps after the window left out of `after`")
    parser.add_argument("--after", type=int, default=100, help="timed steps after the window")
    parser.add_argument("--no-capture", action="store_true",
                        help="send no CaptureProfile: the same ranges then show the machine's own drift and noise")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config key, for example system.device=\"cuda\" or system.threads=4")
    args = parser.parse_args()

    args.overrides = ["system.threads=1", *args.overrides]
    config = load_config(args.config, args.overrides)
    warmup, steps = config.profile.warmup, config.profile.steps
    first = args.burn_in + args.before + warmup
    last = first + steps - 1
    total = last + 1 + args.settle + args.after
    config = load_config(args.config, [*args.overrides, f"train.max_iters={total}"])

    commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
    if not args.no_capture:
        commands.put(CaptureProfile(start_step=first))
    channel = EventChannel(max_pending_steps=total + 16)
    with tempfile.TemporaryDirectory(prefix="gpttui-profiler-overhead-") as run_dir:
        trainer = TimedTrainer(config, channel, commands, run_dir=Path(run_dir), bench=True)
        trainer.run_to_end()
        events = channel.drain()

    finished = [event for event in events if isinstance(event, RunFinished)][-1]
    if finished.reason != "completed":
        print(f"error: the run {finished.reason}: {finished.error}", file=sys.stderr)
        return 1
    started = next(event for event in events if isinstance(event, RunStarted))
    captures = [event for event in events if isinstance(event, ProfileCaptured)]
    wall_ms = {event.step: event.step_time_s * 1e3 for event in events if isinstance(event, StepMetrics)}
    ranges = {
        "before": range(args.burn_in, first - warmup),
        "inside": range(first, last + 1),
        "settling": range(last + 1, last + 1 + args.settle),
        "after": range(last + 1 + args.settle, total),
    }

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"device: {started.device_name}, dtype {started.dtype}, {started.n_params:,} parameters, "
          f"{started.tokens_per_step:,} tokens per step; {args.config}")
    print(f"window: warm-up {warmup}, active steps {first}..{last}, captured {len(captures)}")
    print(f"  {'':<8} {'wall ms':>22} {'CPU ms':>22}  steps")
    for label, steps_range in ranges.items():
        # The last active step's wall time also contains the trace export, printed below.
        wall = [wall_ms[s] for s in steps_range if s != last]
        cpu = [trainer.cpu_ms[s] for s in steps_range]
        print(f"  {label:<8} {_spread(wall):>22} {_spread(cpu):>22}  {len(steps_range)}")
    if captures:
        print(f"  step {last} wall {wall_ms[last]:.2f} ms, with the trace export and summary")

    change = _median_change(trainer.cpu_ms, ranges)
    wall_change = _median_change(wall_ms, ranges)
    verdict = "PASS" if abs(change) <= TOLERANCE else "FAIL"
    print(f"after vs before: CPU {change:+.2%} ({verdict}, tolerance ±{TOLERANCE:.0%}), wall {wall_change:+.2%}")
    return 0 if verdict == "PASS" and len(captures) == (0 if args.no_capture else 1) else 1


def _spread(values: list[float]) -> str:
    """Format a median with its quartiles: "41.20 (40.1–43.0)"."""
    if len(values) < 2:
        return f"{values[0]:.2f}" if values else "–"
    low, _, high = statistics.quantiles(values, n=4)
    return f"{statistics.median(values):.2f} ({low:.1f}–{high:.1f})"


def _median_change(times: dict[int, float], ranges: dict[str, range]) -> float:
    before = statistics.median(times[s] for s in ranges["before"])
    after = statistics.median(times[s] for s in ranges["after"])
    return after / before - 1


if __name__ == "__main__":
    sys.exit(main())
