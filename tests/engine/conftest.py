"""A tiny real run: generated text, a 2-layer GPT and a few CPU steps."""

from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.config import Config, load_config
from engine.events import Command, Event, EventChannel

TINY = [
    "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=16",
    "train.batch_size=4", "train.max_iters=10", "train.log_interval=1",
    "schedule.warmup_iters=2", "schedule.lr_decay_iters=10", "optim.learning_rate=3e-3",
    "eval.interval=5", "eval.iters=2", "eval.sample_tokens=8",
    'system.device="cpu"', "system.peak_tflops=1.0", "system.threads=1",
]


def make_text(path: Path, repeats: int = 200) -> Path:
    """Write a small, learnable text: a few sentences repeated with variations."""
    lines = [f"the {animal} number {i % 7} jumps over the lazy dog.\n"
             for i, animal in zip(range(repeats), ["fox", "cat", "owl", "emu"] * repeats)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    return make_text(tmp_path / "corpus.txt")


@pytest.fixture
def tiny_config(tmp_path: Path, text_file: Path) -> Callable[..., Config]:
    def build(*overrides: str) -> Config:
        base = [f'data.path="{text_file}"', f'data.cache_dir="{tmp_path / "cache"}"']
        return load_config(None, [*TINY, *base, *overrides])

    return build


def run_trainer(
    config: Config, run_dir: Path, *, resume: Path | None = None, commands: list[Command] | None = None
) -> list[Event]:
    """Run a Trainer to the end on this thread and return every event it emitted."""
    from engine.trainer import Trainer

    channel = EventChannel(max_pending_steps=100_000)
    command_queue: queue.SimpleQueue[Command] = queue.SimpleQueue()
    for command in commands or []:
        command_queue.put(command)
    Trainer(config, channel, command_queue, run_dir=run_dir, resume=resume).run_to_end()
    return channel.drain()
