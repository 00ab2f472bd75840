"""Parameter snapshots and the watcher, on tiny real models and a real Trainer run."""

from __future__ import annotations

import math
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from engine.config import Config
from engine.events import (
    Command, Event, EventChannel, LogRecord, ParameterSnapshot, RequestParameters, SetRequiresGrad, TensorRow,
)
from engine.inspect import ParameterWatcher, build_snapshot
from engine.model import GPT, GPTConfig

V, T, L, C = 64, 16, 2, 32
"""Vocabulary, block size, layers and width of the hand-counted model."""
BLOCK_NUMEL = 12 * C * C + 13 * C
"""One block: c_attn 3C^2+3C, attn c_proj C^2+C, c_fc 4C^2+4C, mlp c_proj 4C^2+C, two LayerNorms 2C each."""
TOTAL_NUMEL = V * C + T * C + L * BLOCK_NUMEL + 2 * C
"""wte (tied to lm_head, so counted once), wpe, the blocks and ln_f."""


def small_gpt() -> tuple[GPT, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=2, n_embd=C))
    optimizer = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95), 1e-8, "cpu")
    return model, optimizer


def rows_by_name(snapshot: ParameterSnapshot) -> dict[str, TensorRow]:
    return {row.name: row for row in snapshot.tensors}


def train_steps(model: GPT, optimizer: torch.optim.Optimizer, watcher: ParameterWatcher | None,
                first: int, count: int) -> dict[str, float]:
    """Run `count` optimizer steps as the trainer does; return the last step's gradient norms by name."""
    grad_norms: dict[str, float] = {}
    for step in range(first, first + count):
        if watcher is not None:
            watcher.before_step(step)
        idx = torch.randint(0, V, (2, T))
        _, loss = model(idx, idx)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        grad_norms = {name: float(p.grad.norm()) for name, p in model.named_parameters() if p.grad is not None}
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if watcher is not None:
            watcher.after_step(step)
    return grad_norms


# --- build_snapshot --------------------------------------------------------------


def test_snapshot_lists_every_state_dict_key() -> None:
    model, optimizer = small_gpt()
    rows = rows_by_name(build_snapshot(model, optimizer, step=0))

    for key in model.state_dict():
        assert key in rows, key
        assert rows[key].in_state_dict


def test_tied_weights_marked_on_both_rows() -> None:
    model, optimizer = small_gpt()
    snapshot = build_snapshot(model, optimizer, step=0)
    rows = rows_by_name(snapshot)

    assert rows["transformer.wte.weight"].tied_to == ("lm_head.weight",)
    assert rows["lm_head.weight"].tied_to == ("transformer.wte.weight",)
    assert rows["transformer.wpe.weight"].tied_to == ()
    assert rows["lm_head.weight"].numel == V * C
    assert snapshot.total_params == TOTAL_NUMEL


def test_totals_match_hand_count() -> None:
    model, optimizer = small_gpt()
    snapshot = build_snapshot(model, optimizer, step=0)

    assert TOTAL_NUMEL == 28_032
    assert snapshot.total_params == TOTAL_NUMEL
    assert snapshot.total_params == sum(p.numel() for p in model.parameters())
    assert snapshot.trainable_params == TOTAL_NUMEL
    assert snapshot.frozen_params == 0
    assert snapshot.buffer_numel == 0
    assert snapshot.non_embedding_params == TOTAL_NUMEL - T * C


def test_module_rows_count_subtrees() -> None:
    model, optimizer = small_gpt()
    modules = {row.name: row for row in build_snapshot(model, optimizer, step=0).modules}

    assert set(modules) == {name for name, _ in model.named_modules()}
    assert modules[""].class_name == "GPT"
    assert modules[""].numel == TOTAL_NUMEL
    assert modules["transformer.h.0"].class_name == "Block"
    assert modules["transformer.h.0"].numel == BLOCK_NUMEL
    assert modules["transformer.h"].numel == L * BLOCK_NUMEL
    assert modules["transformer.h.1.mlp.c_fc"].numel == 4 * C * C + 4 * C
    assert modules["lm_head"].numel == V * C
    assert modules["transformer.drop"].numel == 0


