"""End to end in a real terminal: `gpttui run` inside tmux, driven by keys, read by capture-pane."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from tests.test_cli import REPO, tiny_toml  # noqa: F401 - fixture

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

STEP = re.compile(r"step ([\d,]+) / ([\d,]+)")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, predicate, timeout: float = 90.0) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen(session)
        if predicate(text):
            return text
        time.sleep(0.25)
    raise AssertionError(f"screen did not reach the expected state in {timeout} s:\n{text}")


def step_on(text: str) -> int:
    match = STEP.search(text)
    return int(match.group(1).replace(",", "")) if match else -1


def test_dashboard_in_tmux(tiny_toml: Path, tmp_path: Path) -> None:  # noqa: F811
    session = f"gpttui-e2e-{uuid.uuid4().hex[:8]}"
    run_dir = tmp_path / "run"
    exit_file = tmp_path / "exit-code"
    command = " ".join([
        shlex.quote(sys.executable), "-m", "gpttui.cli", "run", shlex.quote(str(tiny_toml)),
        "--out-dir", shlex.quote(str(run_dir)),
        "--set", "train.max_iters=100000", "--set", "schedule.lr_decay_iters=100000",
    ])
    shell = f"cd {shlex.quote(str(REPO))} && {command}; echo $? > {shlex.quote(str(exit_file))}; sleep 60"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", shell)
    try:
        first = wait_for(session, lambda text: step_on(text) > 0)
        assert "Pause/resume" in first
        later = wait_for(session, lambda text: step_on(text) > step_on(first) + 2)
        assert step_on(later) > step_on(first)

        tmux("send-keys", "-t", session, "q")
        wait_for(session, lambda text: "Save and quit" in text and "Quit without saving" in text)
        tmux("send-keys", "-t", session, "Enter")
        deadline = time.monotonic() + 60
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.25)
        assert exit_file.read_text().strip() == "0"
        final_screen = screen(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)

    # Textual leaves the alternate screen on exit, so none of its frame remains.
    assert "Save and quit" not in final_screen
    assert "\x1b" not in final_screen
    state = torch.load(run_dir / "ckpt.pt", weights_only=True)
    assert state["iter_num"] > step_on(first)
