"""Learning-rate schedules against hand-computed values."""

from __future__ import annotations

import math

import pytest

from engine.config import ScheduleConfig
from engine.schedule import learning_rate

PEAK = 1e-3


def lr(step: int, **kwargs: object) -> float:
    return learning_rate(step, PEAK, ScheduleConfig(**kwargs))  # type: ignore[arg-type]


def test_warmup_nonzero_at_step_zero() -> None:
    assert lr(0, warmup_iters=100) == pytest.approx(PEAK / 101)
    assert lr(99, warmup_iters=100) == pytest.approx(PEAK * 100 / 101)


def test_cosine_midpoint_and_end() -> None:
    kwargs = dict(kind="cosine", warmup_iters=100, lr_decay_iters=2100, min_lr=1e-4)
    assert lr(100, **kwargs) == pytest.approx(PEAK)
    assert lr(1100, **kwargs) == pytest.approx(1e-4 + 0.5 * (PEAK - 1e-4))
    assert lr(2100, **kwargs) == pytest.approx(1e-4)
    assert lr(5000, **kwargs) == pytest.approx(1e-4)


def test_cosine_quarter_point() -> None:
    kwargs = dict(kind="cosine", warmup_iters=0, lr_decay_iters=1000, min_lr=0.0)
    expected = 0.5 * (1 + math.cos(math.pi * 0.25)) * PEAK
    assert lr(250, **kwargs) == pytest.approx(expected)


def test_linear_decay() -> None:
    kwargs = dict(kind="linear", warmup_iters=0, lr_decay_iters=1000, min_lr=0.0)
    assert lr(0, **kwargs) == pytest.approx(PEAK)
    assert lr(500, **kwargs) == pytest.approx(PEAK / 2)
    assert lr(1000, **kwargs) == pytest.approx(0.0)


def test_step_decay() -> None:
    kwargs = dict(kind="step", warmup_iters=10, gamma=0.5, step_size=100)
    assert lr(10, **kwargs) == pytest.approx(PEAK)
    assert lr(109, **kwargs) == pytest.approx(PEAK)
    assert lr(110, **kwargs) == pytest.approx(PEAK * 0.5)
    assert lr(310, **kwargs) == pytest.approx(PEAK * 0.125)


def test_exponential_decay() -> None:
    kwargs = dict(kind="exponential", warmup_iters=0, gamma=0.99)
    assert lr(0, **kwargs) == pytest.approx(PEAK)
    assert lr(100, **kwargs) == pytest.approx(PEAK * 0.99**100)


def test_constant_after_warmup() -> None:
    assert lr(5, kind="constant", warmup_iters=10) == pytest.approx(PEAK * 6 / 11)
    assert lr(10_000, kind="constant", warmup_iters=10) == pytest.approx(PEAK)


def test_wsd_phases() -> None:
    kwargs = dict(kind="wsd", warmup_iters=10, lr_decay_iters=1000, decay_iters=200, min_lr=0.0)
    assert lr(500, **kwargs) == pytest.approx(PEAK)
    assert lr(799, **kwargs) == pytest.approx(PEAK)
    assert lr(900, **kwargs) == pytest.approx(PEAK / 2)
    assert lr(1000, **kwargs) == pytest.approx(0.0)
