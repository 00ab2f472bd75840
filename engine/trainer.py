"""The training loop: a Trainer that runs on an engine thread and talks only in events.

Commands from the UI are read between optimizer steps, so every change to the
model, optimizer or profiler happens on this thread at a step boundary.
"""

from __future__ import annotations

import logging
import math
import queue
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

import torch

from engine import checkpoint as ckpt
from engine.config import Config, ConfigError
from engine.events import (
    CaptureProfile, CheckpointSaved, Command, EvalResult, EventChannel, Event, FinishReason, LogRecord,
    NonFiniteLoss, Pause, RequestParameters, Resume, RunFinished, RunState, SaveCheckpoint,
    SetRequiresGrad, StateChanged, Stop, StepMetrics,
)
from engine.inspect import ParameterWatcher
from engine.metrics import LaggedReader, MetricsLog, StepClock
from engine.profiling import ProfilerController
from engine.schedule import learning_rate
from engine.setup import RunSetup, build_run

log = logging.getLogger(__name__)

USER_ERRORS = (ConfigError, ValueError, ckpt.CheckpointError, FileNotFoundError)
"""Exceptions that describe a problem with the user's input, shown without a traceback."""


class StepHook(Protocol):
    """Work the loop runs around each optimizer step, on the engine thread."""

    def before_step(self, step: int) -> None: ...
    def after_step(self, step: int) -> None: ...
    def finish(self, step: int) -> None: ...


class StopRun(Exception):
    """Raised inside the loop to end the run at a step boundary."""

    def __init__(self, reason: FinishReason, save: bool) -> None:
        super().__init__(reason)
        self.reason: FinishReason = reason
        self.save = save


