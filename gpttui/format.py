"""Human-readable numbers for the dashboard: counts, bytes, rates, durations.

Every function accepts None (or a non-finite float where that can occur) and
returns a placeholder, so widgets can format a field before its first value.
"""

from __future__ import annotations

import math

MISSING = "–"
"""Shown where a value has not arrived yet."""

GIB = 1024**3
"""Bytes per GiB; memory is reported in binary units, as torch.cuda does."""

_COUNT_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def format_count(value: float | None) -> str:
    """Format a count with a decimal suffix: 950, 12.3k, 1.2M, 124M, 1.5B."""
    if value is None or not math.isfinite(value):
        return MISSING
    magnitude = abs(value)
    if magnitude < 1000:
        return f"{int(value)}" if float(value).is_integer() else f"{value:.1f}"
    for index, (scale, suffix) in enumerate(_COUNT_SUFFIXES):
        if magnitude < scale:
            continue
        scaled = value / scale
        text = f"{scaled:.0f}" if abs(scaled) >= 99.95 else f"{scaled:.1f}"
        # 999,960 would print as "1000k"; the next larger suffix reads better.
        if abs(float(text)) >= 1000 and index > 0:
            scale, suffix = _COUNT_SUFFIXES[index - 1]
            text = f"{value / scale:.1f}"
        return f"{text}{suffix}"
    raise AssertionError("unreachable: magnitude >= 1000 matches the k suffix")


def format_rate(tokens_per_s: float | None) -> str:
    """Format a throughput in tokens per second: "1.2M tok/s"."""
    if tokens_per_s is None or not math.isfinite(tokens_per_s):
        return MISSING
    return f"{format_count(tokens_per_s)} tok/s"


def format_bytes(value: int | float | None) -> str:
    """Format a byte count in binary units: "512 MiB", "38.1 GiB"."""
    if value is None or not math.isfinite(value):
        return MISSING
    if abs(value) < 1024:
        return f"{int(value)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "TiB":
            digits = 0 if abs(value) >= 100 else 1
            return f"{value:.{digits}f} {unit}"
    raise AssertionError("unreachable: the loop returns at TiB")


def format_percent(fraction: float | None, *, missing: str = "n/a") -> str:
    """Format a fraction as a percentage: 0.413 -> "41.3 %".

    Args:
        fraction: 1.0 is 100 %; None means the value is unknown.
        missing: text for an unknown value.
    """
    if fraction is None or not math.isfinite(fraction):
        return missing
    return f"{fraction * 100:.1f} %"


def format_duration(seconds: float | None) -> str:
    """Format a duration as "42s", "12:34" or "3:02:15" (hours are not wrapped)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return MISSING
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    if minutes:
        return f"{minutes}:{secs:02d}"
    return f"{secs}s"


def format_seconds_short(seconds: float | None) -> str:
    """Format a short interval such as a step time: "850 µs", "123 ms", "2.41 s"."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def format_loss(value: float | None) -> str:
    """Format a loss with four decimals; NaN and inf are shown as such."""
    if value is None:
        return MISSING
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4f}"


def format_float(value: float | None) -> str:
    """Format a value of any magnitude in four significant digits: 0.8731, 3.00e-04."""
    if value is None:
        return MISSING
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:.2e}"
