"""`gpttui bench`: burn-in steps, then timed steps, reported as ms/iter, tokens/s and MFU."""

from __future__ import annotations

import dataclasses
import statistics
import sys
from pathlib import Path

from engine.config import Config
from engine.events import RunFinished, RunStarted, StepMetrics
from gpttui.bridge import ThreadHost
from gpttui.format import format_count


def run_bench(config: Config, run_dir: Path) -> int:
    """Run bench.burn_in + bench.steps steps with no eval or checkpoints; print the timed figures."""
    total = config.bench.burn_in + config.bench.steps
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, max_iters=total))
    host = ThreadHost(config, run_dir=run_dir, bench=True)
    host.start()

    started: RunStarted | None = None
    timed: list[StepMetrics] = []
    finished: RunFinished | None = None
    while finished is None:
        for event in host.drain():
            if isinstance(event, RunStarted):
                started = event
                print(f"bench: {event.device_name}, {event.dtype}, {format_count(event.n_params)} parameters, "
                      f"{event.tokens_per_step:,} tokens per step, {config.bench.burn_in} burn-in + "
                      f"{config.bench.steps} timed steps", flush=True)
            elif isinstance(event, StepMetrics) and event.step >= config.bench.burn_in:
                timed.append(event)
            elif isinstance(event, RunFinished):
                finished = event
        host.close(timeout=0.05)

    if finished.reason == "failed":
        print(f"gpttui: error: {finished.error}", file=sys.stderr)
        return 1
    assert started is not None
    step_ms = statistics.median(m.step_time_s for m in timed) * 1e3
    tokens_per_s = started.tokens_per_step / (step_ms / 1e3)
    mfu = "n/a" if not started.peak_flops else f"{started.flops_per_token * tokens_per_s / started.peak_flops:.2%}"
    print(f"median {step_ms:.2f} ms/iter, {format_count(tokens_per_s)} tok/s, MFU {mfu} "
          f"(peak from {started.peak_flops_source})")
    return 0
