"""The training loop on a real tiny model: events, resume, commands and failures."""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from engine.config import Config
from engine.events import (
    CheckpointSaved, EvalResult, EventChannel, NonFiniteLoss, Pause, Resume, RunFinished, RunStarted,
    SaveCheckpoint, StateChanged, StepMetrics, Stop, event_from_dict,
)
from engine.trainer import Trainer
from tests.engine.conftest import run_trainer


def of_type(events: list, cls: type) -> list:
    return [event for event in events if isinstance(event, cls)]


def test_run_emits_contract_in_order(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    events = run_trainer(tiny_config(), run_dir)

    assert isinstance(events[0], RunStarted)
    started = of_type(events, RunStarted)[0]
    assert started.max_iters == 10
    assert started.tokens_per_step == 4 * 16
    assert started.peak_flops == 1e12
    assert started.peak_flops_source == "system.peak_tflops"
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    assert finished.reason == "completed"
    assert finished.step == 10

    steps = of_type(events, StepMetrics)
    assert [m.step for m in steps] == list(range(10))
    assert all(m.tokens_per_s > 0 for m in steps)
    assert all(m.rss_bytes > 0 for m in steps)
    assert all(m.gpu_allocated_bytes is None for m in steps)
    assert steps[0].mfu == pytest.approx(started.flops_per_token * steps[0].tokens_per_s / 1e12)
    assert steps[0].lr == pytest.approx(3e-3 / 3)

    evals = of_type(events, EvalResult)
    assert [e.step for e in evals] == [0, 5, 10]
    assert evals[-1].val_loss < evals[0].val_loss
    assert len(evals[0].sample) > 0


def test_loss_starts_near_uniform(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    events = run_trainer(tiny_config("train.max_iters=1"), tmp_path / "run")
    first = of_type(events, StepMetrics)[0]
    vocab = of_type(events, RunStarted)[0].config["model"]["vocab_size"]
    assert vocab == 0
    # 26-ish distinct characters padded to 64 logits: the initial loss is near ln(64).
    assert abs(first.loss - math.log(64)) < 0.3


def test_run_directory_contents(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = tiny_config()
    events = run_trainer(config, run_dir)

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(events)
    records = [json.loads(line) for line in lines]
    assert records[-1]["event"] == "RunFinished"
    assert [event_from_dict(r) for r in records] == events
    assert (run_dir / "config.toml").read_text() == config.to_toml()
    assert "--- step 10" in (run_dir / "samples.txt").read_text()

    state = torch.load(run_dir / "ckpt.pt", weights_only=True)
    for key in ("model", "optimizer", "model_args", "iter_num", "best_val_loss", "config"):
        assert key in state
    assert state["iter_num"] == 10
    assert state["model_args"]["n_embd"] == 32
    assert state["best_val_loss"] == pytest.approx(of_type(events, EvalResult)[-1].val_loss)


def test_resume_matches_uninterrupted(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    extra = ("model.dropout=0.1", "train.gradient_accumulation_steps=2")
    full = run_trainer(tiny_config(*extra), tmp_path / "full")
    first = run_trainer(tiny_config(*extra, "train.max_iters=6"), tmp_path / "part")
    resumed = run_trainer(tiny_config(*extra), tmp_path / "part", resume=tmp_path / "part" / "ckpt.pt")

    full_losses = {m.step: m.loss for m in of_type(full, StepMetrics)}
    first_losses = {m.step: m.loss for m in of_type(first, StepMetrics)}
    resumed_losses = {m.step: m.loss for m in of_type(resumed, StepMetrics)}
    assert sorted(resumed_losses) == [6, 7, 8, 9]
    for step in range(6):
        assert first_losses[step] == full_losses[step]
    for step in range(6, 10):
        assert resumed_losses[step] == full_losses[step], f"step {step} differs after resume"
    assert of_type(resumed, RunStarted)[0].start_step == 6
    assert of_type(resumed, EvalResult)[-1].val_loss == of_type(full, EvalResult)[-1].val_loss


def test_nanogpt_checkpoint_resumes(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    from engine.model import GPT, GPTConfig

    model_args = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, bias=False, vocab_size=64, dropout=0.0)
    model = GPT(GPTConfig(**model_args))
    optimizer = torch.optim.AdamW([
        {"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ], lr=1e-3)
    compiled_keys = {"_orig_mod." + k: v for k, v in model.state_dict().items()}
    path = tmp_path / "nanogpt" / "ckpt.pt"
    path.parent.mkdir()
    torch.save({"model": compiled_keys, "optimizer": optimizer.state_dict(), "model_args": model_args,
                "iter_num": 4, "best_val_loss": torch.tensor(9.0), "config": {"batch_size": 4}}, path)

    events = run_trainer(tiny_config("train.max_iters=6"), tmp_path / "out", resume=path)
    assert events[-1].reason == "completed"
    assert [m.step for m in of_type(events, StepMetrics)] == [4, 5]


def test_commands_pause_save_stop(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    channel = EventChannel(max_pending_steps=100_000)
    commands: queue.SimpleQueue = queue.SimpleQueue()
    config = tiny_config("train.max_iters=100000", "eval.interval=0")
    trainer = Trainer(config, channel, commands, run_dir=tmp_path / "run")
    thread = threading.Thread(target=trainer.run_to_end)
    thread.start()
    seen: list = []

    def wait_for(predicate: Callable[[object], bool], timeout: float = 30.0) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in channel.drain():
                seen.append(event)
                if predicate(event):
                    return event
            time.sleep(0.01)
        raise AssertionError("event did not arrive in time")

    wait_for(lambda e: isinstance(e, StepMetrics) and e.step >= 3)
    commands.put(Pause())
    wait_for(lambda e: isinstance(e, StateChanged) and e.state == "paused")
    time.sleep(0.3)
    paused_at = trainer.step
    time.sleep(0.3)
    assert trainer.step == paused_at
    commands.put(SaveCheckpoint())
    saved = wait_for(lambda e: isinstance(e, CheckpointSaved))
    assert saved.reason == "manual"
    assert saved.step == paused_at
    commands.put(Resume())
    wait_for(lambda e: isinstance(e, StepMetrics) and e.step >= paused_at + 2)
    commands.put(Stop(save=True))
    finished = wait_for(lambda e: isinstance(e, RunFinished))
    thread.join(10)
    assert finished.reason == "stopped"
    stop_saves = [e for e in seen if isinstance(e, CheckpointSaved) and e.reason == "stop"]
    assert len(stop_saves) == 1
    assert torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)["iter_num"] == finished.step


def test_stop_without_save_writes_nothing(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    events = run_trainer(tiny_config(), tmp_path / "run", commands=[Stop(save=False)])
    assert events[-1].reason == "stopped"
    assert events[-1].step == 0
    assert not (tmp_path / "run" / "ckpt.pt").exists()


class NanAfter(torch.nn.Module):
    """Wraps a model so its loss turns NaN from a given call on."""

    def __init__(self, model: torch.nn.Module, calls: int) -> None:
        super().__init__()
        self.model = model
        self.calls = calls

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, loss = self.model(x, y)
        if self.model.training:
            self.calls -= 1
            if self.calls < 0:
                loss = loss * float("nan")
        return logits, loss


def test_nan_loss_stops_and_keeps_checkpoint(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    channel = EventChannel(max_pending_steps=100_000)
    run_dir = tmp_path / "run"
    config = tiny_config("train.max_iters=20", "eval.interval=5", 'checkpoint.save="always"')
    trainer = Trainer(config, channel, run_dir=run_dir)
    trainer.setup()
    assert trainer.run is not None
    trainer.run.model = NanAfter(trainer.run.model, calls=7)
    reason = trainer.train()
    trainer.close()
    events = channel.drain()

    assert reason == "failed"
    bad = of_type(events, NonFiniteLoss)
    assert len(bad) == 1
    assert bad[0].step == 7
    assert bad[0].stopping is True
    assert math.isnan(bad[0].loss)
    assert torch.load(run_dir / "ckpt.pt", weights_only=True)["iter_num"] == 5


def test_corrupt_resume_fails_and_keeps_file(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"\x00garbage")
    events = run_trainer(tiny_config(), tmp_path / "run", resume=path)
    assert events[-1].reason == "failed"
    assert "is corrupt or truncated" in events[-1].error
    assert path.read_bytes() == b"\x00garbage"


def test_resume_other_shape_names_key(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    run_trainer(tiny_config("train.max_iters=1"), tmp_path / "a")
    events = run_trainer(tiny_config("model.n_embd=48"), tmp_path / "b", resume=tmp_path / "a" / "ckpt.pt")
    assert events[-1].reason == "failed"
    assert "transformer.wte.weight has shape (64, 32) but the model expects (64, 48)" in events[-1].error


def test_unwritable_run_dir_fails_before_training(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    events = run_trainer(tiny_config(), blocker / "run")
    assert events[-1].reason == "failed"
    assert not of_type(events, StepMetrics)


def test_data_without_train_bin_fails(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    empty = tmp_path / "prepared"
    empty.mkdir()
    events = run_trainer(tiny_config(f'data.path="{empty}"'), tmp_path / "run")
    assert events[-1].reason == "failed"
    assert "has no train.bin" in events[-1].error
    assert not (tmp_path / "run").exists()


def test_failed_setup_keeps_existing_dir(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    events = run_trainer(tiny_config(f'data.path="{tmp_path / "missing.txt"}"'), run_dir)
    assert events[-1].reason == "failed"
    assert (run_dir / "notes.txt").read_text() == "mine"
