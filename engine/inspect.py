"""Snapshots of a model's parameters, buffers and state_dict for the inspector.

`build_snapshot` turns a live model and its optimizer into a ParameterSnapshot
of plain values. `ParameterWatcher` is the trainer's step hook that sends
those snapshots on request and every N steps, and freezes or unfreezes
parameters between steps.

Norms are computed with one `torch._foreach_norm` kernel per (device, dtype)
and read back with one device-to-host copy per device, because a
`.item()` per tensor would synchronise the device ~150 times for GPT-2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from engine.events import Event, ModuleRow, OptimizerGroupRow, ParameterSnapshot, TensorRow

EmitFn = Callable[[Event], None]
LogFn = Callable[[str, str], None]
DecayGroup = Literal["decay", "no_decay"]


# --- snapshot ----------------------------------------------------------------


@dataclass
class _Entry:
    """One name of the model with the object behind it and the sets it belongs to."""

    name: str
    kind: Literal["parameter", "buffer", "state"]
    value: Any
    """A tensor, or for `get_extra_state` entries any object."""
    in_parameters: bool
    in_buffers: bool
    in_state_dict: bool


def build_snapshot(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    previous_weights: Mapping[str, torch.Tensor] | None = None,
    gradients: Mapping[str, torch.Tensor] | None = None,
    updates: Mapping[str, torch.Tensor] | None = None,
) -> ParameterSnapshot:
    """Describe every module, parameter, buffer and state_dict entry of a model.

    Args:
        model: the unwrapped model (not a torch.compile or DDP wrapper, whose
            names carry a prefix).
        optimizer: source of decay groups and learning rates. With None,
            rows have no decay group and the snapshot lists no groups.
        step: optimizer steps applied to the weights described.
        previous_weights: parameter values before the last update, by name.
            Rows of the names given get update_ratio = ||w - w_prev|| / ||w||.
        gradients: gradients by parameter name, used in place of `.grad`,
            which the trainer has already cleared when a step hook runs.
        updates: the last update of each parameter by name, w - w_prev or
            its negative, for callers that computed it in place. Names given
            here take precedence over previous_weights.

    Returns:
        A snapshot whose totals count each shared tensor once, as
        `model.parameters()` does.
    """
    structure = _Structure.of(model)
    entries = structure.entries()
    groups_by_param, group_rows = _optimizer_groups(optimizer)
    tied = _tied_names(entries)

    norms = _NormBatch()
    with torch.no_grad():
        plans = [_plan_row(entry, norms, previous_weights, gradients, updates) for entry in entries]
        values = norms.compute()
    rows = tuple(
        _tensor_row(entry, plan, values, tied.get(entry.name, ()), groups_by_param)
        for entry, plan in zip(entries, plans, strict=True)
    )

    unique_params = list({id(p): p for _, p in structure.parameters}.values())
    unique_buffers = list({id(b): b for _, b in structure.buffers}.values())
    total = sum(p.numel() for p in unique_params)
    trainable = sum(p.numel() for p in unique_params if p.requires_grad)
    num_params = getattr(model, "num_params", None)
    return ParameterSnapshot(
        step=step,
        modules=structure.module_rows(),
        tensors=rows,
        groups=group_rows,
        total_params=total,
        trainable_params=trainable,
        frozen_params=total - trainable,
        buffer_numel=sum(b.numel() for b in unique_buffers),
        non_embedding_params=int(num_params(non_embedding=True)) if callable(num_params) else total,
    )


@dataclass
class _Structure:
    """A model's modules, parameters, buffers and state_dict, read in as few traversals as possible.

    A snapshot of a small model is dominated by Python time, and each
    `named_*` call walks every module again.
    """

    modules: list[tuple[str, nn.Module]]
    parameters: list[tuple[str, nn.Parameter]]
    """Every name of every parameter, so tied tensors appear once per name."""
    buffers: list[tuple[str, torch.Tensor]]
    state: dict[str, Any]

    @classmethod
    def of(cls, model: nn.Module) -> _Structure:
        modules = list(model.named_modules(remove_duplicate=False))
        parameters = [
            item for name, module in modules
            for item in module.named_parameters(prefix=name, recurse=False, remove_duplicate=False)
        ]
        buffers = [
            item for name, module in modules
            for item in module.named_buffers(prefix=name, recurse=False, remove_duplicate=False)
        ]
        # keep_vars=True returns the Parameter and buffer objects themselves, so
        # membership can be decided by name and sharing by identity.
        return cls(modules, parameters, buffers, model.state_dict(keep_vars=True))

    def entries(self) -> list[_Entry]:
        state = self.state
        known = {name for name, _ in self.parameters} | {name for name, _ in self.buffers}
        entries = [_Entry(name, "parameter", p, True, False, name in state) for name, p in self.parameters]
        entries += [_Entry(name, "buffer", b, False, True, name in state) for name, b in self.buffers]
        # What remains in state_dict comes from get_extra_state or a custom _save_to_state_dict.
        entries += [_Entry(name, "state", value, False, False, True) for name, value in state.items() if name not in known]
        return entries

    def module_rows(self) -> tuple[ModuleRow, ...]:
        # Parameters under each module by identity, so a tied tensor counts once.
        under: dict[str, dict[int, int]] = {name: {} for name, _ in self.modules}
        for name, param in self.parameters:
            for prefix in _module_prefixes(name):
                bucket = under.get(prefix)
                if bucket is not None:
                    bucket[id(param)] = param.numel()
        return tuple(
            ModuleRow(name=name, class_name=type(module).__name__, numel=sum(under[name].values()))
            for name, module in self.modules
        )


def _tensor_row(
    entry: _Entry, plan: _RowPlan, values: list[float], names: tuple[str, ...], groups_by_param: dict[int, DecayGroup]
) -> TensorRow:
    tensor = entry.value if isinstance(entry.value, torch.Tensor) else None
    norm = _read(values, plan.norm)
    update_norm = _read(values, plan.update)
    update_ratio = None
    if update_norm is not None and norm:
        update_ratio = update_norm / norm
    return TensorRow(
        name=entry.name,
        kind=entry.kind,
        shape=tuple(tensor.shape) if tensor is not None else (),
        dtype=str(tensor.dtype).removeprefix("torch.") if tensor is not None else type(entry.value).__name__,
        device=str(tensor.device) if tensor is not None else "",
        numel=tensor.numel() if tensor is not None else 0,
        requires_grad=bool(tensor is not None and tensor.requires_grad),
        in_parameters=entry.in_parameters,
        in_buffers=entry.in_buffers,
        in_state_dict=entry.in_state_dict,
        # Parameters and extra state are always saved, so only buffers can be non-persistent.
        persistent=entry.in_state_dict,
        norm=norm,
        grad_norm=_read(values, plan.grad),
        update_ratio=update_ratio,
        tied_to=tuple(other for other in names if other != entry.name),
        decay_group=groups_by_param.get(id(tensor)) if entry.kind == "parameter" else None,
    )


def _storage_key(tensor: torch.Tensor) -> tuple[Any, ...]:
    # Distinct tensor objects viewing the same memory count as tied too.
    if tensor.numel() == 0 or tensor.device.type == "meta":
        return ("id", id(tensor))
    return (str(tensor.device), tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)


def _tied_names(entries: list[_Entry]) -> dict[str, tuple[str, ...]]:
    names_by_key: dict[tuple[Any, ...], list[str]] = {}
    for entry in entries:
        if isinstance(entry.value, torch.Tensor):
            names = names_by_key.setdefault(_storage_key(entry.value), [])
            if entry.name not in names:
                names.append(entry.name)
    return {name: tuple(names) for names in names_by_key.values() if len(names) > 1 for name in names}


def _module_prefixes(tensor_name: str) -> Iterator[str]:
    """Yield "" and every dotted prefix of a tensor name, the owning module last."""
    parts = tensor_name.split(".")
    for end in range(len(parts)):
        yield ".".join(parts[:end])


def _optimizer_groups(
    optimizer: torch.optim.Optimizer | None,
) -> tuple[dict[int, DecayGroup], tuple[OptimizerGroupRow, ...]]:
    if optimizer is None:
        return {}, ()
    by_param: dict[int, DecayGroup] = {}
    rows = []
    for group in optimizer.param_groups:
        weight_decay = float(group.get("weight_decay", 0.0))
        # A nanoGPT checkpoint's optimizer state replaces the groups with
        # unnamed ones, so the decay setting decides where the name is missing.
        name = group.get("name")
        decay: DecayGroup = "decay" if weight_decay > 0 else "no_decay"
        if name in ("decay", "no_decay"):
            decay = name
        params = group["params"]
        for param in params:
            by_param[id(param)] = decay
        rows.append(OptimizerGroupRow(
            name=str(name) if name is not None else decay,
            weight_decay=weight_decay,
            lr=float(group["lr"]),
            numel=sum(p.numel() for p in params),
            tensors=len(params),
        ))
    return by_param, tuple(rows)


# --- norms -------------------------------------------------------------------


@dataclass
class _RowPlan:
    """Indices into the batched norm results for one row, None where a value does not apply."""

    norm: int | None = None
    grad: int | None = None
    update: int | None = None


def _plan_row(
    entry: _Entry,
    norms: _NormBatch,
    previous_weights: Mapping[str, torch.Tensor] | None,
    gradients: Mapping[str, torch.Tensor] | None,
    updates: Mapping[str, torch.Tensor] | None,
) -> _RowPlan:
    tensor = entry.value
    plan = _RowPlan()
    if not isinstance(tensor, torch.Tensor) or not _measurable(tensor):
        return plan
    tensor = tensor.detach()
    plan.norm = norms.add(tensor)
    if entry.kind != "parameter":
        return plan

    grad = gradients.get(entry.name) if gradients is not None else entry.value.grad
    if grad is not None and _measurable(grad):
        plan.grad = norms.add(grad)
    update = updates.get(entry.name) if updates is not None else None
    previous = previous_weights.get(entry.name) if previous_weights is not None else None
    if update is not None:
        plan.update = norms.add(update)
    elif previous is not None and previous.shape == tensor.shape:
        plan.update = norms.add(tensor - previous.to(tensor.device, tensor.dtype))
    return plan


def _measurable(tensor: torch.Tensor) -> bool:
    return tensor.layout == torch.strided and tensor.device.type != "meta"


def _read(values: list[float], index: int | None) -> float | None:
    return None if index is None else values[index]


class _NormBatch:
    """L2 norms of many tensors, computed in batches and read back together."""

    def __init__(self) -> None:
        self._tensors: list[torch.Tensor] = []

    def add(self, tensor: torch.Tensor) -> int:
        """Queue a tensor and return the index of its norm in `compute()`'s result."""
        self._tensors.append(tensor)
        return len(self._tensors) - 1

    def compute(self) -> list[float]:
        """Return every queued tensor's norm, with one device-to-host copy per device."""
        by_kind: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for index, tensor in enumerate(self._tensors):
            by_kind.setdefault((tensor.device, tensor.dtype), []).append(index)

        parts_by_device: dict[torch.device, list[tuple[list[int], torch.Tensor]]] = {}
        for (device, dtype), indices in by_kind.items():
            group = [self._tensors[i] for i in indices]
            if dtype.is_floating_point or dtype.is_complex:
                group_norms = torch._foreach_norm(group, 2, dtype=torch.float32)
            else:
                # Integer and bool buffers are rare and small (step counters, masks).
                group_norms = [t.float().norm() for t in group]
            parts_by_device.setdefault(device, []).append((indices, torch.stack(group_norms).float()))

        values = [0.0] * len(self._tensors)
        for parts in parts_by_device.values():
            flat = torch.cat([stacked for _, stacked in parts]).tolist()
            positions = [index for indices, _ in parts for index in indices]
            for index, value in zip(positions, flat, strict=True):
                values[index] = value
        return values


