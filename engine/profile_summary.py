"""The summary of a finished profiler window: top ops, time per phase and peak memory.

Computed on the engine thread from the profile's parsed events, so the UI
receives plain rows and never touches torch.profiler.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch
from torch.autograd import DeviceType
from torch.autograd.profiler_util import FunctionEvent, FunctionEventAvg

from engine.events import ProfileRow

PHASES = ("data", "forward", "backward", "optimizer", "metrics")
"""record_function labels that the Trainer puts around each phase of a step."""


@dataclass(frozen=True)
class Summary:
    """Measurements of a finished window, before they become a ProfileCaptured."""

    window_us: float
    rows: tuple[ProfileRow, ...]
    phases: tuple[tuple[str, float], ...]
    """(phase, milliseconds) for PHASES and "other"."""
    peak_memory_bytes: int | None


def summarise(
    profile: torch.profiler.profile, *, first: int, completed: int, on_device: bool, top_ops: int,
    wall_us: float, cpu_memory: bool,
) -> Summary:
    """Summarise the finished steps first..first+completed-1 of a stopped profile.

    Only events that start inside those steps' ProfilerStep#N ranges count, so a
    window cut short leaves out whatever ran after its last finished step.

    Args:
        profile: a profile whose trace has stopped, with ProfilerStep#N numbered by training step.
        first: the first active step.
        completed: active steps that finished.
        on_device: rank ops by self CUDA time and measure phases in GPU time, instead of CPU time.
        top_ops: rows to keep.
        wall_us: the window's wall time, used when the trace contains no ProfilerStep ranges.
        cpu_memory: compute the peak from the profiler's CPU memory events.
    """
    events: list[FunctionEvent] = list(profile.events())
    step_names = {f"ProfilerStep#{n}" for n in range(first, first + completed)}
    intervals = sorted(
        (event.time_range.start, event.time_range.end) for event in events if event.trace_name in step_names
    )
    window_us = sum(end - start for start, end in intervals) if intervals else wall_us
    inside = _IntervalSet(intervals) if intervals else _IntervalSet([(float("-inf"), float("inf"))])
    host_events = [
        event for event in events
        if event.device_type == DeviceType.CPU and inside.contains(event.time_range.start)
    ]

    def elapsed_us(event: FunctionEvent) -> float:
        return event.device_time_total if on_device else event.cpu_time_total

    phase_ms = [(name, sum(elapsed_us(e) for e in host_events if e.name == name) / 1e3) for name in PHASES]
    # GPU work of several streams can overlap, so on CUDA the phases may add up to more than the window.
    other_ms = max(window_us / 1e3 - sum(ms for _, ms in phase_ms), 0.0)

    ops = [event for event in host_events if _is_op(event.name)]
    rows = _top_rows(ops, on_device=on_device, top_ops=top_ops, window_us=window_us)
    peak = _cpu_peak_bytes(profile, inside) if cpu_memory else None
    return Summary(window_us=window_us, rows=rows, phases=(*phase_ms, ("other", other_ms)), peak_memory_bytes=peak)


def _is_op(name: str) -> bool:
    """Tell ops from phase labels, ProfilerStep#N markers and "[memory]" records."""
    return name not in PHASES and not name.startswith("ProfilerStep") and not name.startswith("[")


def _top_rows(ops: list[FunctionEvent], *, on_device: bool, top_ops: int, window_us: float) -> tuple[ProfileRow, ...]:
    # Grouped by name as EventList.key_averages() groups. That method itself rejects
    # a filtered event list, because it requires the profiler's whole event tree.
    groups: dict[str, FunctionEventAvg] = {}
    for event in ops:
        groups.setdefault(event.key, FunctionEventAvg()).add(event)

    def self_us(avg: FunctionEventAvg) -> float:
        return float(avg.self_device_time_total if on_device else avg.self_cpu_time_total)

    ranked = sorted(groups.values(), key=self_us, reverse=True)[:top_ops]
    return tuple(
        ProfileRow(
            name=avg.key,
            calls=int(avg.count),
            self_us=self_us(avg),
            total_us=float(avg.device_time_total if on_device else avg.cpu_time_total),
            percent=100.0 * self_us(avg) / window_us if window_us > 0 else 0.0,
            flops=int(avg.flops) if avg.flops else None,
        )
        for avg in ranked
    )


def _cpu_peak_bytes(profile: torch.profiler.profile, inside: _IntervalSet) -> int | None:
    """Return the most bytes live at once among CPU allocations made inside the window.

    The profiler's CPU memory events carry no absolute level, and blocks
    allocated before the profiler started are freed without a size, so the
    peak counts only memory allocated during the window.
    """
    # NOTE: kineto_results is an attribute of torch's autograd profiler, not public API (torch 2.13).
    results = getattr(profile.profiler, "kineto_results", None)
    if results is None:
        return None
    start_ns = results.trace_start_ns()
    records = sorted(
        (event.start_ns(), event.nbytes())
        for event in results.events()
        if event.name() == "[memory]" and event.device_type() == DeviceType.CPU
    )
    live_bytes = peak = 0
    for timestamp_ns, nbytes in records:
        if inside.contains((timestamp_ns - start_ns) / 1e3):
            live_bytes += nbytes
            peak = max(peak, live_bytes)
    return peak


class _IntervalSet:
    """Sorted, non-overlapping [start, end) intervals in microseconds, with a fast membership test."""

    def __init__(self, intervals: list[tuple[float, float]]) -> None:
        self._starts = [start for start, _ in intervals]
        self._ends = [end for _, end in intervals]

    def contains(self, time_us: float) -> bool:
        index = bisect.bisect_right(self._starts, time_us) - 1
        return index >= 0 and time_us < self._ends[index]
