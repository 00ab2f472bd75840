"""ParameterInspector under Pilot, wired to a real engine training a tiny GPT on a thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import torch
from textual.app import App, ComposeResult
from pilot_helpers import wait_for
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from engine.config import Config, load_config
from engine.events import Pause, ParameterSnapshot, RequestParameters, Resume, SetRequiresGrad, StateChanged, Stop
from engine.inspect import build_snapshot
from gpttui.bridge import ThreadHost
from gpttui.widgets.parameter_tree import COLUMNS, ParameterInspector, build_lines, line_cells
from tests.engine.conftest import TINY, make_text

N_EMBD = 32
"""TINY's width; its model has no biases (model.bias defaults to false)."""
BLOCK_NUMEL = 12 * N_EMBD * N_EMBD + 2 * N_EMBD
"""One block without biases: c_attn 3C^2, attn c_proj C^2, c_fc 4C^2, mlp c_proj 4C^2, two LayerNorm weights."""
BLOCK_TENSORS = 6


def engine_config(tmp_path: Path) -> Config:
    text = make_text(tmp_path / "corpus.txt")
    return load_config(None, [
        *TINY, f'data.path="{text}"', f'data.cache_dir="{tmp_path / "cache"}"',
        # Far more steps than a test lasts (about 60 steps/s on 2 CPU cores); each test stops the run.
        "train.max_iters=100000", "schedule.lr_decay_iters=100000", "eval.interval=0", "checkpoint.on_stop=false",
    ])


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[ThreadHost]:
    host = ThreadHost(engine_config(tmp_path), run_dir=tmp_path / "run")
    host.start()
    yield host
    host.send(Stop(save=False))
    host.close()
    assert not host.alive, "the engine thread did not stop"


class InspectorApp(App[None]):
    """The inspector alone, routed to an engine as the gpttui app routes it."""

    def __init__(self, host: ThreadHost) -> None:
        super().__init__()
        self.host = host
        self.sent: list[object] = []
        self.state = "starting"
        self.inspector = ParameterInspector(watch_every=50, id="parameters-body")

    def compose(self) -> ComposeResult:
        yield self.inspector

    def on_mount(self) -> None:
        self.set_interval(0.05, self.poll_engine)

    def poll_engine(self) -> None:
        # The inspector is held, not queried, because this timer can fire while the app shuts down.
        for event in self.host.drain():
            if isinstance(event, ParameterSnapshot):
                self.inspector.show_snapshot(event)
            elif isinstance(event, StateChanged):
                self.state = event.state

    def on_parameter_inspector_refresh_requested(self, message: ParameterInspector.RefreshRequested) -> None:
        self.send(RequestParameters(watch_every=message.watch_every))

    def on_parameter_inspector_freeze_toggled(self, message: ParameterInspector.FreezeToggled) -> None:
        self.send(SetRequiresGrad(message.name, message.requires_grad))

    def send(self, command: object) -> None:
        self.sent.append(command)
        self.host.send(command)  # type: ignore[arg-type]


async def move_to(pilot: Pilot, inspector: ParameterInspector, key: str) -> None:
    """Press down until the row `key` is selected."""
    for _ in range(len(inspector.lines)):
        if inspector.selected_key() == key:
            return
        await pilot.press("down")
    assert inspector.selected_key() == key, f"row {key} not reachable with the down key"


def keys(inspector: ParameterInspector) -> list[str]:
    return [line.key for line in inspector.lines]


async def set_running(pilot: Pilot, app: InspectorApp, running: bool) -> None:
    """Pause or resume the engine and wait until it reports the new state.

    Pilot waits for the process to go idle after each key, for up to a
    second, so keys are pressed quickly only while the engine is paused.
    """
    app.host.send(Resume() if running else Pause())
    expected_state = "running" if running else "paused"
    await wait_for(pilot, lambda: app.state == expected_state, f"the engine to report {expected_state}")


