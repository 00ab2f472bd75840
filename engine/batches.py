"""Batches from a prepared dataset: random windows, seeded per batch, built ahead on a thread.

Batches are a pure function of (seed, split, batch index), which makes them
reproducible, resumable from a single integer, and the same with or without
the background prefetch thread.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import torch

from engine.data import Dataset, Split
from engine.tokenizers import DataError

_SPLIT_IDS: dict[str, int] = {"train": 0, "val": 1}


class BatchSampler:
    """Random windows of block_size + 1 tokens, as int64 (x, y) with y = x shifted by one.

    Batch i of a split draws its offsets from a generator seeded by
    (seed, split, i), so `state_dict()` is just the next index.
    """

    def __init__(
        self, dataset: Dataset, split: Split, batch_size: int, block_size: int, device: torch.device, seed: int
    ) -> None:
        if dataset.tokens(split) < block_size + 1:
            raise DataError(f"{split} split has {dataset.tokens(split)} tokens, fewer than block_size + 1 = {block_size + 1}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.path = dataset.path(split)
        self.dtype = dataset.dtype
        self.split = split
        self.batch_size = batch_size
        self.block_size = block_size
        self.device = device
        self.seed = seed
        self.index = 0
        self.last_wait_s = 0.0
        """Seconds the last `next()` took to return its batch."""

    def sample(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Build batch `index` on the host, in pinned memory when the device is CUDA."""
        # SeedSequence takes only non-negative entries; the mask keeps negative seeds distinct.
        entropy = [self.seed & (2**64 - 1), _SPLIT_IDS[self.split], index]
        rng = np.random.default_rng(np.random.SeedSequence(entropy))
        # A fresh memmap per batch, as nanoGPT does, because pages read through a
        # long-lived one stay counted against the process and grow without bound.
        data = np.memmap(self.path, dtype=self.dtype, mode="r")
        starts = rng.integers(0, len(data) - self.block_size, size=self.batch_size)
        windows = data[starts[:, None] + np.arange(self.block_size + 1)].astype(np.int64)  # (B, T + 1)
        x = torch.from_numpy(windows[:, :-1].copy())
        y = torch.from_numpy(windows[:, 1:].copy())
        if self.device.type == "cuda":
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    def to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.device.type == "cuda":
            return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the next batch on the device."""
        start = time.perf_counter()
        x, y = self.to_device(*self.sample(self.index))
        self.index += 1
        self.last_wait_s = time.perf_counter() - start
        return x, y

    def state_dict(self) -> dict[str, int]:
        return {"index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.index = int(state["index"])

    def close(self) -> None:
        """Do nothing; present so the sampler and PrefetchingLoader are interchangeable."""


class PrefetchingLoader:
    """Build the sampler's next batches on a background thread while the caller trains.

    Batches come out in the same order, with the same contents, as from
    `sampler.next()`. An exception raised while building a batch is raised again
    by `next()`.

    Args:
        sampler: builds the batches; its `index` is where the loader starts.
        depth: batches built ahead of the caller.
    """

    def __init__(self, sampler: BatchSampler, depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.sampler = sampler
        self.depth = depth
        self.last_wait_s = 0.0
        """Seconds the last `next()` waited for its batch; near 0 when prefetch keeps up."""
        self._index = sampler.index
        self._error: BaseException | None = None
        self._start(self._index)

    def _start(self, index: int) -> None:
        # Each thread gets its own queue and stop event, so a stopped thread that
        # finishes one last batch cannot put it where a new thread's batches go.
        self._queue: queue.Queue[tuple[torch.Tensor, torch.Tensor] | BaseException] = queue.Queue(self.depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(index, self._queue, self._stop),
            name=f"gpttui-prefetch-{self.sampler.split}", daemon=True,
        )
        self._thread.start()

    def _produce(self, index: int, out: queue.Queue, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                batch = self.sampler.sample(index)
            except BaseException as exc:  # relayed, not handled: next() raises it in the caller
                out.put(exc)
                return
            out.put(batch)
            index += 1

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the next batch on the device, waiting for the thread if it is behind."""
        if self._error is not None:
            raise self._error
        if self._stop.is_set():
            raise RuntimeError("PrefetchingLoader.next() called after close()")
        start = time.perf_counter()
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._error = item
            raise item
        batch = self.sampler.to_device(*item)
        self._index += 1
        self.last_wait_s = time.perf_counter() - start
        return batch

    def state_dict(self) -> dict[str, int]:
        """Return the index of the next batch the caller will receive."""
        return {"index": self._index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Discard prefetched batches and continue from state["index"]."""
        self.close()
        self._index = int(state["index"])
        self._error = None
        self._start(self._index)

    def close(self) -> None:
        """Stop the thread and drop its prefetched batches."""
        self._stop.set()
        # The thread may be blocked on a full queue. Emptying it lets the put
        # finish, and the thread then finds the stop event set and exits.
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def __enter__(self) -> PrefetchingLoader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