class Trainer:
    """Trains a GPT from a Config, publishing events and obeying commands.

    Args:
        config: the resolved run configuration.
        events: where events go; the UI or headless reporter drains it.
        commands: read between steps; None creates a queue that only this Trainer reads.
        run_dir: the run directory; metrics.jsonl, config.toml and ckpt.pt go here.
        resume: a checkpoint to continue from.
        bench: measure speed only: no evaluation, samples or checkpoints.
    """

    def __init__(
        self,
        config: Config,
        events: EventChannel,
        commands: queue.SimpleQueue[Command] | None = None,
        *,
        run_dir: Path,
        resume: str | Path | None = None,
        bench: bool = False,
    ) -> None:
        self.config = config
        self.events = events
        self.commands: queue.SimpleQueue[Command] = commands if commands is not None else queue.SimpleQueue()
        self.run_dir = Path(run_dir)
        self.resume_path = Path(resume) if resume is not None else None
        self.bench = bench
        self.step = 0
        """Optimizer steps completed; the next step runs with this index."""
        self.best_val_loss = math.inf
        self.state: RunState = "starting"
        self.run: RunSetup | None = None
        self._metrics_log: MetricsLog | None = None
        self._last_loss_finite = True
        self._last_saved_step: int | None = None
        self._last_eval_step: int | None = None
        self._created_run_dir = False
        self.profiler: ProfilerController | None = None
        self.inspector: ParameterWatcher | None = None

    # --- events -------------------------------------------------------------

    def emit(self, event: Event) -> None:
        if self._metrics_log is not None:
            self._metrics_log.write(event)
        self.events.put(event)

    def log(self, level: str, message: str) -> None:
        getattr(log, level.lower())(message)
        self.emit(LogRecord(level=level, message=message))  # type: ignore[arg-type]

    def set_state(self, state: RunState) -> None:
        if state != self.state:
            self.state = state
            self.emit(StateChanged(state=state, step=self.step))

    # --- lifecycle ----------------------------------------------------------

    def run_to_end(self) -> FinishReason:
        """Set up, train and close, turning exceptions from the run into a failed RunFinished, the last event."""
        reason: FinishReason = "completed"
        error: str | None = None
        try:
            self.setup()
            reason = self.train()
        except USER_ERRORS as exc:
            # RunFinished carries the message; a LogRecord as well would print it twice.
            reason, error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - the UI must learn of any failure
            reason, error = "failed", f"{type(exc).__name__}: {exc}"
            self.log("ERROR", "training failed:\n" + traceback.format_exc())
        finally:
            self.close()
        self.set_state("finished" if reason != "failed" else "failed")
        self.emit(RunFinished(reason=reason, step=self.step, error=error))
        if self._metrics_log is not None:
            self._metrics_log.close()
            self._metrics_log = None
        if reason == "failed" and self._created_run_dir and self.run is None:
            # Bad input stopped the run before it built anything worth keeping.
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return reason

    def setup(self) -> None:
        """Build data, model and optimizer, load a checkpoint, and announce the run."""
        self._created_run_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics_log = MetricsLog(self.run_dir / "metrics.jsonl")
        # Set-up messages wait until RunStarted, which consumers expect as the first event.
        messages: list[tuple[str, str]] = []
        self.run = build_run(self.config, self.run_dir, self.resume_path, log=lambda *m: messages.append(m))
        self.step = self.run.start_step
        self.best_val_loss = self.run.best_val_loss
        (self.run_dir / "config.toml").write_text(self.run.config.to_toml(), encoding="utf-8")
        self.emit(self.run.started_event())
        for level, message in messages:
            self.log(level, message)
        self.profiler = ProfilerController(
            self.config.profile, self.run_dir, self.run.device, emit=self.emit, log=self.log, set_state=self.set_state
        )
        self.inspector = ParameterWatcher(self.run.raw_model, self.run.optimizer, emit=self.emit, log=self.log)

    def close(self) -> None:
        """Save a profile cut short by the end of the run, stop loader threads."""
        for hook in self._hooks():
            hook.finish(self.step)
        if self.run is not None:
            self.run.close()

    def _hooks(self) -> list[StepHook]:
        return [hook for hook in (self.profiler, self.inspector) if hook is not None]

    # --- the loop -----------------------------------------------------------

    def train(self) -> FinishReason:
        """Run steps until max_iters or a stop; return why the loop ended."""
        run = self._require_run()
        cfg = self.config
        reader = LaggedReader(run.device)
        clock = StepClock()
        self.set_state("compiling" if cfg.train.compile else "running")
        try:
            while self.step < cfg.train.max_iters:
                self._handle_commands(reader, clock)
                if not self.bench and cfg.eval.interval and self.step % cfg.eval.interval == 0:
                    self._publish(reader.pop(), clock)
                    self.evaluate()
                    clock.reset()
                started = time.perf_counter()
                hooks = self._hooks()
                for hook in hooks:
                    hook.before_step(self.step)
                loss, grad_norm, lr, data_time = self.train_step()
                for hook in hooks:
                    hook.after_step(self.step)
                self._publish(reader.pop(), clock)
                reader.push(self.step, loss, grad_norm, lr, data_time)
                if run.device.type != "cuda":
                    self._publish(reader.pop(), clock, started)
                self.step += 1
                if self.state == "compiling":
                    self.set_state("running")
            self._publish(reader.pop(), clock)
            if not self.bench and self._last_eval_step != self.step:
                self.evaluate()
            self._save_if(cfg.checkpoint.on_stop and not self.bench, "final")
            return "completed"
        except StopRun as stop:
            self._publish(reader.pop(), clock)
            self._save_if(stop.save and not self.bench, "stop")
            return stop.reason

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor, float, float]:
        """Run one optimizer step; return the loss and pre-clip grad norm as device tensors."""
        run = self._require_run()
        cfg = self.config
        lr = learning_rate(self.step, cfg.optim.learning_rate, cfg.schedule)
        for group in run.optimizer.param_groups:
            group["lr"] = lr

        accum = cfg.train.gradient_accumulation_steps
        loss_sum = torch.zeros((), device=run.device)
        data_time = 0.0
        for _ in range(accum):
            with torch.profiler.record_function("data"):
                x, y = run.train_loader.next()
                data_time += run.train_loader.last_wait_s
            with torch.profiler.record_function("forward"), run.autocast():
                _, loss = run.model(x, y)
                loss = loss / accum
            with torch.profiler.record_function("backward"):
                run.scaler.scale(loss).backward()
            loss_sum += loss.detach()

        with torch.profiler.record_function("optimizer"):
            if run.scaler.is_enabled():
                run.scaler.unscale_(run.optimizer)
            # max_norm=inf only measures: the clip coefficient is clamped to 1.
            max_norm = cfg.train.grad_clip if cfg.train.grad_clip > 0 else math.inf
            grad_norm = torch.nn.utils.clip_grad_norm_(run.trainable_parameters(), max_norm)
            run.scaler.step(run.optimizer)
            run.scaler.update()
            run.optimizer.zero_grad(set_to_none=True)
        return loss_sum, grad_norm, lr, data_time

    def _publish(self, popped: tuple[Any, float, float] | None, clock: StepClock, started: float | None = None) -> None:
        if popped is None:
            return
        run = self._require_run()
        pending, loss, grad_norm = popped
        with torch.profiler.record_function("metrics"):
            step_time = clock.lap(started if started is not None else time.perf_counter())
            tokens_per_s = run.tokens_per_step / step_time if step_time > 0 else 0.0
            sample = run.sampler.sample()
            mfu = None
            if run.peak_flops:
                mfu = run.flops_per_token * tokens_per_s / run.peak_flops
            self.emit(StepMetrics(
                step=pending.step, loss=loss, lr=pending.lr, grad_norm=grad_norm,
                step_time_s=step_time, data_time_s=pending.data_time_s, tokens_per_s=tokens_per_s, mfu=mfu,
                gpu_allocated_bytes=sample.gpu_allocated_bytes, gpu_reserved_bytes=sample.gpu_reserved_bytes,
                gpu_peak_bytes=sample.gpu_peak_bytes, rss_bytes=sample.rss_bytes, cpu_percent=sample.cpu_percent,
            ))
        self._check_finite(pending.step, loss)

    def _check_finite(self, step: int, loss: float) -> None:
        self._last_loss_finite = math.isfinite(loss)
        if self._last_loss_finite:
            return
        stopping = self.config.train.stop_on_nonfinite
        self.emit(NonFiniteLoss(step=step, loss=loss, stopping=stopping))
        self.log("ERROR", f"loss is {loss} at step {step}; checkpoints are no longer written"
                 + ("; stopping (set train.stop_on_nonfinite=false to continue)" if stopping else ""))
        if stopping:
            raise StopRun("failed", save=False)

    # --- eval and checkpoints ----------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> EvalResult:
        """Average eval.iters batches of each split, generate a sample and maybe save."""
        run = self._require_run()
        self.set_state("evaluating")
        run.model.eval()
        losses = {}
        for split, loader in (("train", run.eval_train_loader), ("val", run.eval_val_loader)):
            # Eval batches depend only on the step, so a resumed run evaluates on the same data.
            loader.load_state_dict({"index": self.step * self.config.eval.iters})
            total = torch.zeros((), device=run.device)
            for _ in range(self.config.eval.iters):
                x, y = loader.next()
                with run.autocast():
                    _, loss = run.model(x, y)
                total += loss.float()
            losses[split] = float(total / self.config.eval.iters)
        sample = run.generate_sample(self.step)
        run.model.train()
        self._last_eval_step = self.step
        result = EvalResult(step=self.step, train_loss=losses["train"], val_loss=losses["val"], sample=sample)
        self.emit(result)
        if sample:
            with (self.run_dir / "samples.txt").open("a", encoding="utf-8") as handle:
                handle.write(f"--- step {self.step}, val loss {result.val_loss:.4f}\n{sample}\n")
        self._save_after_eval(result.val_loss)
        self.set_state("running")
        return result

    def _save_after_eval(self, val_loss: float) -> None:
        improved = val_loss < self.best_val_loss
        if improved:
            self.best_val_loss = val_loss
        policy = self.config.checkpoint.save
        if self.step > 0 and (policy == "always" or (policy == "best" and improved)):
            self.save_checkpoint("best" if improved else "eval")

    def _save_if(self, condition: bool, reason: str) -> None:
        if condition and self.step > 0 and self._last_saved_step != self.step:
            self.save_checkpoint(reason)

    def save_checkpoint(self, reason: str) -> Path | None:
        """Write ckpt.pt atomically; refuse once the loss has gone non-finite."""
        run = self._require_run()
        if not self._last_loss_finite:
            self.log("WARNING", "checkpoint not written: the last loss was not finite, so the previous checkpoint is kept")
            return None
        previous = self.state
        self.set_state("saving")
        path = self.run_dir / "ckpt.pt"
        try:
            ckpt.save_atomic(run.checkpoint_state(self.step, self.best_val_loss), path)
        except ckpt.CheckpointError as exc:
            self.log("ERROR", str(exc))
            return None
        finally:
            self.set_state(previous)
        self._last_saved_step = self.step
        self.emit(CheckpointSaved(step=self.step, path=str(path), reason=reason))  # type: ignore[arg-type]
        return path

    # --- commands -----------------------------------------------------------

    def _handle_commands(self, reader: LaggedReader, clock: StepClock) -> None:
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            self._publish(reader.pop(), clock)
            self._apply(command)
            if isinstance(command, Pause):
                self._wait_while_paused(clock)

    def _apply(self, command: Command) -> None:
        if isinstance(command, Stop):
            raise StopRun("stopped", save=command.save)
        if isinstance(command, SaveCheckpoint):
            self.save_checkpoint("manual")
        elif isinstance(command, CaptureProfile) and self.profiler is not None:
            self.profiler.request(command, self.step)
        elif isinstance(command, RequestParameters) and self.inspector is not None:
            self.inspector.request(command.watch_every, self.step)
        elif isinstance(command, SetRequiresGrad) and self.inspector is not None:
            self.inspector.set_requires_grad(command.name, command.requires_grad, self.step)

    def _wait_while_paused(self, clock: StepClock) -> None:
        self.set_state("paused")
        while True:
            command = self.commands.get()
            if isinstance(command, Resume):
                break
            if not isinstance(command, Pause):
                self._apply(command)
        clock.reset()
        self.set_state("running")

    def _require_run(self) -> RunSetup:
        if self.run is None:
            raise RuntimeError("Trainer.setup() must run before training")
        return self.run