async def wait_for_first_snapshot(pilot: Pilot, app: InspectorApp) -> ParameterInspector:
    inspector = app.inspector
    await wait_for(pilot, lambda: inspector.snapshot is not None, "the first snapshot")
    await set_running(pilot, app, False)
    return inspector


@pytest.fixture
async def started(engine: ThreadHost) -> AsyncIterator[tuple[InspectorApp, Pilot, ParameterInspector]]:
    """The inspector at 80 x 30 with its first snapshot, and the engine paused."""
    app = InspectorApp(engine)
    async with app.run_test(size=(80, 30)) as pilot:
        inspector = await wait_for_first_snapshot(pilot, app)
        yield app, pilot, inspector


async def test_tree_shows_and_expands(started: tuple[InspectorApp, Pilot, ParameterInspector]) -> None:
    app, pilot, inspector = started

    assert RequestParameters(watch_every=50) in app.sent
    visible = keys(inspector)
    assert visible[:3] == ["m:", "m:transformer", "m:transformer.wte"]
    assert "m:transformer.h" in visible
    assert "m:transformer.h.0" not in visible
    assert "t:lm_head.weight" in visible

    await move_to(pilot, inspector, "m:transformer.h")
    await pilot.press("right")
    assert "m:transformer.h.0" in keys(inspector)
    assert "m:transformer.h.0.attn" not in keys(inspector)
    assert inspector.selected_key() == "m:transformer.h"

    await pilot.press("down", "right")
    assert inspector.selected_key() == "m:transformer.h.0"
    assert "m:transformer.h.0.attn" in keys(inspector)

    await pilot.press("left")
    assert "m:transformer.h.0.attn" not in keys(inspector)
    await pilot.press("left")
    assert inspector.selected_key() == "m:transformer.h"


async def test_expansion_survives_refresh(started: tuple[InspectorApp, Pilot, ParameterInspector]) -> None:
    app, pilot, inspector = started
    await move_to(pilot, inspector, "m:transformer.h")
    await pilot.press("right", "down", "right", "down")
    selected = inspector.selected_key()
    before = inspector.snapshot
    assert before is not None

    await set_running(pilot, app, True)
    await wait_for(pilot, lambda: inspector.snapshot is not None and inspector.snapshot.step > before.step,
                     "a periodic snapshot")

    assert "m:transformer.h.0.attn" in keys(inspector)
    assert inspector.selected_key() == selected


async def test_filter_narrows_rows(started: tuple[InspectorApp, Pilot, ParameterInspector]) -> None:
    app, pilot, inspector = started
    unfiltered = keys(inspector)

    await pilot.press("slash")
    assert isinstance(app.focused, Input)
    await pilot.press("h", ".", "0")
    assert inspector.filter_text == "h.0"

    tensors = [line.tensor.name for line in inspector.lines if line.tensor is not None]
    assert len(tensors) == BLOCK_TENSORS
    assert all("h.0" in name for name in tensors)
    assert "m:transformer.h.1" not in keys(inspector)
    assert "m:transformer.h.0.attn" in keys(inspector)

    await pilot.press("escape")
    assert inspector.filter_text == ""
    assert isinstance(app.focused, DataTable)
    assert keys(inspector) == unfiltered


async def test_view_cycles_sets(started: tuple[InspectorApp, Pilot, ParameterInspector]) -> None:
    _, pilot, inspector = started

    await pilot.press("v")
    assert inspector.view_mode == "buffers"
    # The model registers no buffers (attention uses SDPA's causal flag, not a mask).
    assert inspector.lines == []
    await pilot.press("v")
    assert inspector.view_mode == "state_dict"
    assert "t:lm_head.weight" in keys(inspector)
    await pilot.press("v")
    assert inspector.view_mode == "parameters"


