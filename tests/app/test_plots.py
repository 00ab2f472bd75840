"""Plot helpers: matrix-to-Text conversion, tick placement and labels."""

from __future__ import annotations

import pytest
from rich.console import Console
from rich.text import Text
from textual_plotext import Plot

from gpttui.widgets.metric_plot import format_tick_label, nice_ticks
from gpttui.widgets.plotext_text import figure_to_text


def _cells(text: Text) -> list[tuple[str, str]]:
    """Return (character, style) for every character, so two Texts compare cell by cell."""
    console = Console(color_system="truecolor")
    return [(char, str(text.get_style_at_offset(console, offset))) for offset, char in enumerate(text.plain)]


def _draw(plot: Plot) -> None:
    plot.clear_figure()
    plot.title("loss 1.23")
    plot.plot([0, 1, 2, 3, 4], [4.0, 3.1, 2.5, 2.2, 2.0], marker="hd", color="blue+", label="train")
    plot.plot([0, 1, 2, 3, 4], [4.2, 3.5, 2.9, 2.5, 2.2], marker="hd", color="orange", label="EMA")
    plot.scatter([2], [2.7], marker="dot", color="red+", label="val")


def test_figure_to_text_matches_ansi_path() -> None:
    reference = Plot()
    _draw(reference)
    reference.plotsize(48, 14)
    reference._set_size(48, 14)
    reference.theme("dark")
    expected = Text.from_ansi(reference.build())

    plot = Plot()
    _draw(plot)
    actual = figure_to_text(plot, 48, 14, "dark")

    assert actual.plain == expected.plain.rstrip("\n")
    assert _cells(actual) == _cells(expected)[: len(actual.plain)]


def test_figure_to_text_line_count() -> None:
    plot = Plot()
    _draw(plot)
    text = figure_to_text(plot, 40, 12, "clear")
    lines = text.plain.split("\n")
    assert len(lines) == 12
    assert all(len(line) == 40 for line in lines)


@pytest.mark.parametrize(
    ("low", "high", "count", "integer", "expected"),
    [
        (0, 299, 6, True, [0, 50, 100, 150, 200, 250]),
        (0, 1, 6, True, [0, 1]),
        (1.3, 1.36, 5, False, [1.3, 1.32, 1.34, 1.36]),
        (65_200, 65_800, 5, False, [65_200, 65_400, 65_600, 65_800]),
        (5, 5, 3, False, [5]),
    ],
)
def test_nice_ticks(low: float, high: float, count: int, integer: bool, expected: list[float]) -> None:
    assert nice_ticks(low, high, count, integer=integer) == expected


def test_nice_ticks_stay_in_range() -> None:
    ticks = nice_ticks(0.37, 9.81, 5)
    assert ticks == sorted(ticks)
    assert ticks[0] >= 0.37
    assert ticks[-1] <= 9.81
    assert 2 <= len(ticks) <= 10


@pytest.mark.parametrize(
    ("value", "expected"), [(0, "0"), (0.5, "0.5"), (1.32, "1.32"), (2e-4, "2e-04"), (65_400, "65.4k")],
)
def test_format_tick_label(value: float, expected: str) -> None:
    assert format_tick_label(value) == expected
