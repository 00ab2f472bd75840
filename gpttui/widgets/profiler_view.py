"""The Profiler tab: past captures, and the top ops, phase split and paths of the selected one."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.option_list import Option

from engine.events import ProfileCaptured, ProfileStarted
from gpttui.format import MISSING, format_bytes, format_count
from gpttui.messages import EngineEvent

PHASE_COLORS = {
    "data": "dodger_blue2",
    "forward": "green3",
    "backward": "dark_orange",
    "optimizer": "medium_purple2",
    "metrics": "dark_cyan",
    "other": "grey50",
}
"""Colour of each phase in the bar and its legend. Phases not listed here are drawn grey."""

NARROW_WIDTH = 100
"""Below this many columns the capture list moves above the details."""


class ProfilerView(Widget):
    """Shows profiler captures as the engine reports them.

    The app posts ProfileStarted and ProfileCaptured to this widget as
    EngineEvent messages, or calls `show_started` and `show_capture`. Every
    capture stays in the capture list, beside the details or above them when
    the view is narrower than NARROW_WIDTH. The newest is selected, and
    highlighting another shows that one instead.
    """

    DEFAULT_CSS = """
    ProfilerView {
        height: 1fr;
        layout: vertical;
    }
    ProfilerView #profiler-status {
        display: none;
        height: auto;
        padding: 0 1;
        color: $text-warning;
    }
    ProfilerView.-capturing #profiler-status {
        color: $text-accent;
        text-style: bold;
    }
    ProfilerView.-has-captures #profiler-empty {
        display: none;
    }
    ProfilerView #profiler-empty {
        height: 1fr;
        content-align: center middle;
        color: $text-muted;
    }
    ProfilerView #profiler-main {
        display: none;
        height: 1fr;
    }
    ProfilerView.-has-captures #profiler-main {
        display: block;
    }
    ProfilerView #profiler-captures {
        width: 34;
        height: 1fr;
        border: round $primary-muted;
        border-title-color: $text-muted;
    }
    ProfilerView.-narrow #profiler-main {
        layout: vertical;
    }
    ProfilerView.-narrow #profiler-captures {
        width: 1fr;
        height: auto;
        max-height: 5;
    }
    ProfilerView.-narrow.-single-capture #profiler-captures {
        display: none;
    }
    ProfilerView #profiler-detail {
        width: 1fr;
        height: 1fr;
        padding: 0 1;
    }
    ProfilerView #profiler-headline {
        text-style: bold;
    }
    ProfilerView #profiler-headline, ProfilerView #profiler-phases {
        height: auto;
    }
    ProfilerView .fact-row {
        height: auto;
    }
    ProfilerView .fact-label {
        width: 16;
        color: $text-muted;
    }
    ProfilerView .fact-value {
        width: 1fr;
        height: auto;
    }
    ProfilerView #profiler-ops {
        height: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy_trace_path", "Copy trace path", id="copy-trace-path"),
    ]

    capturing: reactive[ProfileStarted | None] = reactive(None, init=False)
    """The window being recorded now, or None. Its watcher sets the CSS class `-capturing`."""

    def __init__(
        self,
        steps: int,
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's widget signature
        classes: str | None = None,
    ) -> None:
        """Create an empty view.

        Args:
            steps: the run's profile.steps, shown in the empty view's prompt.
        """
        super().__init__(name=name, id=id, classes=classes)
        self.steps = steps
        self.captures: list[ProfileCaptured] = []
        """Every capture received, oldest first."""
        self.selected: ProfileCaptured | None = None
        """The capture shown in the details."""

    def compose(self) -> ComposeResult:
        yield Static("", id="profiler-status", markup=False)
        yield Static(f"Press p to profile the next {self.steps} steps.", id="profiler-empty", markup=False)
        with Horizontal(id="profiler-main"):
            captures = OptionList(id="profiler-captures")
            captures.border_title = "captures"
            yield captures
            with Vertical(id="profiler-detail"):
                yield Static("", id="profiler-headline", markup=False)
                yield Static("", id="profiler-phases")
                for key, label in (("peak", "peak memory"), ("trace", "trace"), ("snapshot", "memory snapshot")):
                    with Horizontal(id=f"profiler-{key}-row", classes="fact-row"):
                        yield Static(label, classes="fact-label", markup=False)
                        yield Static("", id=f"profiler-{key}", classes="fact-value", markup=False)
                yield DataTable(id="profiler-ops", cursor_type="row", zebra_stripes=True)

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW_WIDTH, "-narrow")

    def watch_capturing(self, started: ProfileStarted | None) -> None:
        self.set_class(started is not None, "-capturing")
        if started is not None:
            last = started.step + started.steps - 1
            self._set_status(f"capturing steps {started.step}..{last} …")

    def action_copy_trace_path(self) -> None:
        if self.selected is None:
            self.notify("No capture yet: press p to profile.", severity="warning")
            return
        self.app.copy_to_clipboard(self.selected.trace_path)
        self.notify(f"Copied {self.selected.trace_path}")

    # --- engine events -------------------------------------------------------

    def on_engine_event(self, message: EngineEvent) -> None:
        if isinstance(message.event, ProfileStarted):
            self.show_started(message.event)
        elif isinstance(message.event, ProfileCaptured):
            self.show_capture(message.event)

    def show_started(self, event: ProfileStarted) -> None:
        """Say which steps are being recorded until their capture arrives."""
        self.capturing = event

    def show_capture(self, event: ProfileCaptured) -> None:
        """Add a capture to the list and select it."""
        self.capturing = None
        self._set_status("")
        self.captures.append(event)
        self.add_class("-has-captures")
        # A narrow view needs its lines for the table while there is nothing to switch between.
        self.set_class(len(self.captures) == 1, "-single-capture")
        captures = self.query_one("#profiler-captures", OptionList)
        captures.add_option(Option(_capture_label(event)))
        captures.highlighted = len(self.captures) - 1
        self._show_selected(event)

    def show_run_finished(self) -> None:
        """Replace the "capturing" status of a window that the run's end left without a summary."""
        if self.capturing is not None:
            self.capturing = None
            self._set_status("The run ended before the profile window was summarised; see the Logs tab.")

    def on_option_list_option_highlighted(self, message: OptionList.OptionHighlighted) -> None:
        message.stop()
        if 0 <= message.option_index < len(self.captures):
            self._show_selected(self.captures[message.option_index])

    # --- drawing -------------------------------------------------------------

    def _set_status(self, text: str) -> None:
        status = self.query_one("#profiler-status", Static)
        status.update(text)
        status.display = bool(text)

    def _show_selected(self, capture: ProfileCaptured) -> None:
        if capture is self.selected:
            return
        self.selected = capture
        self.query_one("#profiler-headline", Static).update(_headline(capture))
        self.query_one("#profiler-phases", Static).update(PhaseBar(capture.phases))
        self.query_one("#profiler-peak", Static).update(_peak_text(capture))
        self.query_one("#profiler-trace", Static).update(capture.trace_path)
        self.query_one("#profiler-snapshot", Static).update(capture.memory_snapshot_path or "")
        self.query_one("#profiler-snapshot-row").display = capture.memory_snapshot_path is not None
        self._fill_table(capture)

    def _fill_table(self, capture: ProfileCaptured) -> None:
        # Numbers come first and the op name last, so a long name never pushes them out of a narrow view.
        # DataTable sizes columns to their content, so right-aligning means padding the text.
        headers = (capture.time_column, "% window", "total", "calls", "FLOPs")
        cells = [
            (
                format_microseconds(row.self_us),
                f"{row.percent:.1f} %",
                format_microseconds(row.total_us),
                f"{row.calls:,}",
                format_count(row.flops) if row.flops else MISSING,
            )
            for row in capture.rows
        ]
        widths = [max(len(header), *(len(values[i]) for values in cells)) for i, header in enumerate(headers)]

        table = self.query_one("#profiler-ops", DataTable)
        table.clear(columns=True)
        for header, width in zip(headers, widths):
            table.add_column(header.rjust(width), key=header)
        table.add_column("op", key="op")
        for row, values in zip(capture.rows, cells):
            table.add_row(*(value.rjust(width) for value, width in zip(values, widths)), Text(row.name))


