"""Metric histories and the min/max downsampling that keeps plots cheap.

A run can last 10^6 steps, but a plot is at most a few hundred cells wide, so
each plot draws a series reduced to about its width in points. The reduction
keeps the minimum and the maximum of every bucket, so a single-step loss spike
stays visible however long the history grows.

Redraw cost must not grow with the history. Each `Series` therefore keeps a
`MinMaxSummary` next to its full arrays: the min and max of consecutive blocks
of points, in a bounded number of blocks whose size doubles as the history
grows. A redraw downsamples only that summary, so its cost depends on the
summary's bound and the plot width, not on the number of steps.
"""

from __future__ import annotations

import math

import numpy as np


class GrowableArray:
    """A float64 array with amortised O(1) append; capacity doubles when full."""

    def __init__(self, capacity: int = 1024) -> None:
        self._data = np.empty(max(1, capacity), dtype=np.float64)
        self._size = 0

    def append(self, value: float) -> None:
        if self._size == len(self._data):
            grown = np.empty(2 * len(self._data), dtype=np.float64)
            grown[: self._size] = self._data
            self._data = grown
        self._data[self._size] = value
        self._size += 1

    @property
    def values(self) -> np.ndarray:
        """The stored values as a read-only view; appending may reallocate, so do not keep it."""
        view = self._data[: self._size]
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return self._size


