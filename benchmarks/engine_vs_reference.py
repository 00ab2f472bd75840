"""Compare the engine's tokens/s with a minimal loop in the style of nanoGPT's train.py.

Both train the same model on the same prepared data with the same batch size
and seed. Runs alternate (reference, engine, reference, engine, ...) so slow
drift on a shared machine hits both equally; the median of each is reported.

    python benchmarks/engine_vs_reference.py [CONFIG] [--steps N] [--rounds R]
"""

from __future__ import annotations

import argparse
import math
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import Config, load_config  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.events import EventChannel, StepMetrics  # noqa: E402
from engine.model import GPT, GPTConfig, padded_vocab_size  # noqa: E402
from engine.schedule import learning_rate  # noqa: E402
from engine.trainer import Trainer  # noqa: E402


def reference_tokens_per_s(config: Config, burn_in: int, steps: int) -> float:
    """Train with a plain loop: memmap batches, forward, backward, clip, AdamW, as nanoGPT does."""
    torch.manual_seed(config.train.seed)
    dataset = load_dataset(config.data, config.model.block_size)
    m = config.model
    model = GPT(GPTConfig(block_size=m.block_size, vocab_size=padded_vocab_size(dataset.vocab_size),
                          n_layer=m.n_layer, n_head=m.n_head, n_embd=m.n_embd, dropout=m.dropout, bias=m.bias))
    optimizer = model.configure_optimizers(config.optim.weight_decay, config.optim.learning_rate,
                                           (config.optim.beta1, config.optim.beta2), config.optim.eps, "cpu")
    batch, block = config.train.batch_size, m.block_size

    def get_batch() -> tuple[torch.Tensor, torch.Tensor]:
        data = np.memmap(dataset.train_path, dtype=dataset.dtype, mode="r")
        ix = torch.randint(len(data) - block, (batch,))
        x = torch.stack([torch.from_numpy(data[i:i + block].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + block].astype(np.int64)) for i in ix])
        return x, y

    x, y = get_batch()
    started = 0.0
    for step in range(burn_in + steps):
        if step == burn_in:
            started = time.perf_counter()
        lr = learning_rate(step, config.optim.learning_rate, config.schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        _, loss = model(x, y)
        x, y = get_batch()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % config.train.log_interval == 0:
            loss.item()
    return steps * batch * block / (time.perf_counter() - started)


def engine_tokens_per_s(config: Config, burn_in: int, steps: int) -> float:
    """Train with the Trainer in bench mode, streaming every step's metrics to a channel."""
    channel = EventChannel()
    commands: queue.SimpleQueue = queue.SimpleQueue()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, channel, commands, run_dir=Path(tmp), bench=True)
        trainer.run_to_end()
    timed = [e for e in channel.drain() if isinstance(e, StepMetrics) and e.step >= burn_in]
    if len(timed) != steps:
        raise RuntimeError(f"expected {steps} timed steps, got {len(timed)}")
    tokens = steps * config.train.batch_size * config.model.block_size
    return tokens / math.fsum(e.step_time_s for e in timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(REPO / "config" / "small.toml"))
    parser.add_argument("--burn-in", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    total = args.burn_in + args.steps
    config = load_config(args.config, [f"train.max_iters={total}", 'system.device="cpu"', "system.peak_tflops=1"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, config {args.config}, "
          f"{args.steps} timed steps after {args.burn_in}, {args.rounds} rounds")
    reference, engine = [], []
    for round_index in range(args.rounds):
        reference.append(reference_tokens_per_s(config, args.burn_in, args.steps))
        engine.append(engine_tokens_per_s(config, args.burn_in, args.steps))
        print(f"round {round_index + 1}: reference {reference[-1]:,.0f} tok/s, engine {engine[-1]:,.0f} tok/s")
    ref, eng = statistics.median(reference), statistics.median(engine)
    print(f"median: reference {ref:,.0f} tok/s, engine {eng:,.0f} tok/s, ratio {eng / ref:.3f}")


if __name__ == "__main__":
    main()
