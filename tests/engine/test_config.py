"""Config loading, overrides and validation errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from engine.config import Config, ConfigError, build_config, load_config

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file() -> None:
    config = load_config(None)
    assert config == Config()
    assert config.model.n_layer == 4


def test_toml_then_overrides_precedence(tmp_path: Path) -> None:
    path = write(tmp_path, "[train]\nmax_iters = 50\nbatch_size = 4\n")
    config = load_config(path, ["train.max_iters=7"])
    assert config.train.max_iters == 7
    assert config.train.batch_size == 4
    assert config.train.seed == Config().train.seed


def test_override_values_parsed_as_toml() -> None:
    config = load_config(None, ["optim.learning_rate=3e-4", "train.compile=true", "run.name=abc", 'data.path="x y"'])
    assert config.optim.learning_rate == 3e-4
    assert config.train.compile is True
    assert config.run.name == "abc"
    assert config.data.path == "x y"


def test_int_accepted_for_float() -> None:
    config = load_config(None, ["optim.learning_rate=1"])
    assert config.optim.learning_rate == 1.0
    assert isinstance(config.optim.learning_rate, float)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trian.batch_size=1", "unknown config section [trian]; did you mean train?"),
        ("train.batchsize=1", "unknown config key train.batchsize; did you mean train.batch_size?"),
        ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
        ("train.batch_size=1.5", "train.batch_size must be an integer, got 1.5"),
        ("train.batch_size=true", "train.batch_size must be an integer, got True"),
        ("train.compile=1", "train.compile must be true or false, got 1"),
        ("model.block_size=0", "model.block_size must be >= 1, got 0"),
        ("model.n_embd=130", "model.n_embd (130) must be divisible by model.n_head (4)"),
        ("optim.learning_rate=-0.1", "optim.learning_rate must be > 0, got -0.1"),
        ("schedule.warmup_iters=3000", "schedule.warmup_iters (3000) must not exceed schedule.lr_decay_iters (2000)"),
        ('system.dtype="fp8"', "system.dtype must be one of auto, float32, bfloat16, float16, got 'fp8'"),
        ('system.device="tpu"', "system.device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
        ('schedule.kind="cosin"', "schedule.kind must be one of constant, cosine, linear, step, exponential, wsd"),
        ("train", "--set 'train' must look like section.key=value"),
    ],
)
def test_bad_override_message(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_missing_file_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*nope.toml not found"):
        load_config(tmp_path / "nope.toml")


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "[train]\nmax_iters = = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "is not valid TOML" in str(info.value)
    assert "line 2, column" in str(info.value)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[model]\nn_layers = 2\n")
    with pytest.raises(ConfigError, match=r"unknown config key model.n_layers; did you mean model.n_layer\?"):
        load_config(path)


def test_to_toml_round_trip() -> None:
    config = load_config(None, ["eval.prompt=\"a \\\"q\\\"\\nline\"", "model.dropout=0.1"])
    assert build_config(tomllib.loads(config.to_toml())) == config


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.toml")))
def test_shipped_configs_load(name: str) -> None:
    load_config(REPO / "config" / name)


def test_shipped_configs_documented() -> None:
    readme = (REPO / "config" / "README.md").read_text(encoding="utf-8")
    for section, values in Config().to_dict().items():
        for key in values:
            assert f"`{section}.{key}`" in readme, f"{section}.{key} missing from config/README.md"
