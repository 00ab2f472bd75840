"""Measure what a parameter snapshot costs next to one training step.

For each model it times, as medians over --repeats tries:
- step: forward, backward, gradient clipping, AdamW and zero_grad on random tokens;
- snapshot: `build_snapshot` as a RequestParameters command runs it (norms only);
- watched step extra: ParameterWatcher's before_step + after_step on a step whose
  periodic snapshot is due (weight copy, update ratios, gradient norms).

Models: "small" is config/small.toml's shape (4 layers, 128 wide, block 64,
batch 12) with a 128-token vocabulary standing in for its character
vocabulary. "gpt2" is config/gpt2_124m.toml's shape (12 layers, 768 wide,
block 1024, vocabulary 50,304). Its step uses --gpt2-batch x --gpt2-tokens,
by default 1 x 256 on CPU, because the config's 12 x 1024 takes minutes per
step there. On CUDA the default is the config's own 12 x 1024.

    python benchmarks/snapshot_cost.py [--device cpu|cuda] [--models small,gpt2]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import load_config  # noqa: E402
from engine.events import Event  # noqa: E402
from engine.inspect import ParameterWatcher, build_snapshot  # noqa: E402
from engine.model import GPT, GPTConfig  # noqa: E402

SMALL_STAND_IN_VOCAB = 128


@dataclass
class Case:
    name: str
    config: GPTConfig
    batch: int
    tokens: int


@dataclass
class Result:
    params: int
    tensors: int
    step_s: float
    snapshot_s: float
    watched_extra_s: float


def build_cases(models: list[str], device: torch.device, gpt2_batch: int | None, gpt2_tokens: int | None) -> list[Case]:
    cases = []
    if "small" in models:
        model = load_config(ROOT / "config" / "small.toml").model
        config = GPTConfig(block_size=model.block_size, vocab_size=SMALL_STAND_IN_VOCAB, n_layer=model.n_layer,
                           n_head=model.n_head, n_embd=model.n_embd, bias=model.bias)
        cases.append(Case("small", config, batch=12, tokens=model.block_size))
    if "gpt2" in models:
        model = load_config(ROOT / "config" / "gpt2_124m.toml").model
        config = GPTConfig(block_size=model.block_size, vocab_size=model.vocab_size, n_layer=model.n_layer,
                           n_head=model.n_head, n_embd=model.n_embd, bias=model.bias)
        on_cuda = device.type == "cuda"
        batch = gpt2_batch or (12 if on_cuda else 1)
        tokens = gpt2_tokens or (model.block_size if on_cuda else 256)
        cases.append(Case("gpt2", config, batch=batch, tokens=tokens))
    return cases


def measure(case: Case, device: torch.device, repeats: int) -> Result:
    torch.manual_seed(0)
    model = GPT(case.config).to(device)
    optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), 1e-8, device.type)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step() -> None:
        idx = torch.randint(0, case.config.vocab_size, (case.batch, case.tokens), device=device)
        _, loss = model(idx, idx)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocates AdamW state and, on CUDA, initialises kernels
    step_times = [timed(step, sync) for _ in range(repeats)]
    snapshot_times = [timed(lambda: build_snapshot(model, optimizer, 0), sync) for _ in range(repeats + 1)][1:]

    sent: list[Event] = []
    watcher = ParameterWatcher(model, optimizer, emit=sent.append, log=lambda level, message: None)
    watcher.request(1, step=0)
    extra_times = []
    for index in range(repeats):
        before = timed(functools.partial(watcher.before_step, index), sync)
        step()
        after = timed(functools.partial(watcher.after_step, index), sync)
        extra_times.append(before + after)
    watcher.finish(repeats)

    return Result(
        params=sum(p.numel() for p in model.parameters()),
        tensors=len(list(model.named_parameters(remove_duplicate=False))),
        step_s=statistics.median(step_times),
        snapshot_s=statistics.median(snapshot_times),
        watched_extra_s=statistics.median(extra_times),
    )


def timed(work: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    started = time.perf_counter()
    work()
    sync()
    return time.perf_counter() - started


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    # The load average shows whether other processes shared the CPU during the run.
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{hardware}; torch {torch.__version__}, Python {platform.python_version()}{load}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device to run on (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--models", default="small,gpt2", help="comma-separated: small, gpt2")
    parser.add_argument("--repeats", type=int, default=3, help="timed tries per measurement; the median is printed")
    parser.add_argument("--gpt2-batch", type=int, default=None, help="sequences per GPT-2 step (default 1 on CPU, 12 on CUDA)")
    parser.add_argument("--gpt2-tokens", type=int, default=None, help="tokens per GPT-2 sequence (default 256 on CPU, 1024 on CUDA)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")

    device = torch.device(args.device)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(models) - {"small", "gpt2"})
    if unknown:
        parser.error(f"--models: unknown model {', '.join(unknown)}; choose from small, gpt2")

    print(f"machine: {describe_machine(device)}")
    print(f"{'model':<6} {'params':>12} {'tensors':>7} {'batch':>9} {'step ms':>9} "
          f"{'snapshot ms':>11} {'% step':>7} {'watched +ms':>11} {'% step':>7}")
    for case in build_cases(models, device, args.gpt2_batch, args.gpt2_tokens):
        result = measure(case, device, args.repeats)
        step_ms, snapshot_ms, extra_ms = (1000 * t for t in (result.step_s, result.snapshot_s, result.watched_extra_s))
        print(f"{case.name:<6} {result.params:>12,} {result.tensors:>7} {f'{case.batch}x{case.tokens}':>9} "
              f"{step_ms:>9.1f} {snapshot_ms:>11.2f} {100 * snapshot_ms / step_ms:>6.1f}% "
              f"{extra_ms:>11.2f} {100 * extra_ms / step_ms:>6.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
