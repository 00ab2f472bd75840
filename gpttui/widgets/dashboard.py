"""The dashboard tab: metric plots, latest values and the latest sample."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget

from gpttui.format import format_count, format_float
from gpttui.state import MetricHistory, RunView
from gpttui.widgets.latest_values import LatestValues
from gpttui.widgets.loss_plot import LossPlot
from gpttui.widgets.metric_plot import MetricPlot, PlotLine
from gpttui.widgets.plot_grid import PlotGrid
from gpttui.widgets.sample_view import SampleView


def build_plots(history: MetricHistory) -> list[MetricPlot]:
    """Create the dashboard's plots in the order a small terminal gives them room."""
    return [
        LossPlot(history, id="plot-loss"),
        MetricPlot("tokens/s", [PlotLine(history.tokens_per_s, "tok/s", "green+")],
                   format_value=format_count, id="plot-throughput"),
        MetricPlot("grad norm", [PlotLine(history.grad_norm, "grad norm", "magenta+")],
                   format_value=format_float, id="plot-grad-norm"),
        MetricPlot(
            "memory",
            [
                PlotLine(history.gpu_allocated_gib, "allocated", "blue+"),
                PlotLine(history.gpu_reserved_gib, "reserved", "orange"),
                PlotLine(history.gpu_peak_gib, "peak", "red+"),
                PlotLine(history.rss_gib, "RSS", "cyan+"),
            ],
            format_value=lambda gib: f"{gib:.2f} GiB", id="plot-memory",
        ),
        MetricPlot("learning rate", [PlotLine(history.lr, "lr", "cyan")], format_value=format_float, id="plot-lr"),
        MetricPlot("MFU", [PlotLine(history.mfu_percent, "MFU", "green")],
                   format_value=lambda percent: f"{percent:.1f} %", empty_title="MFU n/a", id="plot-mfu"),
    ]


class Dashboard(Widget):
    """Plots beside a column of latest values and the sample, all read from a RunView."""

    DEFAULT_CSS = """
    Dashboard {
        layout: horizontal;
    }
    Dashboard #plots {
        width: 1fr;
        height: 1fr;
    }
    Dashboard #side {
        width: 30;
        height: 1fr;
    }
    Dashboard #sample {
        height: 1fr;
    }
    """

    def __init__(
        self,
        view: RunView,
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's widget signature
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.view = view

    def compose(self) -> ComposeResult:
        with PlotGrid(id="plots"):
            yield from build_plots(self.view.history)
        with Vertical(id="side"):
            yield LatestValues(id="latest")
            yield SampleView(id="sample")

    def show_values(self) -> None:
        """Update the latest values and the sample from the view."""
        self.query_one(LatestValues).show(self.view)
        self.query_one(SampleView).show(self.view)

    def show_plots(self) -> None:
        """Repaint the shown plots whose data changed since they were drawn."""
        for plot in self.query_one(PlotGrid).visible_plots():
            plot.redraw_if_changed()

    def show_one_plot(self, now: float, min_interval: float) -> None:
        """Repaint the changed plot drawn longest ago, if that was at least `min_interval` seconds ago.

        One plot per call keeps each pause of the event loop to a single figure
        (tens of milliseconds), so key presses are handled between figures.
        """
        due = [
            plot for plot in self.query_one(PlotGrid).visible_plots()
            if plot.has_changes() and now - plot.last_redraw >= min_interval
        ]
        if due:
            plot = min(due, key=lambda candidate: candidate.last_redraw)
            plot.last_redraw = now
            plot.request_redraw()
