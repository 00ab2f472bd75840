"""Events (engine -> UI), commands (UI -> engine) and the channel between them.

Every event and command is a frozen dataclass of plain values (numbers, strings,
tuples, dicts of those), so it pickles across a process boundary and serialises
to one JSON line in metrics.jsonl. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

RunState = Literal[
    "starting", "compiling", "running", "paused", "evaluating", "saving", "profiling",
    "finished", "failed",
]
FinishReason = Literal["completed", "stopped", "failed"]


def _now() -> float:
    return time.time()


# --- events ---------------------------------------------------------------


@dataclass(frozen=True)
class RunStarted:
    """The resolved run: config, device and the conventions behind MFU."""

    run_id: str
    run_dir: str
    config: dict[str, Any]
    config_toml: str
    device: str
    device_name: str
    dtype: str
    n_params: int
    n_params_non_embedding: int
    flops_per_token: float
    flops_formula: str
    peak_flops: float | None
    peak_flops_source: str
    start_step: int
    max_iters: int
    tokens_per_step: int
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class StateChanged:
    """The engine moved to another state (running, paused, evaluating, ...)."""

    state: RunState
    step: int
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class StepMetrics:
    """Metrics of one optimizer step; memory in bytes, times in seconds."""

    step: int
    loss: float
    lr: float
    grad_norm: float
    step_time_s: float
    data_time_s: float
    tokens_per_s: float
    mfu: float | None
    gpu_allocated_bytes: int | None
    gpu_reserved_bytes: int | None
    gpu_peak_bytes: int | None
    rss_bytes: int
    cpu_percent: float
    dropped_before: int = 0
    """Step events the channel dropped since the previous delivered one."""
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class EvalResult:
    """Mean losses over eval.iters batches of each split, and a generated sample."""

    step: int
    train_loss: float
    val_loss: float
    sample: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str
    reason: Literal["eval", "best", "manual", "stop", "final"]
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class NonFiniteLoss:
    """A step produced a NaN or inf loss; the optimizer step was skipped."""

    step: int
    loss: float
    stopping: bool
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class ProfileRow:
    """One op of a profiler summary; times in microseconds."""

    name: str
    calls: int
    self_us: float
    total_us: float
    percent: float
    flops: int | None


@dataclass(frozen=True)
class ProfileStarted:
    step: int
    steps: int
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class ProfileCaptured:
    """Summary of a finished profiler window, computed on the engine thread."""

    step: int
    steps: int
    trace_path: str
    memory_snapshot_path: str | None
    window_ms: float
    rows: tuple[ProfileRow, ...]
    phases: tuple[tuple[str, float], ...]
    """(phase, milliseconds) for data, forward, backward, optimizer and other."""
    peak_memory_bytes: int | None
    time_column: str
    """Time column the rows are sorted by: "self CPU" or "self CUDA"."""
    partial: bool = False
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class TensorRow:
    """One tensor of the model as the inspector shows it."""

    name: str
    kind: Literal["parameter", "buffer", "state"]
    shape: tuple[int, ...]
    dtype: str
    device: str
    numel: int
    requires_grad: bool
    in_parameters: bool
    in_buffers: bool
    in_state_dict: bool
    persistent: bool
    norm: float | None
    grad_norm: float | None
    update_ratio: float | None
    tied_to: tuple[str, ...]
    decay_group: Literal["decay", "no_decay"] | None


@dataclass(frozen=True)
class ModuleRow:
    name: str
    class_name: str
    numel: int
    """Parameters under this module, each shared tensor counted once."""


@dataclass(frozen=True)
class OptimizerGroupRow:
    name: str
    weight_decay: float
    lr: float
    numel: int
    tensors: int


@dataclass(frozen=True)
class ParameterSnapshot:
    step: int
    modules: tuple[ModuleRow, ...]
    tensors: tuple[TensorRow, ...]
    groups: tuple[OptimizerGroupRow, ...]
    total_params: int
    trainable_params: int
    frozen_params: int
    buffer_numel: int
    non_embedding_params: int
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class LogRecord:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    message: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class RunFinished:
    reason: FinishReason
    step: int
    error: str | None = None
    time: float = field(default_factory=_now)


Event = (
    RunStarted | StateChanged | StepMetrics | EvalResult | CheckpointSaved | NonFiniteLoss
    | ProfileStarted | ProfileCaptured | ParameterSnapshot | LogRecord | RunFinished
)

# --- commands -------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Stop:
    save: bool = True


@dataclass(frozen=True)
class SaveCheckpoint:
    pass


@dataclass(frozen=True)
class CaptureProfile:
    steps: int | None = None
    """Active steps of the window; None takes profile.steps from the config."""
    start_step: int | None = None
    """Begin the window at this step; None begins at the next step."""


@dataclass(frozen=True)
class RequestParameters:
    watch_every: int = 0
    """Send a fresh snapshot every this many steps until 0 is requested."""


@dataclass(frozen=True)
class SetRequiresGrad:
    name: str
    """A parameter name, or a module name to apply to every parameter under it."""
    requires_grad: bool


Command = Pause | Resume | Stop | SaveCheckpoint | CaptureProfile | RequestParameters | SetRequiresGrad

# --- serialisation ----------------------------------------------------------

_EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        RunStarted, StateChanged, StepMetrics, EvalResult, CheckpointSaved, NonFiniteLoss,
        ProfileStarted, ProfileCaptured, ParameterSnapshot, LogRecord, RunFinished,
    )
}
_NESTED: dict[str, type] = {
    "rows": ProfileRow, "modules": ModuleRow, "tensors": TensorRow, "groups": OptimizerGroupRow,
}


def event_to_json(event: Event) -> str:
    """Serialise an event to one JSON line with an "event" field naming its type."""
    record = {"event": type(event).__name__, **dataclasses.asdict(event)}
    return json.dumps(record, allow_nan=True, separators=(",", ":"))


def event_from_dict(record: dict[str, Any]) -> Event:
    """Rebuild an event from a metrics.jsonl record.

    Raises:
        ValueError: the record names no known event type.
    """
    fields = dict(record)
    name = fields.pop("event", None)
    cls = _EVENT_TYPES.get(name)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event type {name!r} in metrics record")
    for key, row_cls in _NESTED.items():
        if key in fields and isinstance(fields[key], list):
            fields[key] = tuple(_row_from_dict(row_cls, row) for row in fields[key])
    if cls is ProfileCaptured:
        fields["phases"] = tuple((str(n), float(ms)) for n, ms in fields["phases"])
    return cls(**fields)


def _row_from_dict(cls: type, row: dict[str, Any]) -> Any:
    values = dict(row)
    for key in ("shape", "tied_to"):
        if key in values and isinstance(values[key], list):
            values[key] = tuple(values[key])
    return cls(**values)


# --- the channel ------------------------------------------------------------


class EventChannel:
    """A bounded, never-blocking queue of events from the engine thread.

    `put` never waits. Step metrics are the only events that may be lost: when
    more than `max_pending_steps` of them wait, the oldest pending one is
    dropped and counted, and the next delivered StepMetrics carries the count
    in `dropped_before`. Every other event is always kept, so eval results,
    checkpoints, errors and the finish event reach the consumer.
    """

    def __init__(self, max_pending_steps: int = 1024) -> None:
        self._lock = threading.Lock()
        self._items: deque[Event] = deque()
        self._pending_steps = 0
        self._max_pending_steps = max_pending_steps
        self._dropped_since_delivery = 0
        self.dropped_total = 0
        """Step events dropped over the channel's life."""

    def put(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, StepMetrics):
                if self._pending_steps >= self._max_pending_steps:
                    self._drop_oldest_step()
                self._pending_steps += 1
            self._items.append(event)

    def _drop_oldest_step(self) -> None:
        for index, item in enumerate(self._items):
            if isinstance(item, StepMetrics):
                del self._items[index]
                self._pending_steps -= 1
                self._dropped_since_delivery += 1
                self.dropped_total += 1
                return

    def drain(self, max_items: int | None = None) -> list[Event]:
        """Take up to `max_items` waiting events (all when None), oldest first."""
        with self._lock:
            count = len(self._items) if max_items is None else min(max_items, len(self._items))
            batch = [self._items.popleft() for _ in range(count)]
            for index, item in enumerate(batch):
                if isinstance(item, StepMetrics):
                    self._pending_steps -= 1
                    if self._dropped_since_delivery:
                        batch[index] = dataclasses.replace(
                            item, dropped_before=item.dropped_before + self._dropped_since_delivery
                        )
                        self._dropped_since_delivery = 0
            return batch

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
