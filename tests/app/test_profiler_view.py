"""Pilot tests of ProfilerView: scripted captures, and p pressed against a real engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.console import Console
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from pilot_helpers import wait_for
from textual.widgets import DataTable, OptionList, Static

from engine.config import Config
from engine.events import (
    CaptureProfile, ProfileCaptured, ProfileRow, ProfileStarted, RunFinished, Stop,
)
from gpttui.bridge import EngineHost, ThreadHost
from gpttui.messages import EngineEvent
from gpttui.widgets.profiler_view import PhaseBar, ProfilerView, _split_cells, format_microseconds
from tests.engine.conftest import text_file, tiny_config  # noqa: F401 - fixtures

PHASES = (("data", 2.5), ("forward", 19.4), ("backward", 48.0), ("optimizer", 50.7), ("metrics", 1.5), ("other", 10.5))
ROWS = (
    ProfileRow("aten::mm", 81, 25_640.0, 25_700.0, 19.4, 30_700_000),
    ProfileRow("Optimizer.step#AdamW.step", 3, 8_780.0, 26_130.0, 6.6, None),
    ProfileRow("aten::mul_", 120, 650.0, 930.0, 0.5, None),
)


def capture(step: int, *, partial: bool = False, snapshot: str | None = None) -> ProfileCaptured:
    return ProfileCaptured(
        step=step, steps=3, trace_path=f"runs/tiny/profiles/step_{step}/host_1.123.pt.trace.json",
        memory_snapshot_path=snapshot, window_ms=132.5, rows=ROWS, phases=PHASES,
        peak_memory_bytes=348_000, time_column="self CPU", partial=partial,
    )


class ProfilerApp(App[None]):
    """Mounts one ProfilerView and, given a host, feeds it that engine's profile events."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("p", "profile", "Profile", id="profile")]

    def __init__(self, host: EngineHost | None = None) -> None:
        super().__init__()
        self.host = host

    def compose(self) -> ComposeResult:
        yield ProfilerView(steps=3, id="profiler-body")

    def on_mount(self) -> None:
        if self.host is not None:
            self.set_interval(0.05, self.poll_engine)

    def poll_engine(self) -> None:
        assert self.host is not None
        view = self.query_one(ProfilerView)
        for event in self.host.drain():
            if isinstance(event, (ProfileStarted, ProfileCaptured)):
                view.post_message(EngineEvent(event))
            elif isinstance(event, RunFinished):
                view.show_run_finished()

    def action_profile(self) -> None:
        assert self.host is not None
        self.host.send(CaptureProfile())


def static_text(app: App[None], selector: str) -> str:
    return str(app.query_one(selector, Static).render())


async def test_empty_view_prompts_for_p() -> None:
    app = ProfilerApp()
    async with app.run_test(size=(80, 24)):
        view = app.query_one(ProfilerView)
        assert static_text(app, "#profiler-empty") == "Press p to profile the next 3 steps."
        assert app.query_one("#profiler-empty").display
        assert not view.has_class("-has-captures")
        assert not app.query_one("#profiler-status").display


async def test_started_shows_capturing_steps() -> None:
    app = ProfilerApp()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(ProfilerView)
        view.post_message(EngineEvent(ProfileStarted(step=5, steps=3)))
        await pilot.pause()
        assert view.has_class("-capturing")
        assert app.query_one("#profiler-status").display
        assert static_text(app, "#profiler-status") == "capturing steps 5..7 …"

        view.show_capture(capture(5))
        await pilot.pause()
        assert not view.has_class("-capturing")
        assert not app.query_one("#profiler-status").display


async def test_capture_fills_table_and_facts() -> None:
    app = ProfilerApp()
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(ProfilerView)
        view.post_message(EngineEvent(capture(44)))
        await pilot.pause()

        table = app.query_one("#profiler-ops", DataTable)
        assert table.row_count == len(ROWS)
        headers = [str(column.label).strip() for column in table.ordered_columns]
        assert headers == ["self CPU", "% window", "total", "calls", "FLOPs", "op"]
        first = [str(cell).strip() for cell in table.get_row_at(0)]
        assert first == ["25.64 ms", "19.4 %", "25.70 ms", "81", "30.7M", "aten::mm"]
        assert [str(cell).strip() for cell in table.get_row_at(2)][0] == "650 µs"

        assert static_text(app, "#profiler-headline") == "steps 44..46 · 132.5 ms (44.2 ms/step)"
        assert static_text(app, "#profiler-trace") == "runs/tiny/profiles/step_44/host_1.123.pt.trace.json"
        assert "340 KiB" in static_text(app, "#profiler-peak")
        assert not app.query_one("#profiler-snapshot-row").display
        assert not app.query_one("#profiler-empty").display


