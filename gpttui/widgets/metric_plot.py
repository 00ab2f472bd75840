"""A line plot of one or more metric series against step."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from textual.app import RenderResult
from textual_plotext import Plot, PlotextPlot

from gpttui.format import format_count, format_float
from gpttui.series import Series
from gpttui.widgets.plotext_text import figure_to_text

MARKER = "hd"
"""Plotext marker for lines: quadrant blocks, 2x2 dots per cell.

Braille (2x4) is finer, but fonts without braille glyphs draw them wider
than a cell, which shifts the rest of the row, and SVG snapshots show the same.
"""


@dataclass(frozen=True)
class PlotLine:
    """One series drawn on a plot."""

    series: Series
    label: str
    color: str
    """A plotext colour name."""
    style: Literal["line", "points"] = "line"


class MetricPlot(PlotextPlot):
    """Draws its series, downsampled to the plot width, whenever it is refreshed.

    The data is set up inside `render`, so the downsampling always matches
    the current width. Rendering only happens when Textual repaints the
    widget, so never while it is hidden. It repaints after
    `redraw_if_changed` finds new data and after a resize. Each plot draws
    on its own `self.plt`, never on the global plotext module, whose state
    all plots would share.
    """

    DEFAULT_CSS = """
    MetricPlot {
        min-height: 8;
        min-width: 30;
    }
    """

    def __init__(
        self,
        title: str,
        lines: Sequence[PlotLine],
        *,
        format_value: Callable[[float], str] = format_float,
        format_tick: Callable[[float], str] | None = None,
        empty_title: str | None = None,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's widget signature
        classes: str | None = None,
    ) -> None:
        """Create a plot.

        Args:
            title: shown above the plot, followed by the newest value of the first non-empty line.
            lines: the series to draw, in drawing order.
            format_value: renders the latest value in the title.
            format_tick: renders the y tick labels; None uses format_tick_label.
            empty_title: title while every series is empty, for example "MFU n/a".
        """
        super().__init__(name=name, id=id, classes=classes)
        self.title = title
        self.lines = list(lines)
        self.format_value = format_value
        self._format_tick = format_tick or format_tick_label
        self.empty_title = empty_title
        self.hint = ""
        """Text after the title, such as the grid's paging hint; set it with `set_hint`."""
        self._drawn_key: tuple[object, ...] | None = None
        self._cached: tuple[tuple[object, ...], RenderResult] | None = None
        self._redraw_due = True
        self.last_redraw = float("-inf")
        """Clock time of the last requested redraw, set by the dashboard's redraw scheduler."""

    def visible_lines(self) -> list[PlotLine]:
        """Return the lines to draw now; subclasses hide some of them."""
        return self.lines

    def plot_key(self) -> tuple[object, ...]:
        """Return a value that changes whenever the picture would change."""
        return (self.hint, *(len(line.series) for line in self.visible_lines()))

    def set_hint(self, hint: str) -> None:
        """Show `hint` after the title, repainting only when it changed."""
        if hint != self.hint:
            self.hint = hint
            self.request_redraw()

    def has_changes(self) -> bool:
        """Return whether data or options changed since the picture was drawn."""
        return self.plot_key() != self._drawn_key

    def redraw_if_changed(self) -> bool:
        """Schedule a repaint when data or options changed since the last one; return whether it did."""
        if not self.has_changes():
            return False
        self.request_redraw()
        return True

    def request_redraw(self) -> None:
        """Rebuild the figure at the next repaint instead of reusing the cached one."""
        self._redraw_due = True
        self.refresh()

    def render(self) -> RenderResult:
        # Textual also repaints on its own, for example when the Dashboard tab is shown
        # again. Rebuilding every figure then would block key handling for a few hundred
        # ms, so only a requested redraw or a new size or theme rebuilds the figure.
        view_key = (self.size, self.app.theme)
        if not self._redraw_due and self._cached is not None and self._cached[0] == view_key:
            return self._cached[1]
        self._redraw_due = False
        self._drawn_key = self.plot_key()
        plt = self.plt
        plt.clear_figure()
        plt.title(f"{self.title_text()}  {self.hint}" if self.hint else self.title_text())
        log_y = self.configure(plt)
        ranges = self._draw_lines(plt)
        if ranges is not None:
            self._set_ticks(plt, *ranges, log_y=log_y)
        theme = self._get_plotext_theme_name(self.app.theme)  # textual-plotext's "auto" theme naming
        text = figure_to_text(plt, self.size.width, self.size.height, theme)
        self._cached = (view_key, text)
        return text

    def _draw_lines(self, plt: Plot) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """Draw the non-empty visible lines; return the (x, y) ranges they span, or None if none."""
        lines = [line for line in self.visible_lines() if len(line.series)]
        max_points = max(2, self.size.width)
        x_range: tuple[float, float] | None = None
        y_range: tuple[float, float] | None = None
        for line in lines:
            x, y = line.series.downsampled(max_points)
            x_range = _union(x_range, (float(x[0]), float(x[-1])))
            y_range = _union(y_range, (line.series.y_min, line.series.y_max))
            draw = plt.plot if line.style == "line" else plt.scatter
            draw(x.tolist(), y.tolist(), marker=MARKER if line.style == "line" else "dot",
                 color=line.color, label=line.label if len(lines) > 1 else None)
        if x_range is None or y_range is None:
            return None
        return x_range, y_range

    def _set_ticks(self, plt: Plot, x_range: tuple[float, float], y_range: tuple[float, float], *, log_y: bool) -> None:
        # About one x tick per 14 columns and one y tick per 3 rows keeps labels from crowding.
        ticks = nice_ticks(*x_range, count=max(2, min(6, self.size.width // 14)), integer=True)
        plt.xticks(ticks, [format_count(tick) for tick in ticks])
        if not log_y:
            # On a log axis plotext's own ticks already show data values, so they are kept.
            ticks = nice_ticks(*y_range, count=max(2, min(5, (self.size.height - 3) // 3)))
            plt.yticks(ticks, [self.format_tick(tick) for tick in ticks])

    def configure(self, plt: Plot) -> bool:
        """Set axis options on the plotext figure before the lines are drawn; return whether y is log."""
        return False

    def format_tick(self, value: float) -> str:
        """Return the label of a y tick."""
        return self._format_tick(value)

    def title_text(self) -> str:
        """Return the title followed by the newest value of the first non-empty line."""
        for line in self.lines:
            latest = line.series.last
            if latest is not None:
                return f"{self.title} {self.format_value(latest[1])}"
        return self.empty_title if self.empty_title is not None else self.title


def _union(current: tuple[float, float] | None, new: tuple[float, float]) -> tuple[float, float]:
    if current is None:
        return new
    return min(current[0], new[0]), max(current[1], new[1])


def nice_ticks(low: float, high: float, count: int, *, integer: bool = False) -> list[float]:
    """Return round tick positions (steps of 1, 2 or 5 x 10^k) within [low, high], about `count` of them.

    With `integer` set the step is at least 1, for axes such as the step count.
    """
    if not high > low:
        return [low]
    magnitude = 10 ** math.floor(math.log10((high - low) / max(1, count - 1)))
    steps = [factor * magnitude for factor in (0.5, 1, 2, 5, 10) if not integer or factor * magnitude >= 1] or [1.0]
    step = min(steps, key=lambda step: abs((high - low) / step + 1 - count))
    first = math.ceil(low / step) * step
    ticks = np.arange(first, high + step * 1e-9, step)
    # arange accumulates float error; rounding to the step's precision keeps labels exact.
    decimals = max(0, -math.floor(math.log10(step)) + 1)
    return [round(float(tick), decimals) for tick in ticks] or [low]


def format_tick_label(value: float) -> str:
    """Format a tick label compactly: 0.25, 3e-04, 65.5k."""
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 1e4:
        return format_count(value)
    if magnitude < 1e-2:
        return f"{value:.1e}".replace(".0e", "e")
    return f"{value:.4g}"
