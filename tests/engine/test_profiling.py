"""Profiler windows on CPU: real tiny training runs, and a controller driven step by step."""

from __future__ import annotations

import gzip
import json
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.config import Config, ProfileConfig, load_config
from engine.events import (
    CaptureProfile, Event, LogRecord, ProfileCaptured, ProfileStarted, RunFinished, StateChanged,
)
from engine.profile_summary import PHASES
from engine.profiling import ProfilerController
from tests.engine.conftest import TINY, make_text, run_trainer


@dataclass(frozen=True)
class Run:
    events: list[Event]
    run_dir: Path


def of_type(events: list[Any], cls: type) -> list[Any]:
    return [event for event in events if isinstance(event, cls)]


def tiny_run(tmp: Path, commands: list[CaptureProfile], *overrides: str) -> Run:
    text = make_text(tmp / "corpus.txt")
    config: Config = load_config(
        None, [*TINY, f'data.path="{text}"', f'data.cache_dir="{tmp / "cache"}"', *overrides]
    )
    run_dir = tmp / "run"
    return Run(run_trainer(config, run_dir, commands=commands), run_dir)


def read_trace(path: Path) -> dict[str, Any]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


# Each real run costs seconds on a small CPU, so the tests below share two of them.


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A 10-step run that profiles steps 1..2 after one warm-up step."""
    return tiny_run(tmp_path_factory.mktemp("full"), [CaptureProfile(steps=2)])


@pytest.fixture(scope="module")
def cut_short_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A 10-step run asked for steps 9..11 and then, at once, for a second capture."""
    return tiny_run(tmp_path_factory.mktemp("cut"), [CaptureProfile(steps=3, start_step=9), CaptureProfile()])


def test_capture_writes_trace_with_labels(full_run: Run) -> None:
    [capture] = of_type(full_run.events, ProfileCaptured)
    trace = Path(capture.trace_path)
    assert trace.is_file()
    assert trace.parent == full_run.run_dir / "profiles" / "step_1"
    assert trace.name.endswith((".pt.trace.json", ".pt.trace.json.gz"))

    names = {event.get("name") for event in read_trace(trace)["traceEvents"]}
    for label in ("forward", "backward", "optimizer"):
        assert label in names
    assert {"ProfilerStep#1", "ProfilerStep#2"} <= names


def test_capture_event_fields(full_run: Run) -> None:
    [capture] = of_type(full_run.events, ProfileCaptured)
    assert capture.step == 1
    assert capture.steps == 2
    assert capture.partial is False
    assert capture.time_column == "self CPU"
    assert capture.memory_snapshot_path is None
    assert capture.window_ms > 0
    assert capture.peak_memory_bytes is not None
    assert capture.peak_memory_bytes > 0


def test_capture_rows_sorted_within_window(full_run: Run) -> None:
    [capture] = of_type(full_run.events, ProfileCaptured)
    rows = capture.rows
    assert 0 < len(rows) <= ProfileConfig().top_ops

    self_times = [row.self_us for row in rows]
    assert self_times == sorted(self_times, reverse=True)
    assert sum(self_times) <= capture.window_ms * 1e3
    for row in rows:
        assert row.name not in PHASES
        assert not row.name.startswith("ProfilerStep")
        assert row.calls >= 1
        assert row.total_us >= row.self_us
        assert row.percent == pytest.approx(100 * row.self_us / (capture.window_ms * 1e3))


def test_capture_counts_matmul_flops(full_run: Run) -> None:
    [capture] = of_type(full_run.events, ProfileCaptured)
    matmuls = [row for row in capture.rows if row.name in ("aten::mm", "aten::addmm", "aten::bmm")]
    assert matmuls
    assert all(row.flops is not None and row.flops > 0 for row in matmuls)


def test_capture_phases_cover_window(full_run: Run) -> None:
    [capture] = of_type(full_run.events, ProfileCaptured)
    phases = dict(capture.phases)
    assert list(phases) == [*PHASES, "other"]
    for name in ("forward", "backward", "optimizer"):
        assert phases[name] > 0
    assert phases["other"] >= 0
    assert sum(phases.values()) == pytest.approx(capture.window_ms, rel=0.10)
    labelled = sum(ms for name, ms in phases.items() if name != "other")
    assert labelled <= capture.window_ms * 1.01


def test_capture_reports_start_state_and_path(full_run: Run) -> None:
    events = full_run.events
    [started] = of_type(events, ProfileStarted)
    assert (started.step, started.steps) == (1, 2)
    assert events.index(started) < events.index(of_type(events, ProfileCaptured)[0])

    states = [event.state for event in of_type(events, StateChanged)]
    profiling = states.index("profiling")
    assert "running" in states[profiling + 1:]

    [capture] = of_type(events, ProfileCaptured)
    infos = [record.message for record in of_type(events, LogRecord) if record.level == "INFO"]
    assert any(capture.trace_path in message for message in infos)


def test_second_request_ignored_with_warning(cut_short_run: Run) -> None:
    events = cut_short_run.events
    assert len(of_type(events, ProfileStarted)) == 1
    assert len(of_type(events, ProfileCaptured)) == 1
    warnings = [record.message for record in of_type(events, LogRecord) if record.level == "WARNING"]
    assert "a profile capture is already scheduled (steps 9..11); ignoring" in warnings


