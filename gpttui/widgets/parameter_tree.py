"""The Parameters tab: the model's modules and tensors as a tree table, fed ParameterSnapshot events.

The widget never touches torch. It shows the latest snapshot it was given,
and requests engine commands by posting `RefreshRequested` and
`FreezeToggled`, which the app turns into RequestParameters and
SetRequiresGrad.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from engine.events import ModuleRow, ParameterSnapshot, TensorRow
from gpttui.format import MISSING
from gpttui.messages import EngineEvent

ViewMode = Literal["parameters", "buffers", "state_dict"]
VIEW_MODES: tuple[ViewMode, ...] = ("parameters", "buffers", "state_dict")


@dataclass(frozen=True)
class _Column:
    key: str
    label: str
    min_width: int
    """The inspector's width in cells from which the column is shown."""
    right: bool = False


COLUMNS = (
    _Column("name", "name", 0),
    _Column("shape", "shape", 0),
    _Column("dtype", "dtype", 110),
    _Column("device", "device", 150),
    _Column("numel", "numel", 0, right=True),
    _Column("trainable", "train", 0),
    _Column("state_dict", "state_dict", 150),
    _Column("sets", "sets", 0),
    _Column("norm", "norm", 0, right=True),
    _Column("grad", "grad norm", 110, right=True),
    _Column("update", "Δw/w", 110, right=True),
    _Column("tied", "tied to", 150),
)
"""Table columns in display order. At 80 cells only those with min_width 0 fit."""


# --- the tree, as plain data -------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One visible row of the tree table: a module or a tensor."""

    key: str
    """The dotted name after "m:" for a module or "t:" for a tensor, so the two never share a key."""
    depth: int
    module: ModuleRow | None = None
    tensor: TensorRow | None = None
    numel: int = 0
    expanded: bool = False
    trainable: str = MISSING
    """Whether the parameters here train: yes, no, or part for a module with both kinds."""


def module_key(name: str) -> str:
    return f"m:{name}"


def tensor_key(name: str) -> str:
    return f"t:{name}"


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def _in_view(row: TensorRow, view: ViewMode) -> bool:
    if view == "parameters":
        return row.in_parameters
    if view == "buffers":
        return row.in_buffers
    return row.in_state_dict


def _unique_numel(rows: Iterable[TensorRow]) -> int:
    # Tied names are one tensor, so each group of names counts once.
    seen: set[str] = set()
    total = 0
    for row in rows:
        group = min((row.name, *row.tied_to))
        if group not in seen:
            seen.add(group)
            total += row.numel
    return total


def build_lines(
    snapshot: ParameterSnapshot, view: ViewMode, expanded: set[str], filter_text: str
) -> list[Line]:
    """List the rows to show, depth first, modules before their own tensors' siblings.

    With a filter, only tensors whose dotted name contains it (ignoring case)
    are listed, under all their ancestor modules expanded. Without one,
    children appear only under modules named in `expanded`. Modules with
    nothing to show in the view are left out.
    """
    needle = filter_text.strip().lower()
    rows = [row for row in snapshot.tensors if _in_view(row, view) and needle in row.name.lower()]
    modules = {module.name: module for module in snapshot.modules}
    child_modules: dict[str, list[str]] = {}
    for module in snapshot.modules:
        if module.name:
            child_modules.setdefault(_parent(module.name), []).append(module.name)
    own_rows: dict[str, list[TensorRow]] = {}
    for row in rows:
        owner = _parent(row.name)
        own_rows.setdefault(owner if owner in modules else "", []).append(row)

    subtree: dict[str, list[TensorRow]] = {}

    def collect(name: str) -> list[TensorRow]:
        found = list(own_rows.get(name, ()))
        for child in child_modules.get(name, ()):
            found += collect(child)
        subtree[name] = found
        return found

    collect("")
    lines: list[Line] = []

    def visit(name: str, depth: int) -> None:
        under = subtree.get(name, [])
        if not under:
            return
        is_open = bool(needle) or name in expanded
        numel = modules[name].numel if view == "parameters" and name in modules and not needle else _unique_numel(under)
        lines.append(Line(
            key=module_key(name), depth=depth, module=modules.get(name), numel=numel, expanded=is_open,
            trainable=_trainable_summary(under),
        ))
        if not is_open:
            return
        for row in own_rows.get(name, ()):
            trainable = MISSING
            if row.in_parameters:
                trainable = "yes" if row.requires_grad else "no"
            lines.append(Line(
                key=tensor_key(row.name), depth=depth + 1, tensor=row, numel=row.numel, trainable=trainable,
            ))
        for child in child_modules.get(name, ()):
            visit(child, depth + 1)

    visit("", 0)
    return lines