# --- the step hook -------------------------------------------------------------


class ParameterWatcher:
    """Send parameter snapshots on request and every N steps, and freeze or unfreeze parameters.

    The trainer calls every method on its engine thread: `request` and
    `set_requires_grad` between steps, `before_step` and `after_step` around
    each optimizer step. A snapshot's `step` is the number of optimizer steps
    applied to the weights it shows, as `Trainer.step` counts them.

    Periodic snapshots carry update ratios and gradient norms. For the
    ratios, `before_step` copies the weights before a step whose snapshot is
    due, into buffers kept while watching (one extra copy of the weights),
    because allocating them afresh each time costs more than the copy on CPU.
    For the gradient norms, an optimizer step pre-hook keeps references to the
    gradients the optimizer is about to apply, because the trainer clears
    `.grad` before `after_step` runs. The hook runs inside `optimizer.step()`,
    so these gradients are unscaled and, when train.grad_clip applies, clipped
    (unlike StepMetrics.grad_norm, which is measured before clipping). They are
    missing on a step that GradScaler skips.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, emit: EmitFn, log: LogFn) -> None:
        self.model = model
        self.optimizer = optimizer
        self._emit = emit
        self._log = log
        self.watch_every = 0
        """Steps between periodic snapshots, or 0 for none."""
        self._next_due: int | None = None
        """Index of the step after which the next periodic snapshot is sent."""
        self._copies: dict[int, torch.Tensor] = {}
        """Weights before the due step by id(parameter), overwritten in place with w_prev - w after it."""
        self._capturing = False
        self._gradients: dict[int, torch.Tensor] | None = None
        self._hook = optimizer.register_step_pre_hook(self._keep_gradients)

    def request(self, watch_every: int, step: int) -> None:
        """Send a snapshot now, then every `watch_every` steps (0: none after this one)."""
        if watch_every < 0:
            self._log("WARNING", f"parameter snapshots: watch_every must be >= 0, got {watch_every}, so the request was ignored")
            return
        self.watch_every = watch_every
        self._next_due = step + watch_every - 1 if watch_every > 0 else None
        if watch_every == 0:
            self._copies = {}
        self._emit(build_snapshot(self.model, self.optimizer, step))

    def before_step(self, step: int) -> None:
        if not self._due(step):
            return
        params = list(self.model.parameters())
        copies = [self._copy_buffer(p) for p in params]
        with torch.no_grad():
            torch._foreach_copy_(copies, [p.detach() for p in params])
        self._capturing = True

    def after_step(self, step: int) -> None:
        if not self._due(step):
            return
        named = list(self.model.named_parameters(remove_duplicate=False))
        params = list(self.model.parameters())
        with torch.no_grad():
            # In place, so the update costs no second weight-sized allocation.
            torch._foreach_sub_([self._copies[id(p)] for p in params], [p.detach() for p in params])
        updates = {name: self._copies[id(p)] for name, p in named}
        captured = self._gradients or {}
        gradients = {name: captured[id(p)] for name, p in named if id(p) in captured}
        snapshot = build_snapshot(self.model, self.optimizer, step + 1, gradients=gradients, updates=updates)
        self._gradients = None
        self._capturing = False
        self._next_due = step + self.watch_every
        self._emit(snapshot)

    def finish(self, step: int) -> None:
        """Stop watching, free the weight copies and remove the optimizer hook."""
        self.watch_every = 0
        self._next_due = None
        self._copies = {}
        self._gradients = None
        self._capturing = False
        self._hook.remove()

    def set_requires_grad(self, name: str, requires_grad: bool, step: int) -> None:
        """Set requires_grad on a parameter or on every parameter under a module, then send a snapshot.

        Args:
            name: a parameter name (either name of a tied tensor), or a module
                name, "" being the whole model.
            requires_grad: False freezes, True unfreezes.
            step: the current step, for the snapshot.
        """
        targets = self._resolve(name)
        if targets is None:
            return
        changed = [p for p in targets if p.requires_grad != requires_grad]
        for param in changed:
            param.requires_grad_(requires_grad)
            if not requires_grad:
                # A frozen tensor must have no gradient, because AdamW skips
                # (neither updates nor decays) exactly the tensors whose .grad is None.
                param.grad = None
        self._log("INFO", self._describe_change(name, targets, changed, requires_grad))
        self._emit(build_snapshot(self.model, self.optimizer, step))

    def _resolve(self, name: str) -> list[nn.Parameter] | None:
        """Return the unique parameters `name` refers to, or log why there are none."""
        parameters = dict(self.model.named_parameters(remove_duplicate=False))
        if name in parameters:
            return [parameters[name]]
        modules = dict(self.model.named_modules(remove_duplicate=False))
        if name in modules:
            targets = list(modules[name].parameters())
            if not targets:
                self._log("WARNING", f"module {name!r} has no parameters, so there is nothing to freeze or unfreeze")
                return None
            return targets
        if name in dict(self.model.named_buffers(remove_duplicate=False)):
            self._log("WARNING", f"{name!r} is a buffer, which has no gradient, so it cannot be frozen or unfrozen")
            return None
        self._log("WARNING", f"no parameter or module named {name!r}")
        return None

    def _describe_change(
        self, name: str, targets: list[nn.Parameter], changed: list[nn.Parameter], requires_grad: bool
    ) -> str:
        verb, state = ("unfroze", "trainable") if requires_grad else ("froze", "frozen")
        label = name or "the whole model"
        numel = sum(p.numel() for p in changed)
        message = f"{verb} {label}: {len(changed)} {_plural(len(changed), 'tensor')}, {numel:,} parameters"
        unchanged = len(targets) - len(changed)
        if unchanged:
            message += f" ({unchanged} {_plural(unchanged, 'tensor')} already {state})"
        # Freezing lm_head.weight also freezes transformer.wte.weight when they are tied.
        changed_ids = {id(p) for p in changed}
        prefix = f"{name}." if name else ""
        also = [
            other for other, p in self.model.named_parameters(remove_duplicate=False)
            if id(p) in changed_ids and other != name and not other.startswith(prefix)
        ]
        if also:
            message += f"; shared with {', '.join(also)}"
        return message

    def _due(self, step: int) -> bool:
        return self.watch_every > 0 and self._next_due is not None and step >= self._next_due

    def _keep_gradients(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._capturing:
            self._gradients = {
                id(p): p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None
            }

    def _copy_buffer(self, param: torch.Tensor) -> torch.Tensor:
        buffer = self._copies.get(id(param))
        if buffer is None or buffer.shape != param.shape or buffer.dtype != param.dtype or buffer.device != param.device:
            buffer = torch.empty_like(param, requires_grad=False)
            self._copies[id(param)] = buffer
        return buffer


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else noun + "s"
