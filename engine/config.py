"""Run configuration: one frozen dataclass per TOML section, loaded and validated.

Precedence is `--set section.key=value` over the TOML file over the defaults
below. Values are parsed as TOML, never executed. Every problem raises
ConfigError with a one-line message that names the dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ScheduleKind = Literal["constant", "cosine", "linear", "step", "exponential", "wsd"]
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]
TokenizerName = Literal["char", "gpt2"]
SaveCheckpoint = Literal["always", "best", "never"]
BUILTIN_CORPUS = "builtin:python-stdlib"


class ConfigError(ValueError):
    """A config value, file or override that cannot be used, with the dotted key."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    """Run name; the run directory is <out_dir>/<name>-<timestamp>."""
    out_dir: str = "runs"
    """Parent folder of run directories."""


@dataclass(frozen=True)
class ModelConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    """Context length in tokens."""
    dropout: float = 0.0
    bias: bool = False
    """Bias in Linear and LayerNorm layers, as GPT-2 had."""
    vocab_size: int = 0
    """0 takes the data's vocabulary, padded up to a multiple of 64."""

    def __post_init__(self) -> None:
        for key in ("n_layer", "n_head", "n_embd", "block_size"):
            _check(getattr(self, key) >= 1, f"model.{key} must be >= 1, got {getattr(self, key)}")
        _check(
            self.n_embd % self.n_head == 0,
            f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})",
        )
        _check(0.0 <= self.dropout < 1.0, f"model.dropout must be in [0, 1), got {self.dropout}")
        _check(self.vocab_size >= 0, f"model.vocab_size must be >= 0, got {self.vocab_size}")


@dataclass(frozen=True)
class DataConfig:
    path: str = BUILTIN_CORPUS
    """A text file, a prepared directory (train.bin, val.bin) or builtin:python-stdlib."""
    tokenizer: TokenizerName = "char"
    tiktoken_file: str = ""
    """Local GPT-2 rank file for offline boxes; empty uses $GPTTUI_TIKTOKEN_FILE or tiktoken's cache."""
    cache_dir: str = ""
    """Folder for text files prepared on first use; empty means ~/.cache/gpttui."""
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        _check(bool(self.path), "data.path must name a text file or a prepared directory")
        _check(
            0.0 < self.val_fraction < 1.0,
            f"data.val_fraction must be in (0, 1), got {self.val_fraction}",
        )


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 12
    """Sequences per micro-batch."""
    max_iters: int = 2000
    """Optimizer steps of the whole run."""
    gradient_accumulation_steps: int = 1
    grad_clip: float = 1.0
    """Clip the global gradient norm to this; 0 disables clipping."""
    log_interval: int = 10
    """Steps between headless log lines."""
    seed: int = 1337
    compile: bool = False
    """Wrap the model in torch.compile."""
    stop_on_nonfinite: bool = True
    """Stop the run (keeping the last good checkpoint) when the loss is NaN or inf."""

    def __post_init__(self) -> None:
        for key in ("batch_size", "max_iters", "gradient_accumulation_steps", "log_interval"):
            _check(getattr(self, key) >= 1, f"train.{key} must be >= 1, got {getattr(self, key)}")
        _check(self.grad_clip >= 0, f"train.grad_clip must be >= 0, got {self.grad_clip}")


