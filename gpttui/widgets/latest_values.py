"""The latest value of every metric, with units."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from gpttui.format import (
    MISSING, format_bytes, format_count, format_float, format_loss, format_percent, format_rate,
    format_seconds_short,
)
from gpttui.state import RunView


class LatestValues(Static):
    """A two-column table of the newest metrics; rebuilt by `show` on the app's redraw clock."""

    DEFAULT_CSS = """
    LatestValues {
        height: auto;
        padding: 0 1;
    }
    """

    def show(self, view: RunView) -> None:
        """Rebuild the table from the view."""
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(style="dim", no_wrap=True)
        table.add_column(justify="right", no_wrap=True, overflow="ellipsis")
        for label, value in self.rows(view):
            table.add_row(label, value)
        self.update(table)

    @staticmethod
    def rows(view: RunView) -> list[tuple[str, str | Text]]:
        """Return (label, value) rows; values not yet received show a dash, an unknown MFU "n/a"."""
        latest = view.latest
        history = view.history
        ema = history.loss_ema.last
        rows: list[tuple[str, str | Text]] = [
            ("loss", format_loss(latest.loss if latest else None)),
            ("loss EMA", format_loss(ema[1] if ema else None)),
            ("val loss", _val_loss(view)),
            ("lr", format_float(latest.lr if latest else None)),
            ("grad norm", format_float(latest.grad_norm if latest else None)),
            ("throughput", format_rate(latest.tokens_per_s if latest else None)),
            ("MFU", MISSING if latest is None else format_percent(latest.mfu, missing="n/a")),
            ("step time", _step_time(view)),
        ]
        if latest is not None and latest.gpu_allocated_bytes is not None:
            rows.append(("GPU alloc", format_bytes(latest.gpu_allocated_bytes)))
            rows.append(("GPU reserved", format_bytes(latest.gpu_reserved_bytes)))
            rows.append(("GPU peak", format_bytes(latest.gpu_peak_bytes)))
        rows.append(("RSS", format_bytes(latest.rss_bytes if latest else None)))
        rows.append(("CPU", f"{latest.cpu_percent:.0f} %" if latest else MISSING))
        if view.started is not None:
            rows.append(("params", format_count(view.started.n_params)))
        if view.dropped_steps:
            rows.append(("dropped", Text(f"{view.dropped_steps:,} step events", style="yellow")))
        if view.nonfinite_steps:
            rows.append(("non-finite", Text(f"{view.nonfinite_steps:,} steps", style="bold red")))
        return rows


def _val_loss(view: RunView) -> str:
    if view.last_eval is None:
        return MISSING
    best = view.best_val_loss
    text = f"{format_loss(view.last_eval.val_loss)} @{view.last_eval.step:,}"
    if best is not None and best < view.last_eval.val_loss:
        text += f" (best {format_loss(best)})"
    return text


def _step_time(view: RunView) -> str:
    latest = view.latest
    if latest is None:
        return MISSING
    text = format_seconds_short(latest.step_time_s)
    # Data loading above a tenth of the step usually means the loader is the bottleneck.
    if latest.data_time_s > 0.1 * latest.step_time_s:
        text += f" (data {format_seconds_short(latest.data_time_s)})"
    return text