class PhaseBar:
    """A Rich renderable: one bar of the phase split as wide as the space given, and a legend."""

    def __init__(self, phases: tuple[tuple[str, float], ...]) -> None:
        self.phases = phases

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        total = sum(max(ms, 0.0) for _, ms in self.phases)
        widths = _split_cells([max(ms, 0.0) for _, ms in self.phases], options.max_width) if total > 0 else []
        bar = Text()
        for (name, _), width in zip(self.phases, widths):
            label = f" {name}"[:width].ljust(width)
            bar.append(label, style=f"bold black on {PHASE_COLORS.get(name, 'grey50')}")
        yield bar
        # Entries are packed into lines here, because wrapping at spaces could split a swatch from its name.
        line = Text()
        for name, ms in self.phases:
            entry = Text()
            entry.append("■ ", style=PHASE_COLORS.get(name, "grey50"))
            entry.append(f"{name} {ms:,.1f} ms")
            if line and line.cell_len + 2 + entry.cell_len > options.max_width:
                yield line
                line = Text()
            if line:
                line.append("  ")
            line.append_text(entry)
        yield line


def _split_cells(values: list[float], cells: int) -> list[int]:
    """Share `cells` columns among values in proportion, rounding by largest remainder."""
    total = sum(values)
    exact = [value / total * cells for value in values]
    widths = [int(share) for share in exact]
    by_remainder = sorted(range(len(values)), key=lambda i: exact[i] - widths[i], reverse=True)
    for index in by_remainder[: cells - sum(widths)]:
        widths[index] += 1
    return widths


def format_microseconds(value: float) -> str:
    """Format a profiler time given in microseconds: "850 µs", "25.64 ms", "2.41 s"."""
    if value < 1e3:
        return f"{value:.0f} µs"
    if value < 1e6:
        return f"{value / 1e3:.2f} ms"
    return f"{value / 1e6:.2f} s"


def _capture_label(capture: ProfileCaptured) -> Text:
    label = Text(f"step {capture.step:,}", style="bold")
    label.append(f"  {capture.window_ms:,.1f} ms")
    if capture.partial:
        label.append("  partial", style="italic yellow")
    return label


def _headline(capture: ProfileCaptured) -> str:
    last = capture.step + capture.steps - 1
    partial = " · partial: the run ended first" if capture.partial else ""
    per_step = capture.window_ms / capture.steps if capture.steps else 0.0
    return f"steps {capture.step}..{last} · {capture.window_ms:,.1f} ms ({per_step:,.1f} ms/step){partial}"


def _peak_text(capture: ProfileCaptured) -> str:
    if capture.peak_memory_bytes is None:
        return "not recorded (profile.profile_memory is off)"
    if capture.time_column == "self CPU":
        # On CPU the engine counts only memory allocated inside the window.
        return f"{format_bytes(capture.peak_memory_bytes)} (CPU memory allocated during the window)"
    return format_bytes(capture.peak_memory_bytes)
