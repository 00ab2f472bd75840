"""Measure how plot redraw time changes with the length of a metric history.

For each history length N it fills a Series with a decaying loss and times,
as medians over --repeats redraws, where each redraw follows one new append
(so no cached result is reused):

- downsample: `Series.downsampled(width)`, the app's path (bounded summary);
- full scan: `downsample_minmax` over all N points, for comparison;
- render: a LossPlot's `render()` in a headless Textual app at --size,
  which downsamples, builds the plotext figure and converts it to text.

The app's redraw cost is the render column. Two loss shapes are timed:
"smooth" draws the same picture at every N, so its render column shows the
cost of the history length alone, and should stay flat from 10^3 to 10^6
points while the full scan grows linearly. "noisy" adds Gaussian noise: the
min and max of a bucket spread further apart as buckets grow, so the curve
becomes a band that fills more cells and plotext takes longer to draw it,
up to the cost of a plot filled edge to edge.

    python benchmarks/redraw.py [--sizes 1000,10000,100000,1000000] [--size 120x30] [--repeats 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual.app import App, ComposeResult  # noqa: E402

from gpttui.series import Series, downsample_minmax  # noqa: E402
from gpttui.state import MetricHistory  # noqa: E402
from gpttui.widgets.loss_plot import LossPlot  # noqa: E402


def fill(history: MetricHistory, count: int, *, noisy: bool, seed: int = 0) -> None:
    """Append `count` steps of a decaying loss with one spike, with Gaussian noise when `noisy`."""
    rng = np.random.default_rng(seed)
    steps = np.arange(count)
    loss = 1.3 + 2.9 * np.exp(-steps / max(1, count / 10))
    if noisy:
        loss += 0.05 * rng.normal(size=count)
    loss[count // 2] += 1.5
    ema = 1.3 + 2.9 * np.exp(-steps / max(1, count / 10))
    for step, value, smooth in zip(steps.tolist(), loss.tolist(), ema.tolist()):
        history.loss.append(step, value)
        history.loss_ema.append(step, smooth)
    for step in range(0, count, max(1, count // 20)):
        history.val_loss.append(step, float(loss[step]) + 0.1)


def median_ms(action: Callable[[], object], repeats: int, before: Callable[[], object]) -> float:
    """Return the median wall time of `action` in milliseconds, calling `before` untimed each time."""
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


class _PlotApp(App[None]):
    def __init__(self, history: MetricHistory) -> None:
        super().__init__()
        self.history = history

    def compose(self) -> ComposeResult:
        yield LossPlot(self.history, id="plot")


async def time_render(history: MetricHistory, size: tuple[int, int], repeats: int, extend: Callable[[], None]) -> float:
    app = _PlotApp(history)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        plot = app.query_one(LossPlot)
        return median_ms(plot.render, repeats, extend)


def measure(count: int, *, noisy: bool, width: int, height: int, repeats: int) -> str:
    """Time one history length; return a table row."""
    history = MetricHistory()
    start = time.perf_counter()
    fill(history, count, noisy=noisy)
    fill_s = time.perf_counter() - start
    series: Series = history.loss
    next_step = [count]

    def extend() -> None:
        series.append(next_step[0], 1.3)
        history.loss_ema.append(next_step[0], 1.3)
        next_step[0] += 1

    downsample = median_ms(lambda: series.downsampled(width), repeats, extend)
    full_scan = median_ms(lambda: downsample_minmax(series.x, series.y, width), repeats, extend)
    render = asyncio.run(time_render(history, (width, height), repeats, extend))
    return f"{count:>10,} {downsample:>14.3f} {full_scan:>13.3f} {render:>10.2f} {fill_s:>7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000",
                        help="comma-separated history lengths in points")
    parser.add_argument("--size", default="120x30", help="terminal size WIDTHxHEIGHT for the render column")
    parser.add_argument("--repeats", type=int, default=20, help="redraws timed per history length")
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))

    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"LossPlot at {width}x{height}, median of {args.repeats} redraws, each after one append")
    for noisy in (False, True):
        print(f"\n{'noisy' if noisy else 'smooth'} loss")
        print(f"{'points':>10} {'downsample ms':>14} {'full scan ms':>13} {'render ms':>10} {'fill s':>7}")
        for count in (int(part) for part in args.sizes.split(",")):
            print(measure(count, noisy=noisy, width=width, height=height, repeats=args.repeats))


if __name__ == "__main__":
    main()
