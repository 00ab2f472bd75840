"""The gpttui command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.engine.conftest import TINY, make_text

REPO = Path(__file__).resolve().parents[1]


def gpttui(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpttui.cli", *args], capture_output=True, text=True, timeout=timeout,
        cwd=cwd or REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture
def tiny_toml(tmp_path: Path) -> Path:
    text = make_text(tmp_path / "corpus.txt")
    lines = [f'data.path="{text}"', f'data.cache_dir="{tmp_path / "cache"}"', *TINY]
    sections: dict[str, list[str]] = {}
    for line in lines:
        dotted, _, value = line.partition("=")
        section, _, key = dotted.partition(".")
        sections.setdefault(section, []).append(f"{key} = {value}")
    path = tmp_path / "tiny.toml"
    path.write_text("\n".join(f"[{s}]\n" + "\n".join(keys) for s, keys in sections.items()) + "\n")
    return path


def test_help_does_not_import_torch() -> None:
    code = "import sys\nfrom gpttui.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules, 'textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_unknown_key_exits_2(tiny_toml: Path) -> None:
    result = gpttui("run", str(tiny_toml), "--headless", "--set", "train.max_iter=3")
    assert result.returncode == 2
    assert result.stderr.strip() == "gpttui: error: unknown config key train.max_iter; did you mean train.max_iters?"


def test_missing_config_exits_2(tmp_path: Path) -> None:
    result = gpttui("run", str(tmp_path / "missing.toml"), "--headless")
    assert result.returncode == 2
    assert "not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_data_path_one_line_error(tiny_toml: Path, tmp_path: Path) -> None:
    result = gpttui("run", str(tiny_toml), "--headless", "--out-dir", str(tmp_path / "run"),
                    "--set", f'data.path="{tmp_path / "nowhere.txt"}"')
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1
    assert errors[0].startswith("gpttui: error: data.path")
    assert "Traceback" not in result.stderr


def test_headless_run_writes_run_dir(tiny_toml: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = gpttui("run", str(tiny_toml), "--headless", "--out-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert "iter 0: loss" in result.stdout
    assert "step 10: train loss" in result.stdout
    assert "run completed at step 10" in result.stdout
    for name in ("metrics.jsonl", "config.toml", "ckpt.pt", "samples.txt"):
        assert (run_dir / name).is_file(), name


def test_resume_continues_run(tiny_toml: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert gpttui("run", str(tiny_toml), "--headless", "--out-dir", str(run_dir)).returncode == 0
    result = gpttui("run", str(tiny_toml), "--headless", "--resume", str(run_dir / "ckpt.pt"),
                    "--set", "train.max_iters=12", "--set", "schedule.lr_decay_iters=12")
    assert result.returncode == 0, result.stderr
    assert "steps 10 -> 12" in result.stdout
    assert "iter 11: loss" in result.stdout
    assert torch.load(run_dir / "ckpt.pt", weights_only=True)["iter_num"] == 12


def test_sigint_saves_and_exits_0(tiny_toml: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "gpttui.cli", "run", str(tiny_toml), "--headless", "--out-dir", str(run_dir),
         "--set", "train.max_iters=100000", "--set", "schedule.lr_decay_iters=100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.stdout.readline().startswith("iter 3:"):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "SIGINT received" in err
    assert "run stopped at step" in out
    assert torch.load(run_dir / "ckpt.pt", weights_only=True)["iter_num"] > 3


def test_prepare_then_train_on_directory(tmp_path: Path, tiny_toml: Path) -> None:
    text = make_text(tmp_path / "other.txt")
    out_dir = tmp_path / "prepared"
    result = gpttui("prepare", str(text), "--tokenizer", "char", "--out", str(out_dir))
    assert result.returncode == 0, result.stderr
    assert "train +" in result.stdout
    assert (out_dir / "train.bin").is_file()
    assert (out_dir / "meta.pkl").is_file()
    run = gpttui("run", str(tiny_toml), "--headless", "--out-dir", str(tmp_path / "run"),
                 "--set", f'data.path="{out_dir}"', "--set", "train.max_iters=2")
    assert run.returncode == 0, run.stderr


def test_prepare_missing_file_exits_1(tmp_path: Path) -> None:
    result = gpttui("prepare", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.startswith("gpttui: error:")
    assert "Traceback" not in result.stderr


def test_bench_prints_figures(tiny_toml: Path) -> None:
    result = gpttui("bench", str(tiny_toml), "--set", "bench.burn_in=2", "--set", "bench.steps=3")
    assert result.returncode == 0, result.stderr
    assert "ms/iter" in result.stdout
    assert "tok/s" in result.stdout
