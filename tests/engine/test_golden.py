"""A golden loss curve: the seeded Tiny Shakespeare recipe must keep training the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.events import EvalResult, StepMetrics
from tests.engine.conftest import run_trainer

REPO = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((REPO / "tests" / "assets" / "shakespeare_golden.json").read_text())
# Loose enough for another CPU's matmul kernels, tight enough that a change to
# initialisation, batching, the schedule or the loss moves the curve past it.
RELATIVE_TOLERANCE = 2e-3


def test_shakespeare_loss_curve(shakespeare_path: Path, tmp_path: Path) -> None:
    config = load_config(REPO / "config" / "shakespeare_char_cpu.toml", [
        f'data.path="{shakespeare_path}"', f'data.cache_dir="{tmp_path / "cache"}"',
        "train.max_iters=30", "eval.interval=15", "eval.iters=4", "eval.sample_tokens=0",
        "system.peak_tflops=1", "system.threads=1",
    ])
    events = run_trainer(config, tmp_path / "run")

    losses = [event.loss for event in events if isinstance(event, StepMetrics)]
    assert len(losses) == len(GOLDEN["train_loss"])
    for step, (loss, expected) in enumerate(zip(losses, GOLDEN["train_loss"])):
        assert loss == pytest.approx(expected, rel=RELATIVE_TOLERANCE), f"train loss at step {step}"
    val = {str(event.step): event.val_loss for event in events if isinstance(event, EvalResult)}
    assert val.keys() == GOLDEN["val_loss"].keys()
    for step, expected in GOLDEN["val_loss"].items():
        assert val[step] == pytest.approx(expected, rel=RELATIVE_TOLERANCE), f"val loss at step {step}"