@dataclass(frozen=True)
class OptimConfig:
    learning_rate: float = 1e-3
    """Peak learning rate."""
    weight_decay: float = 0.1
    """Applied to tensors of two or more dimensions only."""
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    fused: bool | None = None
    """Fused AdamW; unset uses it where the device supports it (CUDA)."""

    def __post_init__(self) -> None:
        _check(self.learning_rate > 0, f"optim.learning_rate must be > 0, got {self.learning_rate}")
        _check(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        for key in ("beta1", "beta2"):
            _check(0 <= getattr(self, key) < 1, f"optim.{key} must be in [0, 1), got {getattr(self, key)}")
        _check(self.eps > 0, f"optim.eps must be > 0, got {self.eps}")


@dataclass(frozen=True)
class ScheduleConfig:
    kind: ScheduleKind = "cosine"
    warmup_iters: int = 100
    """Linear warmup steps; applies to every kind."""
    lr_decay_iters: int = 2000
    """Step at which cosine, linear and wsd reach min_lr."""
    min_lr: float = 1e-4
    gamma: float = 0.1
    """Factor for step (every step_size steps) and exponential (every step)."""
    step_size: int = 1000
    decay_iters: int = 200
    """Length of wsd's final linear decay, ending at lr_decay_iters."""

    def __post_init__(self) -> None:
        _check(self.warmup_iters >= 0, f"schedule.warmup_iters must be >= 0, got {self.warmup_iters}")
        _check(self.min_lr >= 0, f"schedule.min_lr must be >= 0, got {self.min_lr}")
        _check(0 < self.gamma <= 1, f"schedule.gamma must be in (0, 1], got {self.gamma}")
        _check(self.step_size >= 1, f"schedule.step_size must be >= 1, got {self.step_size}")
        if self.kind in ("cosine", "linear", "wsd"):
            _check(
                self.warmup_iters <= self.lr_decay_iters,
                f"schedule.warmup_iters ({self.warmup_iters}) must not exceed "
                f"schedule.lr_decay_iters ({self.lr_decay_iters})",
            )
        if self.kind == "wsd":
            _check(
                1 <= self.decay_iters <= self.lr_decay_iters - self.warmup_iters,
                f"schedule.decay_iters ({self.decay_iters}) must be between 1 and "
                f"lr_decay_iters - warmup_iters ({self.lr_decay_iters - self.warmup_iters})",
            )


@dataclass(frozen=True)
class EvalConfig:
    interval: int = 250
    """Steps between evaluations; 0 evaluates only at the end."""
    iters: int = 20
    """Batches averaged per split."""
    sample_tokens: int = 200
    """Tokens generated for the sample at each eval; 0 skips the sample."""
    temperature: float = 0.8
    top_k: int = 200
    prompt: str = "\n"

    def __post_init__(self) -> None:
        _check(self.interval >= 0, f"eval.interval must be >= 0, got {self.interval}")
        _check(self.iters >= 1, f"eval.iters must be >= 1, got {self.iters}")
        _check(self.sample_tokens >= 0, f"eval.sample_tokens must be >= 0, got {self.sample_tokens}")
        _check(self.temperature > 0, f"eval.temperature must be > 0, got {self.temperature}")
        _check(self.top_k >= 0, f"eval.top_k must be >= 0, got {self.top_k}")


@dataclass(frozen=True)
class CheckpointConfig:
    save: SaveCheckpoint = "best"
    """At each eval: always save, save when val loss improves, or never."""
    on_stop: bool = True
    """Save when the run ends or is stopped."""


@dataclass(frozen=True)
class SystemConfig:
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""
    dtype: DtypeName = "auto"
    """Autocast dtype; auto is bfloat16 on CUDA where supported, float16 on older CUDA, float32 elsewhere."""
    tf32: bool = True
    peak_tflops: float = 0.0
    """Peak TFLOP/s for MFU; 0 looks the device up (GPU) or measures it (CPU)."""
    threads: int = 0
    """torch intra-op threads; 0 keeps torch's default."""

    def __post_init__(self) -> None:
        device = self.device
        valid = device in ("auto", "cpu", "cuda", "mps") or (
            device.startswith("cuda:") and device[5:].isdigit()
        )
        _check(valid, f"system.device must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
        _check(self.peak_tflops >= 0, f"system.peak_tflops must be >= 0, got {self.peak_tflops}")
        _check(self.threads >= 0, f"system.threads must be >= 0, got {self.threads}")


@dataclass(frozen=True)
class ProfileConfig:
    steps: int = 3
    """Active steps recorded per capture."""
    warmup: int = 1
    """Steps run under the profiler but discarded before the active ones."""
    record_shapes: bool = True
    profile_memory: bool = True
    with_stack: bool = False
    with_flops: bool = True
    top_ops: int = 25
    """Rows kept in the summary table."""

    def __post_init__(self) -> None:
        _check(self.steps >= 1, f"profile.steps must be >= 1, got {self.steps}")
        _check(self.warmup >= 0, f"profile.warmup must be >= 0, got {self.warmup}")
        _check(self.top_ops >= 1, f"profile.top_ops must be >= 1, got {self.top_ops}")


@dataclass(frozen=True)
class BenchConfig:
    burn_in: int = 5
    """Untimed steps first, for allocator warmup and compilation."""
    steps: int = 20
    """Timed steps."""

    def __post_init__(self) -> None:
        _check(self.burn_in >= 0, f"bench.burn_in must be >= 0, got {self.burn_in}")
        _check(self.steps >= 1, f"bench.steps must be >= 1, got {self.steps}")


@dataclass(frozen=True)
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """Render the resolved config as TOML that load_config reads back unchanged."""
        lines: list[str] = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                if value is not None:
                    lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return repr(value)


_SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Load a TOML file, apply `section.key=value` overrides and validate.

    Args:
        path: TOML file; None starts from the defaults.
        overrides: `--set` values; each value is parsed as TOML, and a bare
            word that is not valid TOML is taken as a string.

    Raises:
        ConfigError: with a one-line message naming the file, key or value.
    """
    raw: dict[str, dict[str, Any]] = {}
    if path is not None:
        raw = _read_toml(Path(path))
    for override in overrides or []:
        section, key, value = _parse_override(override)
        raw.setdefault(section, {})[key] = value
    return build_config(raw)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; pass a TOML file such as config/small.toml") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _parse_override(text: str) -> tuple[str, str, Any]:
    dotted, sep, value_text = text.partition("=")
    section, dot, key = dotted.strip().partition(".")
    if not sep or not dot or not key:
        raise ConfigError(f"--set {text!r} must look like section.key=value, for example train.max_iters=100")
    try:
        value = tomllib.loads(f"v = {value_text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text.strip()
    return section, key.strip(), value


def build_config(raw: dict[str, Any]) -> Config:
    """Build a validated Config from nested dicts, as read from TOML."""
    sections: dict[str, Any] = {}
    for section, values in raw.items():
        cls = _SECTIONS.get(section)
        if cls is None:
            raise ConfigError(f"unknown config section [{section}]{_suggest(section, _SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of keys, got {values!r}")
        sections[section] = _build_section(section, cls, values)
    return Config(**sections)


def _build_section(section: str, cls: type, values: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown config key {section}.{key}{_suggest(key, fields, section)}")
        kwargs[key] = _coerce(f"{section}.{key}", hints[key], value)
    return cls(**kwargs)


def _suggest(name: str, valid: dict[str, Any], section: str | None = None) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    prefix = f"{section}." if section else ""
    if close:
        return f"; did you mean {prefix}{close[0]}?"
    return f"; valid keys are {', '.join(prefix + v for v in valid)}"


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Check `value` against the field's annotation; ints are accepted for floats."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _coerce(key, options[0], value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (hint is int and isinstance(value, bool)) or not isinstance(value, hint):
        raise ConfigError(f"{key} must be {_type_name(hint)}, got {value!r} ({_type_name(type(value))})")
    return value


def _type_name(hint: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )
