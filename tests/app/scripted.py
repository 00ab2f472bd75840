"""A scripted engine host and a deterministic event sequence for app tests.

Every event carries an explicit `time`, so the app's elapsed time and ETA,
and therefore the snapshots, do not depend on when a test runs.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from engine.config import Config, load_config
from engine.events import (
    CheckpointSaved, Command, EvalResult, Event, Pause, Resume, RunFinished, RunStarted, SaveCheckpoint,
    StateChanged, StepMetrics, Stop,
)

T0 = 1_700_000_000.0
"""Start time of the scripted run (2023-11-14 22:13:20 UTC)."""
STEP_SECONDS = 0.25
MAX_ITERS = 1000
RUN_NAME = "shakespeare-char"
SAMPLE = "ROMEO:\nWhat light through yonder window breaks?\nIt is the east, and Juliet is the sun."


def make_config() -> Config:
    return load_config(None, [f'run.name="{RUN_NAME}"', f"train.max_iters={MAX_ITERS}", "eval.interval=100"])


def run_started(config: Config | None = None, *, time: float = T0) -> RunStarted:
    config = config or make_config()
    return RunStarted(
        run_id=f"{RUN_NAME}-20231114-221320", run_dir=f"runs/{RUN_NAME}-20231114-221320",
        config=config.to_dict(), config_toml=config.to_toml(), device="cuda", device_name="NVIDIA H100 80GB HBM3",
        dtype="bfloat16", n_params=10_745_088, n_params_non_embedding=10_737_408, flops_per_token=6.9e7,
        flops_formula="6N + 12LTC", peak_flops=989e12, peak_flops_source="table: H100 SXM bf16 dense",
        start_step=0, max_iters=MAX_ITERS, tokens_per_step=16_384, time=time,
    )


def loss_at(step: int) -> float:
    """A decaying loss with deterministic wiggle and one spike at step 150."""
    loss = 1.3 + 2.9 * math.exp(-step / 60) + 0.05 * math.sin(step * 0.7)
    return loss + (1.5 if step == 150 else 0.0)


def step_metrics(step: int, *, time: float | None = None) -> StepMetrics:
    gib = 1024**3
    return StepMetrics(
        step=step, loss=loss_at(step), lr=1e-3 * min(1.0, (step + 1) / 100), grad_norm=0.4 + 1.2 * math.exp(-step / 40),
        step_time_s=STEP_SECONDS, data_time_s=0.002, tokens_per_s=16_384 / STEP_SECONDS + 300 * math.sin(step / 25),
        mfu=0.0046, gpu_allocated_bytes=int(2.1 * gib), gpu_reserved_bytes=int(3.0 * gib),
        gpu_peak_bytes=int(2.6 * gib), rss_bytes=int(1.4 * gib), cpu_percent=99.0,
        time=time if time is not None else T0 + 5.0 + step * STEP_SECONDS,
    )


def eval_result(step: int) -> EvalResult:
    return EvalResult(step=step, train_loss=loss_at(step) - 0.02, val_loss=loss_at(step) + 0.08,
                      sample=SAMPLE, time=T0 + 5.0 + step * STEP_SECONDS + 0.1)


def training_events(steps: int, *, start: int = 0) -> list[Event]:
    """Step metrics for steps [start, start + steps), with an eval every 100 steps."""
    events: list[Event] = []
    for step in range(start, start + steps):
        if step % 100 == 0:
            events.append(eval_result(step))
        events.append(step_metrics(step))
    return events


def opening(config: Config | None = None) -> list[Event]:
    return [run_started(config), StateChanged(state="running", step=0, time=T0 + 5.0)]


class ScriptedHost:
    """An EngineHost that replays queued events and records the commands it receives.

    With `respond` set it replies to each command with the events the engine
    would emit at the next step boundary: Pause and Resume change the state,
    SaveCheckpoint saves, and Stop saves when requested and finishes the run.
    """

    def __init__(self, events: Iterable[Event] = (), *, respond: bool = True) -> None:
        self._queue: deque[Event] = deque(events)
        self.respond = respond
        self.commands: list[Command] = []
        self.closed = False
        self._finished_drained = False
        self.step = 0

    def push(self, *events: Event) -> None:
        """Queue events for the next drain."""
        self._queue.extend(events)

    def start(self) -> None:
        pass

    def drain(self, max_items: int | None = None) -> list[Event]:
        count = len(self._queue) if max_items is None else min(max_items, len(self._queue))
        batch = [self._queue.popleft() for _ in range(count)]
        for event in batch:
            if isinstance(event, StepMetrics):
                self.step = event.step + 1
            if isinstance(event, RunFinished):
                self._finished_drained = True
        return batch

    def send(self, command: Command) -> None:
        self.commands.append(command)
        if self.respond:
            self._queue.extend(self._response(command))

    def _response(self, command: Command) -> list[Event]:
        when = T0 + 1000.0
        if isinstance(command, Pause):
            return [StateChanged(state="paused", step=self.step, time=when)]
        if isinstance(command, Resume):
            return [StateChanged(state="running", step=self.step, time=when)]
        if isinstance(command, SaveCheckpoint):
            return [CheckpointSaved(step=self.step, path="runs/x/ckpt.pt", reason="manual", time=when)]
        if isinstance(command, Stop):
            saved = [CheckpointSaved(step=self.step, path="runs/x/ckpt.pt", reason="stop", time=when)]
            return [*(saved if command.save else []), StateChanged(state="finished", step=self.step, time=when),
                    RunFinished(reason="stopped", step=self.step, time=when)]
        return []

    @property
    def alive(self) -> bool:
        return not self._finished_drained

    def close(self, timeout: float = 10.0) -> None:
        self.closed = True
