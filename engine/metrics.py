"""Step metrics read one step late, and the metrics.jsonl writer.

Reading a CUDA loss with .item() right after the step would stall the host
until the GPU drains its queue, leaving the GPU idle while the next step is
being launched. Instead the loss and gradient norm are copied to pinned host
memory with non_blocking=True and a CUDA event is recorded; they are read
after the next step has been queued, when the GPU has long finished them.
On a CPU the tensors are ready at once and the lag costs nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch

from engine.events import Event, StepMetrics, event_to_json


@dataclass
class PendingStep:
    step: int
    loss: torch.Tensor
    grad_norm: torch.Tensor
    ready: torch.cuda.Event | None
    lr: float
    data_time_s: float


class LaggedReader:
    """Holds one step's device scalars until they can be read without a stall."""

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._pending: PendingStep | None = None

    def push(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor, lr: float, data_time_s: float) -> None:
        values = torch.stack([loss.detach().float(), grad_norm.detach().float()])
        ready = None
        if self._device.type == "cuda":
            host = torch.empty(2, dtype=torch.float32, pin_memory=True)
            host.copy_(values, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record()
            values = host
        self._pending = PendingStep(step, values[0], values[1], ready, lr, data_time_s)

    def pop(self) -> tuple[PendingStep, float, float] | None:
        """Return the pending step with its loss and grad norm as floats, waiting if needed."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        if pending.ready is not None:
            pending.ready.synchronize()  # the step was queued a step ago, so this rarely waits
        return pending, float(pending.loss), float(pending.grad_norm)


class StepClock:
    """Wall-clock step times measured between consecutive completed steps."""

    def __init__(self) -> None:
        self._last: float | None = None

    def reset(self) -> None:
        """Forget the last mark, after a pause, eval or checkpoint that is not step time."""
        self._last = None

    def lap(self, started: float) -> float:
        now = time.perf_counter()
        base = self._last if self._last is not None else started
        self._last = now
        return now - base


class MetricsLog:
    """Appends every event as one JSON line; flushes on rare events and once a second."""

    def __init__(self, path: Path) -> None:
        self._handle: IO[str] = path.open("a", encoding="utf-8")
        self._last_flush = time.monotonic()

    def write(self, event: Event) -> None:
        self._handle.write(event_to_json(event) + "\n")
        now = time.monotonic()
        if not isinstance(event, StepMetrics) or now - self._last_flush > 1.0:
            self._handle.flush()
            self._last_flush = now

    def close(self) -> None:
        self._handle.close()
