"""Convert a plotext figure to rich Text without a round trip through ANSI escapes.

textual-plotext 1.0 renders with `Text.from_ansi(plot.build())`: plotext joins
its cell matrix into one string with an escape sequence at every colour
change, and rich parses it back. For a three-line plot at 120x30 cells on a
2-core x86 CPU, that round trip took about 20 ms of a 50 ms render (timing
`build()` and `Text.from_ansi` separately), while reading the matrix
directly took about 2 ms.

NOTE: this reads plotext 5.3 internals (`_set_sizes`, `_build_matrix`,
`monitor.matrix`, `_utility.colors_to_ansi`) and textual-plotext 1.0's
private `Plot._set_size`. Without the matrix methods it falls back to the
escape-string path; tests/app/test_plots.py checks that both paths agree.
"""

from __future__ import annotations

import functools
from typing import Any

import plotext._utility as plotext_utility
from rich.style import Style
from rich.text import Text
from textual_plotext import Plot


def _has_matrix_api(plot: Plot) -> bool:
    return hasattr(plot, "_set_sizes") and hasattr(plot, "_build_matrix") and hasattr(plot, "monitor")


def _cell_style(foreground: Any, style: Any, background: Any) -> Style:
    """Return the rich Style of a plotext (foreground, style, background) triple."""
    # Colours may be RGB lists, which lru_cache cannot hash.
    return _cached_cell_style(*(tuple(value) if isinstance(value, list) else value
                                for value in (foreground, style, background)))


@functools.lru_cache(maxsize=1024)
def _cached_cell_style(foreground: Any, style: Any, background: Any) -> Style:
    """Parse plotext's own escape for the triple, so colours match its ANSI output exactly."""
    escape = plotext_utility.colors_to_ansi(foreground, style, background)
    if not escape:
        return Style.null()
    parsed = Text.from_ansi(escape + "x")
    return parsed.spans[0].style if parsed.spans else Style.null()  # type: ignore[return-value]


def figure_to_text(plot: Plot, width: int, height: int, theme: str) -> Text:
    """Build the figure at `width` x `height` cells in plotext theme `theme`; return one Text line per row."""
    # textual-plotext 1.0 sets the size both ways too; plotsize alone leaves stale sizes.
    plot.plotsize(width, height)
    plot._set_size(width, height)
    plot.theme(theme)
    if not _has_matrix_api(plot):
        return Text.from_ansi(plot.build())

    plot._set_sizes()
    plot._build_matrix()
    matrix = plot.monitor.matrix
    # plotext stores row 0 at the bottom of the figure.
    lines = [_row_to_text(matrix, row) for row in range(matrix.rows - 1, -1, -1)]
    return Text("\n").join(lines)


def _row_to_text(matrix: Any, row: int) -> Text:
    """Convert one matrix row to Text, one span per run of cells with the same colours."""
    markers = matrix.marker[row]
    foregrounds = matrix.fullground[row]
    styles = matrix.style[row]
    backgrounds = matrix.background[row]
    line = Text()
    start = 0
    for col in range(1, matrix.cols + 1):
        run_ends = (
            col == matrix.cols
            or foregrounds[col] != foregrounds[start]
            or styles[col] != styles[start]
            or backgrounds[col] != backgrounds[start]
        )
        if run_ends:
            line.append("".join(markers[start:col]), _cell_style(foregrounds[start], styles[start], backgrounds[start]))
            start = col
    return line
