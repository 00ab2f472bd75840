"""A grid of metric plots that shows as many as fit and pages through the rest."""

from __future__ import annotations

import math

from textual import events
from textual.containers import Grid
from textual.reactive import reactive

from gpttui.widgets.metric_plot import MetricPlot

MIN_PLOT_WIDTH = 40
"""Narrowest plot, in cells, whose tick labels and title still read well."""
MIN_PLOT_HEIGHT = 10
"""Shortest plot, in rows; below this plotext leaves almost no room for the curve."""
MAX_COLUMNS = 3


class PlotGrid(Grid):
    """Lays its MetricPlot children out in as many cells as its size allows.

    A plot needs about MIN_PLOT_WIDTH x MIN_PLOT_HEIGHT cells, so an 80x24
    terminal shows one plot and 160x48 shows all six. The plots shown are
    consecutive in child order starting at `first`, wrapping around, so
    increasing `first` pages through plots that do not fit.
    """

    DEFAULT_CSS = """
    PlotGrid {
        grid-size: 1 1;
        grid-gutter: 0 1;
    }
    PlotGrid > MetricPlot.-hidden {
        display: none;
    }
    """

    first: reactive[int] = reactive(0)
    """Index of the plot shown first; the rest follow in child order."""

    @property
    def plots(self) -> list[MetricPlot]:
        return list(self.query_children(MetricPlot))

    def capacity(self) -> tuple[int, int]:
        """Return (columns, rows) of plots that fit in the current size."""
        columns = max(1, min(MAX_COLUMNS, self.size.width // MIN_PLOT_WIDTH))
        rows = max(1, self.size.height // MIN_PLOT_HEIGHT)
        count = min(len(self.plots), columns * rows)
        columns = min(columns, max(1, count))
        return columns, max(1, math.ceil(count / columns))

    def visible_plots(self) -> list[MetricPlot]:
        """Return the plots that are laid out now, in display order."""
        return [plot for plot in self.plots if not plot.has_class("-hidden")]

    def on_resize(self, event: events.Resize) -> None:
        self._layout_plots()

    def watch_first(self) -> None:
        self._layout_plots()

    def show_next(self) -> None:
        """Shift the shown plots by one, bringing a hidden plot into view."""
        plots = self.plots
        if plots:
            self.first = (self.first + 1) % len(plots)

    def _layout_plots(self) -> None:
        plots = self.plots
        if not plots:
            return
        columns, rows = self.capacity()
        count = min(len(plots), columns * rows)
        order = [(self.first + offset) % len(plots) for offset in range(len(plots))]
        shown = set(order[:count])
        self.styles.grid_size_columns = columns
        self.styles.grid_size_rows = rows
        for index, plot in enumerate(plots):
            plot.set_class(index not in shown, "-hidden")
            plot.set_hint("")
        if count < len(plots):
            pages = f"{count} of {len(plots)} plots" if count > 1 else f"{self.first + 1}/{len(plots)}"
            plots[order[0]].set_hint(f"(v: next, {pages})")