async def test_highlight_switches_capture() -> None:
    app = ProfilerApp()
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(ProfilerView)
        view.show_capture(capture(44))
        view.show_capture(capture(120, partial=True, snapshot="runs/tiny/profiles/step_120/memory_snapshot.pickle"))
        await pilot.pause()

        captures = app.query_one("#profiler-captures", OptionList)
        assert captures.option_count == 2
        assert captures.highlighted == 1
        assert view.selected is view.captures[1]
        assert "partial" in str(captures.get_option_at_index(1).prompt)
        assert "partial" not in str(captures.get_option_at_index(0).prompt)
        assert static_text(app, "#profiler-headline").endswith("partial: the run ended first")
        assert app.query_one("#profiler-snapshot-row").display

        captures.focus()
        await pilot.press("up")
        await pilot.pause()
        assert view.selected is view.captures[0]
        assert static_text(app, "#profiler-headline") == "steps 44..46 · 132.5 ms (44.2 ms/step)"
        assert not app.query_one("#profiler-snapshot-row").display


async def test_c_copies_trace_path() -> None:
    app = ProfilerApp()
    async with app.run_test(size=(120, 40)) as pilot:
        app.query_one(ProfilerView).show_capture(capture(44))
        await pilot.pause()
        app.query_one("#profiler-ops", DataTable).focus()
        await pilot.press("c")
        assert app.clipboard == "runs/tiny/profiles/step_44/host_1.123.pt.trace.json"


async def test_narrow_view_keeps_table_rows() -> None:
    app = ProfilerApp()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(ProfilerView)
        view.show_capture(capture(44))
        await pilot.pause()
        assert view.has_class("-narrow")
        assert not app.query_one("#profiler-captures").display
        assert app.query_one("#profiler-ops").size.height >= len(ROWS) + 1

        view.show_capture(capture(120))
        await pilot.pause()
        assert app.query_one("#profiler-captures").display
        assert app.query_one("#profiler-ops").size.height >= len(ROWS) + 1


async def test_wide_view_lists_captures_beside() -> None:
    app = ProfilerApp()
    async with app.run_test(size=(200, 60)) as pilot:
        view = app.query_one(ProfilerView)
        view.show_capture(capture(44))
        await pilot.pause()
        assert not view.has_class("-narrow")
        captures = app.query_one("#profiler-captures")
        table = app.query_one("#profiler-ops")
        assert captures.display
        assert captures.region.right <= table.region.x


async def test_run_finished_clears_capturing() -> None:
    app = ProfilerApp()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(ProfilerView)
        view.show_started(ProfileStarted(step=9, steps=3))
        view.show_run_finished()
        await pilot.pause()
        assert view.capturing is None
        assert "ended before" in static_text(app, "#profiler-status")


def test_phase_bar_fills_width() -> None:
    console = Console(width=60, color_system=None, legacy_windows=False)
    with console.capture() as captured:
        console.print(PhaseBar(PHASES))
    bar, *legend = captured.get().splitlines()
    assert len(bar) == 60
    assert "backward" in bar
    assert all(len(line) <= 60 for line in legend)
    assert "other 10.5 ms" in " ".join(legend)


def test_split_cells_sums_to_width() -> None:
    for width in (1, 7, 60, 197):
        assert sum(_split_cells([value for _, value in PHASES], width)) == width
    assert _split_cells([1.0, 1.0, 2.0], 8) == [2, 2, 4]


def test_format_microseconds_units() -> None:
    assert format_microseconds(850) == "850 µs"
    assert format_microseconds(25_640) == "25.64 ms"
    assert format_microseconds(2_410_000) == "2.41 s"


async def test_p_captures_real_engine(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    config = tiny_config("train.max_iters=100000", "schedule.lr_decay_iters=100000", "eval.interval=0",
                         "profile.steps=2")
    host = ThreadHost(config, run_dir=tmp_path / "run")
    host.start()
    app = ProfilerApp(host)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            view = app.query_one(ProfilerView)
            await pilot.press("p")
            await wait_for(pilot, lambda: bool(view.captures), "a ProfileCaptured event")

            [captured] = view.captures
            assert captured.steps == 2
            assert not captured.partial
            assert Path(captured.trace_path).is_file()
            assert app.query_one("#profiler-captures", OptionList).option_count == 1
            assert app.query_one("#profiler-ops", DataTable).row_count > 0
            assert view.capturing is None
    finally:
        host.send(Stop(save=False))
        host.close()
    assert not host.alive