def downsample_minmax(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a series to at most `max_points` points, keeping each bucket's min and max.

    The points are split into `max_points // 2` buckets of equal count. Each
    bucket contributes its minimum and its maximum (one point when they are
    the same point) in their original order, so x stays in input order and
    every extreme of the input survives. Runs in O(n) with numpy.

    Args:
        x: positions, in the order to keep (steps, increasing).
        y: values, finite, the same length as x.
        max_points: upper bound on the output length, at least 2.

    Returns:
        The input arrays themselves when they already fit, else new arrays.

    Raises:
        ValueError: max_points is below 2 or x and y differ in length.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2 to keep a min and a max, got {max_points}")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    count = len(y)
    if count <= max_points:
        return x, y

    buckets = max_points // 2
    size = math.ceil(count / buckets)
    full = (count // size) * size
    blocks = np.asarray(y[:full]).reshape(-1, size)
    offsets = np.arange(0, full, size)
    index_min = blocks.argmin(axis=1) + offsets
    index_max = blocks.argmax(axis=1) + offsets
    if full < count:
        tail = np.asarray(y[full:])
        index_min = np.append(index_min, full + tail.argmin())
        index_max = np.append(index_max, full + tail.argmax())

    indices = _interleave_unique(index_min, index_max)
    return np.asarray(x)[indices], np.asarray(y)[indices]


def _interleave_unique(index_a: np.ndarray, index_b: np.ndarray) -> np.ndarray:
    """Merge two per-bucket index arrays into one increasing array, one entry where they agree."""
    first = np.minimum(index_a, index_b)
    second = np.maximum(index_a, index_b)
    merged = np.stack([first, second], axis=1).ravel()
    keep = np.ones(len(merged), dtype=bool)
    keep[1::2] = first != second
    return merged[keep]


class MinMaxSummary:
    """Indices of the min and max of consecutive blocks of a growing series.

    Blocks start one point long. When `max_blocks` full blocks exist, adjacent
    pairs merge and the block length doubles, so memory stays O(max_blocks)
    and an append costs amortised O(1). `indices()` returns at most
    2 * max_blocks + 2 positions, which always include the series' global min
    and max.
    """

    def __init__(self, max_blocks: int = 2048) -> None:
        if max_blocks < 2 or max_blocks % 2:
            raise ValueError(f"max_blocks must be an even number >= 2, got {max_blocks}")
        self._max_blocks = max_blocks
        self._block_size = 1
        self._full = 0
        self._index_min = np.empty(max_blocks, dtype=np.int64)
        self._index_max = np.empty(max_blocks, dtype=np.int64)
        self._value_min = np.empty(max_blocks, dtype=np.float64)
        self._value_max = np.empty(max_blocks, dtype=np.float64)
        # The block being filled, kept in Python scalars because it changes on every append.
        self._open_count = 0
        self._open = (0, 0.0, 0, 0.0)  # index_min, value_min, index_max, value_max

    @property
    def block_size(self) -> int:
        """Points per full block."""
        return self._block_size

    def append(self, index: int, value: float) -> None:
        """Add the point at position `index` of the series, whose value is `value`."""
        if self._open_count == 0:
            self._open = (index, value, index, value)
        else:
            index_min, value_min, index_max, value_max = self._open
            if value < value_min:
                index_min, value_min = index, value
            if value > value_max:
                index_max, value_max = index, value
            self._open = (index_min, value_min, index_max, value_max)
        self._open_count += 1
        if self._open_count == self._block_size:
            self._close_block()

    def _close_block(self) -> None:
        slot = self._full
        (self._index_min[slot], self._value_min[slot],
         self._index_max[slot], self._value_max[slot]) = self._open
        self._full += 1
        self._open_count = 0
        if self._full == self._max_blocks:
            self._merge_pairs()

    def _merge_pairs(self) -> None:
        half = self._max_blocks // 2
        left_min = self._value_min[0::2] <= self._value_min[1::2]
        left_max = self._value_max[0::2] >= self._value_max[1::2]
        self._index_min[:half] = np.where(left_min, self._index_min[0::2], self._index_min[1::2])
        self._value_min[:half] = np.where(left_min, self._value_min[0::2], self._value_min[1::2])
        self._index_max[:half] = np.where(left_max, self._index_max[0::2], self._index_max[1::2])
        self._value_max[:half] = np.where(left_max, self._value_max[0::2], self._value_max[1::2])
        self._full = half
        self._block_size *= 2

    def indices(self) -> np.ndarray:
        """Return the increasing positions of every block's min and max, the open block included."""
        index_min = self._index_min[: self._full]
        index_max = self._index_max[: self._full]
        if self._open_count:
            index_min = np.append(index_min, self._open[0])
            index_max = np.append(index_max, self._open[2])
        return _interleave_unique(index_min, index_max)


class Series:
    """The full history of one metric against step, with a cached downsampled view.

    Only finite values are stored, because a NaN would poison every min/max
    bucket it falls in; `skipped` counts the values left out.
    """

    def __init__(self, name: str, *, max_blocks: int = 2048) -> None:
        self.name = name
        self._x = GrowableArray()
        self._y = GrowableArray()
        self._summary = MinMaxSummary(max_blocks)
        self._cache_key: tuple[int, int] | None = None
        self._cache: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))
        self.skipped = 0
        """Non-finite values that were not stored."""
        self.y_min = math.inf
        """Smallest stored value; inf while empty."""
        self.y_max = -math.inf
        """Largest stored value; -inf while empty."""

    def append(self, x: float, y: float) -> bool:
        """Add one point; return False, and store nothing, when y is NaN or infinite."""
        if not math.isfinite(y):
            self.skipped += 1
            return False
        self._summary.append(len(self._y), y)
        self.y_min = min(self.y_min, y)
        self.y_max = max(self.y_max, y)
        self._x.append(x)
        self._y.append(y)
        return True

    def __len__(self) -> int:
        return len(self._y)

    @property
    def x(self) -> np.ndarray:
        return self._x.values

    @property
    def y(self) -> np.ndarray:
        return self._y.values

    @property
    def last(self) -> tuple[float, float] | None:
        """The most recent (x, y), or None when the series is empty."""
        if not len(self._y):
            return None
        return float(self._x.values[-1]), float(self._y.values[-1])

    def downsampled(self, max_points: int) -> tuple[np.ndarray, np.ndarray]:
        """Return at most `max_points` points that keep the series' local minima and maxima.

        The result is cached until the next append or a different
        `max_points`. Past the summary's bound the cost is independent of
        the history length.
        """
        key = (len(self), max_points)
        if key == self._cache_key:
            return self._cache
        x, y = self._x.values, self._y.values
        if len(y) > max_points:
            indices = self._summary.indices()
            x, y = downsample_minmax(x[indices], y[indices], max_points)
        self._cache_key = key
        self._cache = (x, y)
        return self._cache
