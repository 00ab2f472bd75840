"""Engine hosts: the same protocol on a thread and in a child process."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.config import Config
from engine.events import Event, RunFinished, RunStarted, StepMetrics, Stop
from gpttui.bridge import EngineHost, ProcessHost, start_engine
from tests.engine.conftest import text_file, tiny_config  # noqa: F401 - fixtures


def drain_until_finished(host: EngineHost, timeout: float = 120.0) -> list[Event]:
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events.extend(host.drain())
        if events and isinstance(events[-1], RunFinished):
            return events
        time.sleep(0.02)
    raise AssertionError(f"no RunFinished within {timeout} s; last events: {events[-3:]}")


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_host_runs_to_completion(kind: str, tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    host = start_engine(tiny_config("train.max_iters=4"), host=kind, run_dir=tmp_path / "run")  # type: ignore[arg-type]
    events = drain_until_finished(host)
    host.close()
    assert isinstance(events[0], RunStarted)
    assert [e.step for e in events if isinstance(e, StepMetrics)] == [0, 1, 2, 3]
    assert events[-1].reason == "completed"
    assert not host.alive


def test_process_host_stops_on_command(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    config = tiny_config("train.max_iters=100000", "schedule.lr_decay_iters=100000", "eval.interval=0")
    host = start_engine(config, host="process", run_dir=tmp_path / "run")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(isinstance(e, StepMetrics) for e in host.drain()):
            break
        time.sleep(0.02)
    host.send(Stop(save=True))
    events = drain_until_finished(host)
    host.close()
    assert events[-1].reason == "stopped"
    assert (tmp_path / "run" / "ckpt.pt").is_file()


def test_process_host_reports_crash(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    config = tiny_config("train.max_iters=100000", "schedule.lr_decay_iters=100000", "eval.interval=0")
    host = start_engine(config, host="process", run_dir=tmp_path / "run")
    assert isinstance(host, ProcessHost)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(isinstance(e, StepMetrics) for e in host.drain()):
        time.sleep(0.02)
    host._process.kill()
    events = drain_until_finished(host)
    assert events[-1].reason == "failed"
    assert events[-1].error == "engine process exited with code -9"
