"""RunView: folding engine events into the app's state."""

from __future__ import annotations

import math

import pytest
from scripted import MAX_ITERS, STEP_SECONDS, T0, eval_result, opening, step_metrics, training_events

from engine.events import (
    CheckpointSaved, LogRecord, NonFiniteLoss, ProfileCaptured, RunFinished, StateChanged,
)
from gpttui.state import LossEma, RunView


def test_view_counts_completed_steps() -> None:
    view = RunView("run")
    view.apply([*opening(), *training_events(10)])
    assert view.step == 10
    assert view.max_iters == MAX_ITERS
    assert view.state == "running"
    assert len(view.history.loss) == 10
    assert view.latest is not None and view.latest.step == 9


def test_view_version_changes_per_batch() -> None:
    view = RunView("run")
    assert view.apply([]) == []
    assert view.version == 0
    view.apply(opening())
    assert view.version == 1


def test_view_eta_from_recent_rate() -> None:
    view = RunView("run")
    view.apply([*opening(), *training_events(100)])
    assert view.eta_s() == pytest.approx((MAX_ITERS - 100) * STEP_SECONDS)


def test_view_eta_restarts_after_pause() -> None:
    view = RunView("run")
    view.apply([*opening(), *training_events(100)])
    view.apply([StateChanged(state="paused", step=100, time=T0 + 500)])
    assert view.eta_s() is None
    view.apply([StateChanged(state="running", step=100, time=T0 + 900), *training_events(10, start=100)])
    assert view.eta_s() == pytest.approx((MAX_ITERS - 110) * STEP_SECONDS)


def test_view_elapsed_frozen_after_finish() -> None:
    view = RunView("run")
    view.apply(opening())
    assert view.elapsed_s(T0 + 30) == pytest.approx(30)
    view.apply([RunFinished(reason="completed", step=1000, time=T0 + 50)])
    assert view.elapsed_s(T0 + 500) == pytest.approx(50)
    assert view.eta_s() is None


def test_view_failure_sets_state_and_logs() -> None:
    view = RunView("run")
    view.apply(opening())
    lines = view.apply([RunFinished(reason="failed", step=3, error="boom", time=T0 + 9)])
    assert view.state == "failed"
    assert view.is_over
    assert lines[-1].level == "ERROR"
    assert "boom" in lines[-1].text


def test_view_eval_tracks_best_val_loss() -> None:
    view = RunView("run")
    view.apply([*opening(), eval_result(0), eval_result(100)])
    assert view.last_eval is not None and view.last_eval.step == 100
    assert view.best_val_loss == pytest.approx(min(eval_result(0).val_loss, eval_result(100).val_loss))
    assert len(view.history.val_loss) == 2


def test_view_notices_become_log_lines() -> None:
    view = RunView("run")
    lines = view.apply([
        LogRecord(level="WARNING", message="data loader is slow", time=T0),
        CheckpointSaved(step=5, path="runs/a/ckpt.pt", reason="manual", time=T0),
        NonFiniteLoss(step=6, loss=math.nan, stopping=True, time=T0),
    ])
    assert [line.level for line in lines] == ["WARNING", "INFO", "ERROR"]
    assert "runs/a/ckpt.pt" in lines[1].text
    assert "stopping" in lines[2].text
    assert view.last_checkpoint is not None
    assert view.nonfinite_steps == 1


def test_view_keeps_profile_summary() -> None:
    view = RunView("run")
    captured = ProfileCaptured(step=20, steps=3, trace_path="runs/a/profiles/20/trace.json",
                               memory_snapshot_path=None, window_ms=12.5, rows=(), phases=(),
                               peak_memory_bytes=None, time_column="self CPU", time=T0)
    lines = view.apply([captured])
    assert view.profile is captured
    assert "trace.json" in lines[0].text


def test_view_gpu_memory_only_when_reported() -> None:
    view = RunView("run")
    event = step_metrics(0)
    cpu_only = type(event)(**{**event.__dict__, "gpu_allocated_bytes": None, "gpu_reserved_bytes": None,
                              "gpu_peak_bytes": None, "mfu": None})
    view.apply([cpu_only])
    assert len(view.history.gpu_allocated_gib) == 0
    assert len(view.history.mfu_percent) == 0
    assert len(view.history.rss_gib) == 1


def test_view_state_changes_follow_engine() -> None:
    view = RunView("run")
    view.apply([*opening(), StateChanged(state="paused", step=4, time=T0 + 1)])
    assert view.state == "paused"


def test_loss_ema_is_bias_corrected() -> None:
    ema = LossEma(beta=0.9)
    assert ema.update(4.0) == pytest.approx(4.0)
    assert ema.update(4.0) == pytest.approx(4.0)
