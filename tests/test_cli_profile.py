"""A profiler capture requested from outside a headless run, as a user on a remote box would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.conftest import TINY, make_text

REPO = Path(__file__).resolve().parents[1]


def write_tiny_toml(tmp_path: Path, *overrides: str) -> Path:
    """Write the tiny test config, with `overrides` replacing its keys, as a TOML file."""
    text = make_text(tmp_path / "corpus.txt")
    sections: dict[str, dict[str, str]] = {}
    for line in [*TINY, f'data.path="{text}"', f'data.cache_dir="{tmp_path / "cache"}"', *overrides]:
        dotted, _, value = line.partition("=")
        section, _, key = dotted.partition(".")
        sections.setdefault(section, {})[key] = value
    path = tmp_path / "tiny.toml"
    path.write_text("".join(
        f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items())
        for name, keys in sections.items()
    ))
    return path


def read_until(process: subprocess.Popen[str], prefix: str, deadline: float) -> list[str]:
    """Read stdout lines up to and including the first that starts with `prefix`."""
    assert process.stdout is not None
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(prefix):
            return lines
    pytest.fail(f"no line starting with {prefix!r} before the deadline; last lines: {lines[-5:]}")


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="SIGUSR1 exists on POSIX systems only")
def test_sigusr1_profiles_headless_run(tmp_path: Path) -> None:
    config = write_tiny_toml(tmp_path, "train.max_iters=100000", "schedule.lr_decay_iters=100000", "eval.interval=0")
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "gpttui.cli", "run", str(config), "--headless", "--out-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 120
        read_until(process, "iter 2:", deadline)
        process.send_signal(signal.SIGUSR1)
        summary = read_until(process, "profile of steps", deadline)[-1:]
        summary += read_until(process, "iter ", deadline)[:-1]
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err
    assert "run stopped at step" in out
    [trace_dir] = (run_dir / "profiles").glob("step_*")
    assert list(trace_dir.glob("*.pt.trace.json*"))

    header = [line for line in summary if line.strip().startswith("op ")]
    assert len(header) == 1
    assert "self CPU" in header[0]
    assert any(line.strip().startswith("aten::") for line in summary)
    assert any("forward" in line and "backward" in line for line in summary)