def _trainable_summary(rows: list[TensorRow]) -> str:
    flags = {row.requires_grad for row in rows if row.in_parameters}
    if not flags:
        return MISSING
    if flags == {True}:
        return "yes"
    return "no" if flags == {False} else "part"


def _format_float(value: float | None, spec: str) -> str:
    if value is None:
        return MISSING
    return "0" if value == 0 else format(value, spec)


def _format_shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(size) for size in shape) if shape else "scalar"


def _sets(row: TensorRow) -> str:
    return "".join(
        letter if member else "·"
        for letter, member in (("P", row.in_parameters), ("B", row.in_buffers), ("S", row.in_state_dict))
    )


def line_cells(line: Line, columns: tuple[_Column, ...]) -> tuple[Text, ...]:
    """Render one line's cells for the given columns."""
    values = _module_values(line) if line.tensor is None else _tensor_values(line)
    cells = []
    for column in columns:
        value = values.get(column.key, "")
        text = value if isinstance(value, Text) else Text(value)
        if column.right:
            text.justify = "right"
        cells.append(text)
    return tuple(cells)


def _module_values(line: Line) -> dict[str, str | Text]:
    module = line.module
    segment = module.name.rpartition(".")[2] if module is not None and module.name else "model"
    class_name = module.class_name if module is not None else ""
    name = Text("  " * line.depth)
    name.append(("▾ " if line.expanded else "▸ ") + segment, style="bold")
    name.append(f" {class_name}", style="dim")
    return {"name": name, "numel": f"{line.numel:,}", "trainable": _styled_trainable(line.trainable)}


def _tensor_values(line: Line) -> dict[str, str | Text]:
    row = line.tensor
    assert row is not None
    name = Text("  " * line.depth + "  " + row.name.rpartition(".")[2])
    if row.kind != "parameter":
        name.append(f" {row.kind if row.persistent else 'buffer, not saved'}", style="dim italic")
    return {
        "name": name,
        "shape": _format_shape(row.shape),
        "dtype": row.dtype,
        "device": row.device,
        "numel": f"{row.numel:,}",
        "trainable": _styled_trainable(line.trainable),
        "state_dict": "yes" if row.in_state_dict else "no",
        "sets": _sets(row),
        "norm": _format_float(row.norm, ".4g"),
        "grad": _format_float(row.grad_norm, ".3g"),
        "update": _format_float(row.update_ratio, ".2e"),
        "tied": ", ".join(row.tied_to),
    }


def _styled_trainable(value: str) -> Text:
    return Text(value, style={"no": "yellow", "part": "yellow"}.get(value, ""))


# --- the widget -------------------------------------------------------------------


