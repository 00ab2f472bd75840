"""The training loss plot: per-step loss, its EMA and the val loss of each eval."""

from __future__ import annotations

from textual.reactive import reactive
from textual_plotext import Plot

from gpttui.format import format_loss
from gpttui.state import MetricHistory
from gpttui.widgets.metric_plot import MetricPlot, PlotLine


class LossPlot(MetricPlot):
    """Train loss per step with an optional EMA line, val loss as points, linear or log y."""

    log_scale: reactive[bool] = reactive(False)
    """Draw the y axis in log scale; ignored while any drawn value is <= 0."""
    show_ema: reactive[bool] = reactive(True)
    """Draw the bias-corrected EMA of the train loss."""

    def __init__(
        self,
        history: MetricHistory,
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's widget signature
        classes: str | None = None,
    ) -> None:
        lines = [
            PlotLine(history.loss, "train", "blue+"),
            PlotLine(history.loss_ema, "EMA", "orange"),
            PlotLine(history.val_loss, "val", "red+", style="points"),
        ]
        super().__init__("loss", lines, format_value=format_loss, name=name, id=id, classes=classes)
        self._ema_line = lines[1]

    def visible_lines(self) -> list[PlotLine]:
        if self.show_ema:
            return self.lines
        return [line for line in self.lines if line is not self._ema_line]

    def plot_key(self) -> tuple[object, ...]:
        return (*super().plot_key(), self.log_scale, self.show_ema)

    def watch_log_scale(self) -> None:
        self.request_redraw()

    def watch_show_ema(self) -> None:
        self.request_redraw()

    def configure(self, plt: Plot) -> bool:
        if self.log_scale and self._all_positive():
            plt.yscale("log")
            return True
        return False


    def title_text(self) -> str:
        text = super().title_text()
        if self.log_scale:
            text += " (log)" if self._all_positive() else " (log n/a: values <= 0)"
        return text

    def _all_positive(self) -> bool:
        return all(line.series.y_min > 0 for line in self.visible_lines())
