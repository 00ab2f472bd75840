"""Measure what the live dashboard costs the run it monitors, in a real terminal.

For the same config and seed it runs `gpttui run` three ways, alternating
them for --rounds rounds:

- headless: `--headless`, plain log lines, no app;
- app/thread: the dashboard in tmux, the trainer on a thread of the app's process;
- app/process: the dashboard in tmux, the trainer in a child process.

Tokens/s is the median over the timed steps in each run's metrics.jsonl.
The app's own CPU time is read with psutil just before quitting: for the
thread host the main thread of the gpttui process (where Textual runs), for
the process host the whole parent process. Key-press-to-screen latency is
timed in one more app/thread run by pressing 4 (Logs tab) and 1 (Dashboard)
and polling `tmux capture-pane` every 5 ms until the screen shows the tab;
the throughput runs poll only once a second, since each capture-pane starts
a process that takes CPU from training.

    python benchmarks/app_overhead.py [CONFIG] [--steps N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
BURN_IN = 20
KEYS = (("4", "INFO "), ("1", "loss EMA"))
"""Keys pressed for the latency figure, each with text that only its tab shows."""


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def tokens_per_s(run_dir: Path) -> float:
    steps = []
    tokens_per_step = 0
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "RunStarted":
            tokens_per_step = record["tokens_per_step"]
        elif record["event"] == "StepMetrics" and record["step"] >= BURN_IN:
            steps.append(record["step_time_s"])
    return tokens_per_step / statistics.median(steps)


def run_headless(config: str, steps: int, run_dir: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "gpttui.cli", "run", config, "--headless", "--out-dir", str(run_dir),
               *overrides(steps)]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    return {"tokens_per_s": tokens_per_s(run_dir)}


def overrides(steps: int) -> list[str]:
    return ["--set", f"train.max_iters={steps}", "--set", "eval.interval=0", "--set", "checkpoint.on_stop=false"]


def run_app(config: str, steps: int, run_dir: Path, engine: str, measure_keys: bool) -> dict[str, float]:
    session = f"gpttui-bench-{uuid.uuid4().hex[:8]}"
    done = run_dir.parent / f"{run_dir.name}.done"
    command = " ".join(shlex.quote(part) for part in [
        sys.executable, "-m", "gpttui.cli", "run", config, "--out-dir", str(run_dir), "--engine", engine,
        *overrides(steps),
    ])
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40",
         f"cd {shlex.quote(str(REPO))} && {command}; touch {shlex.quote(str(done))}; sleep 30")
    try:
        app_process = _find_app_process(session)
        latencies = _key_latencies(session) if measure_keys else []
        # Slow polling: each capture-pane is a process start that would take CPU from training.
        _wait_for_screen(session, "completed", timeout=steps * 2.0 + 120, poll_s=1.0)
        cpu_s = _app_cpu_seconds(app_process, engine)
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 60
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    result = {"tokens_per_s": tokens_per_s(run_dir), "app_cpu_s": cpu_s}
    if latencies:
        result["key_p50_ms"] = statistics.median(latencies)
        result["key_p95_ms"] = statistics.quantiles(latencies, n=20)[-1]
    return result


def _find_app_process(session: str) -> psutil.Process:
    shell_pid = int(tmux("list-panes", "-t", session, "-F", "#{pane_pid}").strip())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in psutil.Process(shell_pid).children(recursive=True):
            if "gpttui.cli" in " ".join(child.cmdline()):
                return child
        time.sleep(0.05)
    raise RuntimeError("the gpttui process did not start")


def _app_cpu_seconds(process: psutil.Process, engine: str) -> float:
    if engine == "process":
        times = process.cpu_times()
        return times.user + times.system
    main = [t for t in process.threads() if t.id == process.pid]
    return main[0].user_time + main[0].system_time


def _wait_for_screen(session: str, text: str, timeout: float, poll_s: float = 0.005) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in tmux("capture-pane", "-p", "-t", session):
            return time.perf_counter() - started
        time.sleep(poll_s)
    raise RuntimeError(f"{text!r} did not appear on screen within {timeout} s")


def _wait_for_step(session: str, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"step ([\d,]+) /", tmux("capture-pane", "-p", "-t", session))
        if match and int(match.group(1).replace(",", "")) >= step:
            return
        time.sleep(0.1)
    raise RuntimeError(f"step {step} was not reached within {timeout} s")


def _key_latencies(session: str, presses: int = 20) -> list[float]:
    _wait_for_step(session, BURN_IN)
    latencies = []
    for _ in range(presses // 2):
        for key, marker in KEYS:
            started = time.perf_counter()
            tmux("send-keys", "-t", session, key)
            _wait_for_screen(session, marker, timeout=10)
            latencies.append((time.perf_counter() - started) * 1e3)
            time.sleep(0.3)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="config/small.toml")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    results: dict[str, list[dict[str, float]]] = {"headless": [], "app/thread": [], "app/process": []}
    with tempfile.TemporaryDirectory(prefix="gpttui-app-bench-") as tmp:
        for round_index in range(args.rounds):
            base = Path(tmp) / f"round{round_index}"
            results["headless"].append(run_headless(args.config, args.steps, base / "headless"))
            results["app/thread"].append(run_app(args.config, args.steps, base / "thread", "thread", False))
            results["app/process"].append(run_app(args.config, args.steps, base / "process", "process", False))
            print(f"round {round_index + 1}: " + ", ".join(
                f"{mode} {runs[-1]['tokens_per_s']:,.0f} tok/s" for mode, runs in results.items()), flush=True)

        keys = run_app(args.config, args.steps, Path(tmp) / "keys", "thread", True)
    print(f"key press to screen, app/thread, {len(KEYS) * 10} presses while training: "
          f"p50 {keys['key_p50_ms']:.0f} ms, p95 {keys['key_p95_ms']:.0f} ms "
          f"(includes up to 5 ms of capture-pane polling)")

    baseline = statistics.median(r["tokens_per_s"] for r in results["headless"])
    print(f"\n{'mode':<12} {'tok/s':>8} {'vs headless':>12} {'app CPU s':>10}")
    for mode, runs in results.items():
        rate = statistics.median(r["tokens_per_s"] for r in runs)
        cpu = statistics.median(r.get("app_cpu_s", float("nan")) for r in runs)
        print(f"{mode:<12} {rate:>8,.0f} {rate / baseline - 1:>+11.1%} {cpu:>10.1f}")


if __name__ == "__main__":
    main()