async def test_freeze_block_lowers_trainable(started: tuple[InspectorApp, Pilot, ParameterInspector]) -> None:
    app, pilot, inspector = started
    assert inspector.snapshot is not None
    total = inspector.snapshot.total_params
    totals = app.query_one("#inspector-totals", Static)

    await move_to(pilot, inspector, "m:transformer.h")
    await pilot.press("right", "down")
    assert inspector.selected_key() == "m:transformer.h.0"
    await set_running(pilot, app, True)
    await pilot.press("f")
    assert SetRequiresGrad("transformer.h.0", False) in app.sent

    await wait_for(pilot, lambda: inspector.snapshot is not None
                     and inspector.snapshot.trainable_params == total - BLOCK_NUMEL, "the engine to confirm the freeze")
    assert f"trainable {total - BLOCK_NUMEL:,}" in str(totals.render())
    assert f"frozen {BLOCK_NUMEL:,}" in str(totals.render())
    block_line = next(line for line in inspector.lines if line.key == "m:transformer.h.0")
    assert block_line.trainable == "no"
    assert inspector.selected_key() == "m:transformer.h.0"

    await pilot.press("f")
    assert SetRequiresGrad("transformer.h.0", True) in app.sent
    await wait_for(pilot, lambda: inspector.snapshot is not None and inspector.snapshot.trainable_params == total,
                     "the engine to confirm the unfreeze")


async def test_columns_follow_width(engine: ThreadHost) -> None:
    app = InspectorApp(engine)
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_for_first_snapshot(pilot, app)
        table = app.query_one("#inspector-table", DataTable)

        assert {"grad", "update", "tied", "device"} <= {key.value for key in table.columns}
        tied = table.get_cell("t:lm_head.weight", "tied")
        assert str(tied) == "transformer.wte.weight"

        await pilot.resize_terminal(80, 30)
        await pilot.pause()
        narrow = {key.value for key in table.columns}
        assert narrow == {"name", "shape", "numel", "trainable", "sets", "norm"}


class Buffered(torch.nn.Module):
    """A Linear under a ModuleDict, with a saved and an unsaved buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleDict({"proj": torch.nn.Linear(3, 2)})
        self.register_buffer("running", torch.zeros(4))
        self.register_buffer("scratch", torch.ones(5), persistent=False)


def test_lines_per_view_and_sets() -> None:
    snapshot = build_snapshot(Buffered(), None, step=0)
    everything = {"", "blocks", "blocks.proj"}

    parameters = build_lines(snapshot, "parameters", everything, "")
    buffers = build_lines(snapshot, "buffers", everything, "")
    saved = build_lines(snapshot, "state_dict", everything, "")

    assert [line.key for line in parameters] == ["m:", "m:blocks", "m:blocks.proj", "t:blocks.proj.weight",
                                                 "t:blocks.proj.bias"]
    assert [line.key for line in buffers] == ["m:", "t:running", "t:scratch"]
    assert [line.key for line in saved] == ["m:", "t:running", "m:blocks", "m:blocks.proj", "t:blocks.proj.weight",
                                            "t:blocks.proj.bias"]
    sets_column = tuple(column for column in COLUMNS if column.key == "sets")
    sets = {line.key: str(line_cells(line, sets_column)[0]) for line in buffers + parameters}
    assert sets["t:running"] == "·BS"
    assert sets["t:scratch"] == "·B·"
    assert sets["t:blocks.proj.weight"] == "P·S"
    assert buffers[0].numel == 4 + 5
    assert parameters[0].numel == 3 * 2 + 2
    assert parameters[0].trainable == "yes"


def test_lines_collapsed_and_filtered() -> None:
    snapshot = build_snapshot(Buffered(), None, step=0)

    collapsed = build_lines(snapshot, "parameters", {""}, "")
    filtered = build_lines(snapshot, "parameters", {""}, "BIAS")

    assert [line.key for line in collapsed] == ["m:", "m:blocks"]
    assert not collapsed[1].expanded
    assert [line.key for line in filtered] == ["m:", "m:blocks", "m:blocks.proj", "t:blocks.proj.bias"]
    assert filtered[1].numel == 2
