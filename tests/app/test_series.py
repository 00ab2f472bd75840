"""Downsampling and the history containers behind the plots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpttui.series import GrowableArray, MinMaxSummary, Series, downsample_minmax


def test_downsample_small_input_unchanged() -> None:
    x = np.arange(10.0)
    y = np.sin(x)
    out_x, out_y = downsample_minmax(x, y, 10)
    assert out_x is x
    assert out_y is y


@pytest.mark.parametrize("count", [11, 100, 1001, 12_345, 100_000])
@pytest.mark.parametrize("max_points", [2, 3, 80, 257])
def test_downsample_bounds_length(count: int, max_points: int) -> None:
    rng = np.random.default_rng(count + max_points)
    x = np.arange(count, dtype=float)
    y = rng.normal(size=count)
    out_x, out_y = downsample_minmax(x, y, max_points)
    assert len(out_x) == len(out_y)
    assert 0 < len(out_x) <= max_points


def test_downsample_keeps_global_extremes() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=50_000)
    y[31_337] = 40.0
    y[7] = -40.0
    x = np.arange(len(y), dtype=float)
    out_x, out_y = downsample_minmax(x, y, 100)
    assert out_y.max() == 40.0
    assert out_y.min() == -40.0
    assert 31_337.0 in out_x
    assert 7.0 in out_x


def test_downsample_keeps_each_bucket_min_and_max() -> None:
    y = np.tile([0.0, 5.0, -5.0, 1.0], 250)
    x = np.arange(len(y), dtype=float)
    _, out_y = downsample_minmax(x, y, 50)
    assert set(out_y.tolist()) == {5.0, -5.0}


def test_downsample_x_stays_increasing() -> None:
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.uniform(0.5, 2.0, size=9_999))
    y = rng.normal(size=len(x))
    out_x, out_y = downsample_minmax(x, y, 64)
    assert np.all(np.diff(out_x) > 0)
    # Each kept point is a real input point.
    positions = np.searchsorted(x, out_x)
    assert np.array_equal(y[positions], out_y)


def test_downsample_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_points"):
        downsample_minmax(np.arange(5.0), np.arange(5.0), 1)
    with pytest.raises(ValueError, match="same length"):
        downsample_minmax(np.arange(5.0), np.arange(4.0), 2)


def test_growable_array_appends_past_capacity() -> None:
    array = GrowableArray(capacity=2)
    for value in range(1000):
        array.append(value)
    assert len(array) == 1000
    assert array.values[0] == 0
    assert array.values[-1] == 999
    assert not array.values.flags.writeable


def test_summary_bounded_and_keeps_extremes() -> None:
    summary = MinMaxSummary(max_blocks=16)
    rng = np.random.default_rng(2)
    values = rng.normal(size=10_000)
    values[4321] = 99.0
    values[1234] = -99.0
    for index, value in enumerate(values):
        summary.append(index, float(value))
    indices = summary.indices()
    assert len(indices) <= 2 * 16 + 2
    assert np.all(np.diff(indices) > 0)
    assert 4321 in indices
    assert 1234 in indices
    assert summary.block_size >= 10_000 // 16


def test_summary_rejects_odd_block_count() -> None:
    with pytest.raises(ValueError, match="even"):
        MinMaxSummary(max_blocks=3)


def test_series_skips_non_finite() -> None:
    series = Series("train/loss")
    assert series.append(0, 2.0)
    assert not series.append(1, math.nan)
    assert not series.append(2, math.inf)
    assert series.append(3, 1.5)
    assert len(series) == 2
    assert series.skipped == 2
    assert series.last == (3.0, 1.5)
    assert series.y_min == 1.5
    assert series.y_max == 2.0


def test_series_downsampled_matches_direct_extremes() -> None:
    series = Series("train/loss", max_blocks=64)
    rng = np.random.default_rng(3)
    values = rng.normal(size=20_000)
    values[15_000] = 50.0
    for step, value in enumerate(values):
        series.append(step, float(value))
    x, y = series.downsampled(120)
    assert len(x) <= 120
    assert y.max() == 50.0
    assert y.min() == values.min()
    assert np.all(np.diff(x) > 0)


def test_series_downsampled_cached_until_append() -> None:
    series = Series("train/loss")
    for step in range(500):
        series.append(step, float(step % 7))
    first = series.downsampled(50)
    assert series.downsampled(50) is first
    series.append(500, 3.0)
    assert series.downsampled(50) is not first


def test_series_empty() -> None:
    series = Series("train/loss")
    assert series.last is None
    x, y = series.downsampled(10)
    assert len(x) == 0
    assert len(y) == 0