def test_cut_short_window_saved_partial(cut_short_run: Run) -> None:
    events = cut_short_run.events
    [capture] = of_type(events, ProfileCaptured)
    assert capture.partial is True
    assert capture.step == 9
    assert capture.steps == 1
    assert Path(capture.trace_path).is_file()
    assert capture.rows
    assert events[-1] == of_type(events, RunFinished)[0]
    assert events[-1].reason == "completed"


# --- the controller driven by hand -------------------------------------------------


class Recorder:
    """Collects what a ProfilerController emits, logs and reports as state."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.logs: list[tuple[str, str]] = []
        self.states: list[str] = []

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def messages(self, level: str) -> list[str]:
        return [message for logged_level, message in self.logs if logged_level == level]


def make_controller(tmp_path: Path, **profile: Any) -> tuple[ProfilerController, Recorder]:
    recorder = Recorder()
    controller = ProfilerController(
        ProfileConfig(**profile), tmp_path, torch.device("cpu"),
        emit=recorder.events.append, log=recorder.log, set_state=recorder.states.append,  # type: ignore[arg-type]
    )
    return controller, recorder


def drive(controller: ProfilerController, steps: range, requests: dict[int, CaptureProfile]) -> None:
    """Run a small matmul per step with the hooks around it, sending requests at step boundaries."""
    weight = torch.randn(32, 32, requires_grad=True)
    for step in steps:
        if step in requests:
            controller.request(requests[step], step)
        controller.before_step(step)
        with torch.profiler.record_function("forward"):
            loss = (torch.randn(8, 32) @ weight).square().mean()
        with torch.profiler.record_function("backward"):
            loss.backward()
        controller.after_step(step)


def test_controller_releases_profiler_after_window(tmp_path: Path) -> None:
    controller, recorder = make_controller(tmp_path, steps=2, warmup=1)
    drive(controller, range(2), {0: CaptureProfile()})
    assert torch.autograd._profiler_enabled()
    profile = weakref.ref(controller._window.profile)  # type: ignore[union-attr, arg-type]
    drive(controller, range(2, 5), {})

    assert len(of_type(recorder.events, ProfileCaptured)) == 1
    assert not controller.active
    assert not torch.autograd._profiler_enabled()
    assert profile() is None
    assert recorder.states == ["profiling"] * 3 + ["running"]


def test_request_during_window_warns_running(tmp_path: Path) -> None:
    controller, recorder = make_controller(tmp_path, steps=3, warmup=0)
    drive(controller, range(4), {0: CaptureProfile(), 1: CaptureProfile(steps=1)})

    assert "a profile capture is already running (steps 0..2); ignoring" in recorder.messages("WARNING")
    [capture] = of_type(recorder.events, ProfileCaptured)
    assert (capture.step, capture.steps) == (0, 3)


def test_future_start_step_waits(tmp_path: Path) -> None:
    controller, recorder = make_controller(tmp_path, steps=1, warmup=1)
    controller.request(CaptureProfile(start_step=5), 0)
    drive(controller, range(4), {})
    assert controller.active
    assert recorder.events == []

    drive(controller, range(4, 7), {})
    [started] = of_type(recorder.events, ProfileStarted)
    [capture] = of_type(recorder.events, ProfileCaptured)
    assert started.step == 5
    assert capture.step == 5
    assert Path(capture.trace_path).parent == tmp_path / "profiles" / "step_5"


def test_past_start_step_moves_later(tmp_path: Path) -> None:
    controller, recorder = make_controller(tmp_path, steps=1, warmup=1)
    drive(controller, range(3, 6), {3: CaptureProfile(start_step=0)})

    [capture] = of_type(recorder.events, ProfileCaptured)
    assert capture.step == 4
    assert any("profiling steps 4..4 instead" in message for message in recorder.messages("INFO"))


def test_run_ending_before_window_warns(tmp_path: Path) -> None:
    controller, recorder = make_controller(tmp_path)
    drive(controller, range(2), {0: CaptureProfile(start_step=50)})
    controller.finish(2)

    assert not controller.active
    assert of_type(recorder.events, ProfileCaptured) == []
    assert any("not captured" in message for message in recorder.messages("WARNING"))


def test_run_ending_in_warmup_abandons(tmp_path: Path) -> None:
    controller, recorder = make_controller(tmp_path, steps=1, warmup=2)
    drive(controller, range(1), {0: CaptureProfile()})
    controller.finish(1)

    assert not controller.active
    assert not torch.autograd._profiler_enabled()
    assert of_type(recorder.events, ProfileCaptured) == []
    assert any("abandoned" in message for message in recorder.messages("WARNING"))


def test_zero_step_request_ignored(tmp_path: Path) -> None:
    controller, recorder = make_controller(tmp_path)
    controller.request(CaptureProfile(steps=0), 0)

    assert not controller.active
    assert recorder.messages("WARNING") == ["a profile capture needs at least 1 step, got 0; ignoring"]