def test_optimizer_groups_and_decay_membership() -> None:
    model, optimizer = small_gpt()
    snapshot = build_snapshot(model, optimizer, step=0)
    groups = {group.name: group for group in snapshot.groups}
    rows = rows_by_name(snapshot)

    matrices = V * C + T * C + L * 12 * C * C
    assert groups["decay"].numel == matrices
    assert groups["decay"].tensors == 2 + 4 * L
    assert groups["decay"].weight_decay == pytest.approx(0.1)
    assert groups["decay"].lr == pytest.approx(1e-2)
    assert groups["no_decay"].numel == TOTAL_NUMEL - matrices
    assert groups["no_decay"].weight_decay == 0.0
    assert rows["transformer.h.0.attn.c_attn.weight"].decay_group == "decay"
    assert rows["transformer.h.0.attn.c_attn.bias"].decay_group == "no_decay"
    assert rows["lm_head.weight"].decay_group == "decay"


def test_unnamed_groups_fall_back_to_weight_decay() -> None:
    model, _ = small_gpt()
    # The group layout of a nanoGPT checkpoint's optimizer: no "name" keys.
    optimizer = torch.optim.AdamW([
        {"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ], lr=3e-4)
    snapshot = build_snapshot(model, optimizer, step=0)
    rows = rows_by_name(snapshot)

    assert [group.name for group in snapshot.groups] == ["decay", "no_decay"]
    assert rows["transformer.wpe.weight"].decay_group == "decay"
    assert rows["transformer.ln_f.weight"].decay_group == "no_decay"


class Custom(nn.Module):
    """Buffers of both kinds, a ModuleDict and extra state."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleDict({"proj": nn.Linear(3, 2), "norm": nn.LayerNorm(2)})
        self.register_buffer("running", torch.arange(4, dtype=torch.float32), persistent=True)
        self.register_buffer("scratch", torch.ones(5), persistent=False)
        self.register_buffer("counter", torch.tensor(7, dtype=torch.long))

    def get_extra_state(self) -> dict[str, int]:
        return {"version": 2}

    def set_extra_state(self, state: Any) -> None:
        pass


def test_custom_module_set_membership() -> None:
    model = Custom()
    snapshot = build_snapshot(model, None, step=0)
    rows = rows_by_name(snapshot)

    running = rows["running"]
    assert (running.kind, running.in_parameters, running.in_buffers, running.in_state_dict) == (
        "buffer", False, True, True)
    assert running.persistent

    scratch = rows["scratch"]
    assert (scratch.kind, scratch.in_parameters, scratch.in_buffers, scratch.in_state_dict) == (
        "buffer", False, True, False)
    assert not scratch.persistent
    assert "scratch" not in model.state_dict()

    weight = rows["layers.proj.weight"]
    assert (weight.kind, weight.in_parameters, weight.in_buffers, weight.in_state_dict) == (
        "parameter", True, False, True)
    assert weight.decay_group is None

    extra = rows["_extra_state"]
    assert (extra.kind, extra.in_parameters, extra.in_buffers, extra.in_state_dict) == (
        "state", False, False, True)
    assert extra.dtype == "dict"
    assert extra.norm is None

    assert rows["counter"].dtype == "int64"
    assert rows["counter"].norm == pytest.approx(7.0)
    assert snapshot.buffer_numel == 4 + 5 + 1
    assert snapshot.total_params == 3 * 2 + 2 + 2 + 2
    modules = {row.name: row for row in snapshot.modules}
    assert modules["layers"].class_name == "ModuleDict"
    assert modules["layers"].numel == snapshot.total_params


def test_norms_and_update_ratio_values() -> None:
    model, optimizer = small_gpt()
    weight = model.transformer.h[1].mlp.c_fc.weight
    previous = {"transformer.h.1.mlp.c_fc.weight": weight.detach().clone()}
    with torch.no_grad():
        weight.add_(0.01)
    weight.grad = torch.full_like(weight, 0.5)

    rows = rows_by_name(build_snapshot(model, optimizer, step=1, previous_weights=previous))
    row = rows["transformer.h.1.mlp.c_fc.weight"]

    assert row.norm == pytest.approx(float(weight.detach().norm()), rel=1e-5)
    assert row.grad_norm == pytest.approx(0.5 * math.sqrt(weight.numel()), rel=1e-5)
    assert row.update_ratio == pytest.approx(0.01 * math.sqrt(weight.numel()) / float(weight.detach().norm()), rel=1e-4)
    assert rows["transformer.h.1.mlp.c_fc.bias"].grad_norm is None
    assert rows["transformer.h.1.mlp.c_fc.bias"].update_ratio is None
    for value in (row.norm, row.grad_norm, row.update_ratio):
        assert type(value) is float


# --- ParameterWatcher without a trainer ---------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.logs: list[tuple[str, str]] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def snapshots(self) -> list[ParameterSnapshot]:
        return [event for event in self.events if isinstance(event, ParameterSnapshot)]


def test_watcher_sends_every_n_steps() -> None:
    model, optimizer = small_gpt()
    recorder = Recorder()
    watcher = ParameterWatcher(model, optimizer, emit=recorder.emit, log=recorder.log)

    watcher.request(2, step=0)
    grad_norms = train_steps(model, optimizer, watcher, first=0, count=4)

    snapshots = recorder.snapshots()
    assert [s.step for s in snapshots] == [0, 2, 4]
    first = rows_by_name(snapshots[0])["transformer.h.0.attn.c_attn.weight"]
    assert first.update_ratio is None
    assert first.grad_norm is None
    last = rows_by_name(snapshots[-1])
    for name, expected in grad_norms.items():
        assert last[name].grad_norm == pytest.approx(expected, rel=1e-5), name
        assert last[name].update_ratio is not None and last[name].update_ratio > 0, name


def test_watcher_zero_sends_once_and_stops() -> None:
    model, optimizer = small_gpt()
    recorder = Recorder()
    watcher = ParameterWatcher(model, optimizer, emit=recorder.emit, log=recorder.log)

    watcher.request(1, step=0)
    train_steps(model, optimizer, watcher, first=0, count=2)
    watcher.request(0, step=2)
    train_steps(model, optimizer, watcher, first=2, count=2)
    watcher.finish(4)

    assert [s.step for s in recorder.snapshots()] == [0, 1, 2, 2]
    assert not optimizer._optimizer_step_pre_hooks


def test_watcher_rejects_negative_interval() -> None:
    model, optimizer = small_gpt()
    recorder = Recorder()
    watcher = ParameterWatcher(model, optimizer, emit=recorder.emit, log=recorder.log)

    watcher.request(-1, step=0)

    assert recorder.events == []
    assert recorder.logs[0][0] == "WARNING"
    assert "-1" in recorder.logs[0][1]


@pytest.mark.parametrize("name", ["transformer.h.9", "transformer.h.0.attn.c_attn.weigh"])
def test_unknown_name_only_warns(name: str) -> None:
    model, optimizer = small_gpt()
    recorder = Recorder()
    watcher = ParameterWatcher(model, optimizer, emit=recorder.emit, log=recorder.log)

    watcher.set_requires_grad(name, False, step=0)

    assert recorder.logs == [("WARNING", f"no parameter or module named {name!r}")]
    assert recorder.events == []
    assert all(p.requires_grad for p in model.parameters())


def test_buffer_name_only_warns() -> None:
    model = Custom()
    recorder = Recorder()
    watcher = ParameterWatcher(model, torch.optim.AdamW(model.parameters()), emit=recorder.emit, log=recorder.log)

    watcher.set_requires_grad("running", False, step=0)

    assert recorder.logs == [("WARNING", "'running' is a buffer, which has no gradient, so it cannot be frozen or unfrozen")]
    assert recorder.events == []


def test_freezing_tied_name_freezes_both() -> None:
    model, optimizer = small_gpt()
    recorder = Recorder()
    watcher = ParameterWatcher(model, optimizer, emit=recorder.emit, log=recorder.log)

    watcher.set_requires_grad("lm_head.weight", False, step=3)

    level, message = recorder.logs[-1]
    assert level == "INFO"
    assert message == f"froze lm_head.weight: 1 tensor, {V * C:,} parameters; shared with transformer.wte.weight"
    snapshot = recorder.snapshots()[-1]
    rows = rows_by_name(snapshot)
    assert snapshot.step == 3
    assert not rows["lm_head.weight"].requires_grad
    assert not rows["transformer.wte.weight"].requires_grad
    assert snapshot.frozen_params == V * C


def test_whole_model_freeze_and_partial_unfreeze() -> None:
    model, optimizer = small_gpt()
    recorder = Recorder()
    watcher = ParameterWatcher(model, optimizer, emit=recorder.emit, log=recorder.log)

    watcher.set_requires_grad("transformer.h.1.ln_2", False, step=0)
    watcher.set_requires_grad("", False, step=0)

    assert recorder.logs[-1] == (
        "INFO",
        f"froze the whole model: 26 tensors, {TOTAL_NUMEL - 2 * C:,} parameters (2 tensors already frozen)",
    )
    assert recorder.snapshots()[-1].trainable_params == 0


# --- through a real Trainer ---------------------------------------------------------


class ScheduledCommands:
    """A command queue that hands out commands when the trainer reaches given steps.

    At each of those steps it also keeps a copy of the model's state_dict,
    taken at the step boundary before any of that step's commands apply.
    """

    def __init__(self, schedule: dict[int, list[Command]]) -> None:
        self.schedule = {step: list(commands) for step, commands in schedule.items()}
        self.trainer: Any = None
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def get_nowait(self) -> Command:
        step = self.trainer.step
        if step in self.schedule and step not in self.weights:
            state = self.trainer.run.raw_model.state_dict()
            self.weights[step] = {name: tensor.detach().clone() for name, tensor in state.items()}
        pending = self.schedule.get(step)
        if pending:
            return pending.pop(0)
        raise queue.Empty

    def get(self) -> Command:
        raise AssertionError("the trainer waited for a command, but this run is never paused")

    def put(self, command: Command) -> None:
        raise AssertionError("commands come from the schedule only")


def run_scheduled(config: Config, run_dir: Path, schedule: dict[int, list[Command]]) -> tuple[list[Event], ScheduledCommands]:
    from engine.trainer import Trainer

    channel = EventChannel(max_pending_steps=100_000)
    commands = ScheduledCommands(schedule)
    trainer = Trainer(config, channel, commands, run_dir=run_dir)  # type: ignore[arg-type]
    commands.trainer = trainer
    trainer.run_to_end()
    return channel.drain(), commands


def test_freeze_block_through_trainer(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    config = tiny_config(
        "train.max_iters=13", "eval.interval=0", "schedule.lr_decay_iters=13", "optim.weight_decay=0.1",
        "checkpoint.on_stop=false", "model.bias=true",
    )
    n_embd = config.model.n_embd
    block = 12 * n_embd * n_embd + 13 * n_embd
    events, commands = run_scheduled(config, tmp_path / "run", {
        2: [SetRequiresGrad("transformer.h.0", False), RequestParameters(watch_every=1)],
        7: [SetRequiresGrad("transformer.h.0", True)],
        12: [],
    })

    in_block = [name for name in commands.weights[2] if name.startswith("transformer.h.0.")]
    outside = [name for name in commands.weights[2] if not name.startswith("transformer.h.0.")]
    assert len(in_block) == 12
    for name in in_block:
        assert torch.equal(commands.weights[2][name], commands.weights[7][name]), f"{name} changed while frozen"
        assert not torch.equal(commands.weights[7][name], commands.weights[12][name]), f"{name} stayed after unfreeze"
    for name in outside:
        assert not torch.equal(commands.weights[2][name], commands.weights[7][name]), f"{name} did not train"

    logs = [event.message for event in events if isinstance(event, LogRecord)]
    assert f"froze transformer.h.0: 12 tensors, {block:,} parameters" in logs
    assert f"unfroze transformer.h.0: 12 tensors, {block:,} parameters" in logs

    snapshots = [event for event in events if isinstance(event, ParameterSnapshot)]
    frozen_snapshot, requested = snapshots[0], snapshots[1]
    total = frozen_snapshot.total_params
    assert (frozen_snapshot.step, requested.step) == (2, 2)
    assert frozen_snapshot.trainable_params == total - block
    assert frozen_snapshot.frozen_params == block

    periodic = {s.step: s for s in snapshots[2:] if s.step != 7 or s.trainable_params != total}
    assert sorted(periodic) == list(range(3, 14))
    during_freeze = rows_by_name(periodic[5])
    for name in in_block:
        row = during_freeze[name]
        assert not row.requires_grad
        assert row.grad_norm is None
        assert row.update_ratio in (0.0, None), name
    for name in ("transformer.h.1.attn.c_attn.weight", "transformer.h.1.mlp.c_proj.bias", "lm_head.weight"):
        assert during_freeze[name].update_ratio > 0, name
        assert during_freeze[name].grad_norm > 0, name

    unfrozen = [s for s in snapshots if s.step == 7 and s.trainable_params == total]
    assert unfrozen, "no snapshot confirmed the unfreeze"
    after_unfreeze = rows_by_name(periodic[10])
    assert periodic[10].trainable_params == total
    for name in in_block:
        assert after_unfreeze[name].requires_grad
        assert after_unfreeze[name].update_ratio > 0, name
