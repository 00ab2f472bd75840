"""Humanised numbers shown in the dashboard."""

from __future__ import annotations

import math

import pytest

from gpttui.format import (
    MISSING, format_bytes, format_count, format_duration, format_float, format_loss, format_percent, format_rate,
    format_seconds_short,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"), (950, "950"), (999, "999"), (12.5, "12.5"), (1000, "1.0k"), (12_345, "12.3k"),
        (999_960, "1.0M"), (1_234_567, "1.2M"), (124_000_000, "124M"), (1.5e9, "1.5B"), (-2500, "-2.5k"),
        (None, MISSING), (math.nan, MISSING),
    ],
)
def test_format_count(value: float | None, expected: str) -> None:
    assert format_count(value) == expected


def test_format_rate() -> None:
    assert format_rate(1_234_567) == "1.2M tok/s"
    assert format_rate(None) == MISSING


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (512, "512 B"), (2048, "2.0 KiB"), (300 * 1024**2, "300 MiB"), (int(38.1 * 1024**3), "38.1 GiB"),
        (5 * 1024**4, "5.0 TiB"), (None, MISSING),
    ],
)
def test_format_bytes(value: int | None, expected: str) -> None:
    assert format_bytes(value) == expected


def test_format_percent() -> None:
    assert format_percent(0.413) == "41.3 %"
    assert format_percent(None) == "n/a"
    assert format_percent(None, missing="?") == "?"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (42.4, "42s"), (754, "12:34"), (10_935, "3:02:15"), (-1, MISSING), (None, MISSING)],
)
def test_format_duration(seconds: float | None, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_format_seconds_short() -> None:
    assert format_seconds_short(0.00085) == "850 µs"
    assert format_seconds_short(0.123) == "123 ms"
    assert format_seconds_short(2.414) == "2.41 s"


def test_format_loss_and_float() -> None:
    assert format_loss(1.23456) == "1.2346"
    assert format_loss(math.nan) == "nan"
    assert format_loss(None) == MISSING
    assert format_float(3e-4) == "3.00e-04"
    assert format_float(0.8731) == "0.8731"
    assert format_float(1234.5) == "1234"
    assert format_float(math.inf) == "inf"