class _TreeTable(DataTable[Text]):
    """A row-cursor DataTable whose arrow keys expand and collapse instead of scrolling sideways."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right,plus", "node('expand')", "Expand", show=False),
        Binding("left,minus", "node('collapse')", "Collapse", show=False),
        Binding("enter", "node('toggle')", "Expand/collapse", show=False),
    ]

    class NodeAction(Message):
        """A request to expand, collapse or toggle the row under the cursor."""

        def __init__(self, action: Literal["expand", "collapse", "toggle"]) -> None:
            super().__init__()
            self.action = action

    def action_node(self, action: Literal["expand", "collapse", "toggle"]) -> None:
        self.post_message(self.NodeAction(action))


class ParameterInspector(Vertical):
    """The model's module tree with every parameter, buffer and state_dict key, fed ParameterSnapshot events.

    Call `show_snapshot` with each snapshot (or post it an EngineEvent).
    Snapshots are drawn at most once per `redraw_interval`, the newest one
    winning, because updating the 264 rows of a fully expanded GPT-2 took
    15-60 ms (Textual 8.2 on a shared 2-core CPU).
    Expansion, filter and the selected row survive refreshes. While shown it
    posts `RefreshRequested(watch_every)`, and `RefreshRequested(0)` when hidden.
    """

    DEFAULT_CSS = """
    ParameterInspector {
        height: 1fr;
    }
    ParameterInspector > #inspector-totals {
        height: auto;
        padding: 0 1;
        background: $panel;
    }
    ParameterInspector > #inspector-status {
        height: 1;
        padding: 0 1;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    ParameterInspector > #inspector-filter {
        display: none;
        height: 3;
    }
    ParameterInspector.-filtering > #inspector-filter {
        display: block;
    }
    ParameterInspector > #inspector-table {
        height: 1fr;
    }
    ParameterInspector > #inspector-groups {
        height: auto;
        max-height: 6;
        border-top: solid $primary-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "start_filter", "Filter", id="parameters-filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="parameters-clear-filter"),
        Binding("v", "next_view", "Params/buffers/state_dict", id="parameters-view"),
        Binding("f", "toggle_freeze", "Freeze/unfreeze", id="parameters-freeze"),
        Binding("r", "refresh_snapshot", "Refresh", id="parameters-refresh"),
    ]

    view_mode: reactive[ViewMode] = reactive("parameters", init=False)
    """The set of tensors the table lists."""
    filter_text: reactive[str] = reactive("", init=False)
    """Substring that tensor names must contain to be listed. The empty string lists all."""

    def __init__(
        self,
        *,
        watch_every: int = 10,
        redraw_interval: float = 1.0,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's widget signature
        classes: str | None = None,
    ) -> None:
        """Create the inspector.

        Args:
            watch_every: steps between snapshots requested while the inspector is shown.
            redraw_interval: minimum seconds between two redraws of the table.
        """
        super().__init__(name=name, id=id, classes=classes)
        self.watch_every = watch_every
        self.redraw_interval = redraw_interval
        self.snapshot: ParameterSnapshot | None = None
        """The snapshot on screen; None until the first is drawn."""
        self._incoming: ParameterSnapshot | None = None
        self._drawn_at = -float("inf")
        self._draw_timer: Timer | None = None
        self.expanded: set[str] = set()
        """Names of the expanded modules."""
        self.lines: list[Line] = []
        """The rows on screen, top to bottom."""
        self._columns: tuple[_Column, ...] = ()
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._requested: tuple[str, bool] | None = None
        """The last (name, requires_grad) sent to the engine, until a snapshot shows it applied."""

    def compose(self) -> ComposeResult:
        yield Static("Waiting for the first parameter snapshot (press r to request one).", id="inspector-totals")
        yield Static("", id="inspector-status", markup=False)
        # Disabled while hidden, or Textual's auto-focus would pick it over the table.
        yield Input(placeholder="filter by name, e.g. h.0 or attn (Escape clears)", id="inspector-filter", disabled=True)
        yield _TreeTable(id="inspector-table", cursor_type="row", zebra_stripes=True)
        groups: DataTable[str] = DataTable(id="inspector-groups", show_cursor=False)
        groups.can_focus = False
        yield groups

    def on_mount(self) -> None:
        groups = self.query_one("#inspector-groups", DataTable)
        groups.add_column("group", key="group")
        groups.add_column("weight decay", key="weight_decay")
        groups.add_column("lr", key="lr")
        groups.add_column("tensors", key="tensors")
        groups.add_column("numel", key="numel")
        self._show_status()
        self._schedule_draw()

    # --- feeding ---------------------------------------------------------------

    def show_snapshot(self, snapshot: ParameterSnapshot) -> None:
        """Show a new snapshot, keeping expansion, filter and the selected row."""
        self._incoming = snapshot
        if self.is_mounted:
            self._schedule_draw()

    def _schedule_draw(self) -> None:
        if self._incoming is None or self._draw_timer is not None:
            return
        wait = self._drawn_at + self.redraw_interval - time.monotonic()
        if wait <= 0:
            self._draw_incoming()
        else:
            self._draw_timer = self.set_timer(wait, self._draw_incoming)

    def _draw_incoming(self) -> None:
        self._draw_timer = None
        snapshot, self._incoming = self._incoming, None
        if snapshot is None:
            return
        if self.snapshot is None:
            # Open the model and its direct children, which for GPT shows the
            # embeddings, the block list, the final LayerNorm and the head.
            self.expanded |= {module.name for module in snapshot.modules if "." not in module.name}
        self.snapshot = snapshot
        if self._requested is not None:
            name, requires_grad = self._requested
            if all(row.requires_grad == requires_grad for row in _parameters_under(snapshot, name)):
                self._requested = None
        self._drawn_at = time.monotonic()
        self._render_snapshot()

    def on_engine_event(self, message: EngineEvent) -> None:
        if isinstance(message.event, ParameterSnapshot):
            self.show_snapshot(message.event)

    def on_show(self, event: events.Show) -> None:
        self.post_message(self.RefreshRequested(self.watch_every))

    def on_hide(self, event: events.Hide) -> None:
        self.post_message(self.RefreshRequested(0))

    def on_resize(self, event: events.Resize) -> None:
        if self._columns_for_width() != self._columns:
            self._render_table()

    # --- drawing -----------------------------------------------------------------

    def _render_snapshot(self) -> None:
        snapshot = self.snapshot
        assert snapshot is not None
        self.query_one("#inspector-totals", Static).update(
            f"total {snapshot.total_params:,} · trainable {snapshot.trainable_params:,} · "
            f"frozen {snapshot.frozen_params:,} · buffers {snapshot.buffer_numel:,} · "
            f"non-embedding {snapshot.non_embedding_params:,} (MFU's N)"
        )
        groups = self.query_one("#inspector-groups", DataTable)
        groups.clear()
        for group in snapshot.groups:
            groups.add_row(group.name, f"{group.weight_decay:g}", f"{group.lr:.3g}", str(group.tensors),
                           f"{group.numel:,}")
        self._show_status()
        self._render_table()

    def _show_status(self) -> None:
        parts = [f"view: {self.view_mode} (v)"]
        if self.filter_text:
            parts.append(f"filter {self.filter_text!r}")
        parts.append("sets: P parameters, B buffers, S state_dict")
        if self.snapshot is not None:
            parts.append(f"step {self.snapshot.step:,}")
        if self._requested is not None:
            name, requires_grad = self._requested
            parts.append(f"{'unfreeze' if requires_grad else 'freeze'} {name or 'the whole model'} requested")
        self.query_one("#inspector-status", Static).update(" · ".join(parts))

    def _columns_for_width(self) -> tuple[_Column, ...]:
        width = self.size.width or 80
        return tuple(column for column in COLUMNS if width >= column.min_width)

    def _render_table(self) -> None:
        """Update the table in place when the same rows are shown, else rebuild it around the selection."""
        if self.snapshot is None or not self.is_mounted:
            return
        table = self.query_one(_TreeTable)
        lines = build_lines(self.snapshot, self.view_mode, self.expanded, self.filter_text)
        columns = self._columns_for_width()
        if columns == self._columns and [line.key for line in lines] == [line.key for line in self.lines]:
            old_lines, self.lines = self.lines, lines
            self._update_cells(table, old_lines, lines)
            return

        selected = self.selected_key()
        offset = table.cursor_row - round(table.scroll_y)
        if columns != self._columns:
            table.clear(columns=True)
            for column in columns:
                table.add_column(column.label, key=column.key)
            self._columns = columns
        else:
            table.clear()
        self._cells = {}
        self.lines = lines
        for line in lines:
            cells = line_cells(line, columns)
            self._cells[line.key] = cells
            table.add_row(*cells, key=line.key)
        self._restore_cursor(table, selected, offset)

    def _update_cells(self, table: _TreeTable, old_lines: list[Line], lines: list[Line]) -> None:
        for old_line, line in zip(old_lines, lines, strict=True):
            if old_line == line:
                continue
            cells = line_cells(line, self._columns)
            old = self._cells.get(line.key)
            for index, (column, cell) in enumerate(zip(self._columns, cells, strict=True)):
                if old is None or old[index] != cell:
                    table.update_cell(line.key, column.key, cell, update_width=True)
            self._cells[line.key] = cells

    def _restore_cursor(self, table: _TreeTable, selected: str | None, offset: int) -> None:
        keys = {line.key: index for index, line in enumerate(self.lines)}
        target = None
        candidate = selected
        while candidate is not None and target is None:
            target = keys.get(candidate)
            candidate = _parent_key(candidate)
        if target is None:
            return
        table.move_cursor(row=target, scroll=False)
        scroll_y = max(0, target - max(0, offset))
        table.call_after_refresh(table.scroll_to, y=scroll_y, animate=False)

    def selected_key(self) -> str | None:
        """Return the key of the row under the cursor ("m:<module>" or "t:<tensor>"), or None."""
        line = self._selected_line()
        return line.key if line is not None else None

    def _selected_line(self) -> Line | None:
        table = self.query_one(_TreeTable)
        if not self.lines or not 0 <= table.cursor_row < len(self.lines):
            return None
        return self.lines[table.cursor_row]

    # --- reactives -----------------------------------------------------------

    def watch_view_mode(self) -> None:
        self._show_status()
        self._render_table()

    def watch_filter_text(self) -> None:
        self._show_status()
        self._render_table()

    # --- actions ---------------------------------------------------------------

    @on(_TreeTable.NodeAction)
    def _on_node_action(self, message: _TreeTable.NodeAction) -> None:
        line = self._selected_line()
        if line is None:
            return
        name = line.key[2:]
        is_module = line.tensor is None
        opened = is_module and (name in self.expanded or bool(self.filter_text))
        if message.action == "toggle" and is_module:
            self._set_expanded(name, not opened)
        elif message.action == "expand" and is_module and not opened:
            self._set_expanded(name, True)
        elif message.action == "collapse" and is_module and opened:
            self._set_expanded(name, False)
        elif message.action == "collapse":
            self._move_to_parent(line)

    def _set_expanded(self, name: str, expand: bool) -> None:
        if self.filter_text:
            self.notify("Clear the filter (Escape) to expand or collapse modules.", timeout=3)
            return
        if expand:
            self.expanded.add(name)
        else:
            self.expanded.discard(name)
        self._render_table()

    def _move_to_parent(self, line: Line) -> None:
        parent = _parent_key(line.key)
        for index, candidate in enumerate(self.lines):
            if candidate.key == parent:
                self.query_one(_TreeTable).move_cursor(row=index)
                return

    def action_start_filter(self) -> None:
        field = self.query_one("#inspector-filter", Input)
        field.disabled = False
        self.add_class("-filtering")
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#inspector-filter", Input)
        field.value = ""
        self.filter_text = ""
        self._hide_filter()

    def _hide_filter(self) -> None:
        self.query_one(_TreeTable).focus()
        self.remove_class("-filtering")
        self.query_one("#inspector-filter", Input).disabled = True

    @on(Input.Changed, "#inspector-filter")
    def _on_filter_changed(self, message: Input.Changed) -> None:
        self.filter_text = message.value

    @on(Input.Submitted, "#inspector-filter")
    def _on_filter_submitted(self, message: Input.Submitted) -> None:
        if message.value:
            self.query_one(_TreeTable).focus()
        else:
            self._hide_filter()

    def action_next_view(self) -> None:
        self.view_mode = VIEW_MODES[(VIEW_MODES.index(self.view_mode) + 1) % len(VIEW_MODES)]

    def action_refresh_snapshot(self) -> None:
        self.post_message(self.RefreshRequested(self.watch_every))

    def action_toggle_freeze(self) -> None:
        """Freeze the selected parameter or module, or unfreeze it when nothing under it trains."""
        line = self._selected_line()
        if line is None or self.snapshot is None:
            return
        name = line.key[2:]
        targets = _parameters_under(self.snapshot, name)
        if not targets:
            self.notify(f"{name or 'the model'} has no parameters, and only parameters can be frozen.",
                        severity="warning", timeout=4)
            return
        requires_grad = not any(row.requires_grad for row in targets)
        self._requested = (name, requires_grad)
        self._show_status()
        self.post_message(self.FreezeToggled(name, requires_grad))

    # --- messages ------------------------------------------------------------

    class FreezeToggled(Message):
        """A request to set requires_grad on a parameter or on every parameter under a module."""

        def __init__(self, name: str, requires_grad: bool) -> None:
            super().__init__()
            self.name = name
            """A parameter or module name, "" being the whole model."""
            self.requires_grad = requires_grad

    class RefreshRequested(Message):
        """A request for a snapshot now and then one every `watch_every` steps (0: none after it)."""

        def __init__(self, watch_every: int) -> None:
            super().__init__()
            self.watch_every = watch_every


def _parameters_under(snapshot: ParameterSnapshot, name: str) -> list[TensorRow]:
    """Return the parameter rows named `name` or under the module `name` ("" is the model)."""
    prefix = f"{name}." if name else ""
    return [row for row in snapshot.tensors if row.in_parameters and (row.name == name or row.name.startswith(prefix))]


def _parent_key(key: str) -> str | None:
    """Return the key of the module that contains a row, or None for the model's root."""
    kind, name = key[:2], key[2:]
    if kind == "m:" and not name:
        return None
    return module_key(_parent(name))
