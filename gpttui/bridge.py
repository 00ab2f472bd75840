"""Engine hosts: the Trainer on a thread of this process, or in a child process.

Both hosts speak the same protocol: the UI calls `drain()` for events and
`send()` for commands, neither of which blocks. Events and commands are plain
frozen dataclasses, so the process host only pickles them across a pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from engine.config import Config
from engine.events import Command, Event, EventChannel, RunFinished, Stop

if TYPE_CHECKING:
    from engine.trainer import Trainer

HostKind = Literal["thread", "process"]
_FORWARD_INTERVAL_S = 0.02
"""How often the child process ships its pending events to the app, in seconds."""


class EngineHost(Protocol):
    def start(self) -> None: ...
    def drain(self, max_items: int | None = None) -> list[Event]: ...
    def send(self, command: Command) -> None: ...
    @property
    def alive(self) -> bool: ...
    def close(self, timeout: float = 10.0) -> None: ...


def start_engine(
    config: Config, *, host: HostKind = "thread", run_dir: Path, resume: str | None = None, bench: bool = False
) -> EngineHost:
    """Create and start an engine host running one Trainer."""
    engine: EngineHost
    if host == "thread":
        engine = ThreadHost(config, run_dir=run_dir, resume=resume, bench=bench)
    else:
        engine = ProcessHost(config, run_dir=run_dir, resume=resume, bench=bench)
    engine.start()
    return engine


ENGINE_NICENESS = 10
"""Niceness added to the training thread, so the terminal UI wins the CPU when both want it."""


def _run_niced(trainer: Trainer) -> None:
    """Run the trainer on this thread at a lower CPU priority, where the OS allows it.

    On Linux niceness is per thread and inherited by threads created later,
    so torch's intra-op worker threads, started by the first parallel op on
    this thread, run at the same lower priority. The UI needs little CPU, so
    training loses almost nothing, but a key press no longer waits for a
    time slice behind the training threads.
    """
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ENGINE_NICENESS)
        except OSError:
            pass
    trainer.run_to_end()


class ThreadHost:
    """Runs the Trainer on a daemon thread of this process."""

    def __init__(self, config: Config, *, run_dir: Path, resume: str | None = None, bench: bool = False) -> None:
        from engine.trainer import Trainer  # torch loads here, not when the CLI starts

        self._channel = EventChannel()
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self.trainer = Trainer(config, self._channel, self._commands, run_dir=run_dir, resume=resume, bench=bench)
        self._thread = threading.Thread(target=_run_niced, args=(self.trainer,), name="gpttui-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def drain(self, max_items: int | None = None) -> list[Event]:
        return self._channel.drain(max_items)

    def send(self, command: Command) -> None:
        self._commands.put(command)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)


class ProcessHost:
    """Runs the Trainer in a spawned child process; it stops when this process dies."""

    def __init__(self, config: Config, *, run_dir: Path, resume: str | None = None, bench: bool = False) -> None:
        context = mp.get_context("spawn")
        self._events: mp.Queue[list[Event]] = context.Queue()
        self._commands: mp.Queue[Command] = context.Queue()
        self._process = context.Process(
            target=_child_main,
            args=(config, str(run_dir), resume, bench, self._events, self._commands, os.getpid()),
            name="gpttui-engine",
            daemon=True,
        )
        self._pending: list[Event] = []
        self._finished = False

    def start(self) -> None:
        self._process.start()

    def drain(self, max_items: int | None = None) -> list[Event]:
        while True:
            try:
                batch = self._events.get_nowait()
            except queue.Empty:
                break
            self._pending.extend(batch)
        if not self._pending and not self._finished and not self._process.is_alive():
            self._finished = True
            code = self._process.exitcode
            self._pending.append(RunFinished(reason="failed", step=-1, error=f"engine process exited with code {code}"))
        count = len(self._pending) if max_items is None else max_items
        out, self._pending = self._pending[:count], self._pending[count:]
        if any(isinstance(event, RunFinished) for event in out):
            self._finished = True
        return out

    def send(self, command: Command) -> None:
        self._commands.put(command)

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(2.0)


def _child_main(
    config: Config, run_dir: str, resume: str | None, bench: bool,
    events: mp.Queue[list[Event]], commands: mp.Queue[Command], parent_pid: int,
) -> None:
    # Ctrl+C reaches the whole foreground process group; the parent decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from engine.trainer import Trainer

    channel = EventChannel()
    local_commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
    trainer = Trainer(config, channel, local_commands, run_dir=Path(run_dir), resume=resume, bench=bench)
    done = threading.Event()
    forwarder = threading.Thread(
        target=_forward, args=(channel, events, commands, local_commands, parent_pid, done), daemon=True
    )
    forwarder.start()
    try:
        _run_niced(trainer)
    finally:
        done.set()
        forwarder.join()
        events.close()
        events.join_thread()


def _forward(
    channel: EventChannel, events: mp.Queue[list[Event]], commands: mp.Queue[Command],
    local_commands: queue.SimpleQueue[Command], parent_pid: int, done: threading.Event,
) -> None:
    """Ship events to the parent in batches and relay its commands; stop the run if it dies."""
    orphaned = False
    while True:
        finished = done.is_set()
        batch = channel.drain()
        if batch:
            events.put(batch)
        while True:
            try:
                local_commands.put(commands.get_nowait())
            except queue.Empty:
                break
        if not orphaned and os.getppid() != parent_pid:
            orphaned = True
            local_commands.put(Stop(save=True))
        if finished:
            return
        time.sleep(_FORWARD_INTERVAL_S)
