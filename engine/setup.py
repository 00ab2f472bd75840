"""Everything a run needs before its first step: device, data, model, optimizer, MFU terms.

Kept apart from the loop so the Trainer reads as a loop, and so building a run
(where most user errors surface) can be tested on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine import checkpoint as ckpt
from engine.config import Config
from engine.batches import BatchSampler, PrefetchingLoader
from engine.data import DataError, Dataset, load_dataset
from engine.events import RunStarted
from engine.flops import FLOPS_FORMULA, flops_per_token, lookup_peak_flops, measure_cpu_peak_flops
from engine.model import GPT, GPTConfig, padded_vocab_size
from engine.system import DeviceInfo, SystemSampler, select_device

LogFn = Callable[[str, str], None]
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
_EVAL_SEED_OFFSET = 1_000_003
"""Keeps eval batches apart from training batches, so evaluating never shifts training data."""


@dataclass
class RunSetup:
    config: Config
    run_dir: Path
    device_info: DeviceInfo
    dataset: Dataset
    raw_model: GPT
    model: torch.nn.Module
    """raw_model, or its torch.compile wrapper."""
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    train_loader: PrefetchingLoader
    eval_train_loader: PrefetchingLoader
    eval_val_loader: PrefetchingLoader
    sampler: SystemSampler
    flops_per_token: float
    peak_flops: float | None
    peak_flops_source: str
    start_step: int
    best_val_loss: float

    @property
    def device(self) -> torch.device:
        return self.device_info.device

    @property
    def tokens_per_step(self) -> int:
        train = self.config.train
        return train.batch_size * self.config.model.block_size * train.gradient_accumulation_steps

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = self.device_info.autocast_dtype
        if dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def trainable_parameters(self) -> Iterator[torch.nn.Parameter]:
        return (p for p in self.raw_model.parameters() if p.requires_grad)

    def generate_sample(self, step: int) -> str:
        """Decode eval.sample_tokens tokens from eval.prompt, seeded by the step for repeatability."""
        cfg = self.config.eval
        if cfg.sample_tokens == 0:
            return ""
        tokenizer = self.dataset.tokenizer
        prompt_ids = tokenizer.encode(cfg.prompt) or [0]
        idx = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(self.config.train.seed + step)
        with self.autocast():
            out = self.raw_model.generate(
                idx, cfg.sample_tokens, temperature=cfg.temperature, top_k=cfg.top_k or None, generator=generator,
                vocab_limit=self.dataset.vocab_size,
            )
        return tokenizer.decode(out[0, len(prompt_ids):].tolist())

    def checkpoint_state(self, step: int, best_val_loss: float) -> dict[str, Any]:
        state: dict[str, Any] = {
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "model_args": dataclasses.asdict(self.raw_model.config),
            "iter_num": step,
            "best_val_loss": best_val_loss,
            "config": self.config.to_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "train_sampler": self.train_loader.state_dict(),
            "gpttui_format": 1,
        }
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def started_event(self) -> RunStarted:
        raw = self.raw_model
        return RunStarted(
            run_id=self.run_dir.name,
            run_dir=str(self.run_dir),
            config=self.config.to_dict(),
            config_toml=self.config.to_toml(),
            device=str(self.device),
            device_name=self.device_info.name,
            dtype=_DTYPE_NAMES[self.device_info.autocast_dtype],
            n_params=raw.num_params(non_embedding=False),
            n_params_non_embedding=raw.num_params(non_embedding=True),
            flops_per_token=self.flops_per_token,
            flops_formula=FLOPS_FORMULA,
            peak_flops=self.peak_flops,
            peak_flops_source=self.peak_flops_source,
            start_step=self.start_step,
            max_iters=self.config.train.max_iters,
            tokens_per_step=self.tokens_per_step,
        )

    def close(self) -> None:
        for loader in (self.train_loader, self.eval_train_loader, self.eval_val_loader):
            loader.close()


def build_run(config: Config, run_dir: Path, resume: Path | None, log: LogFn) -> RunSetup:
    """Build a run from its config, resuming from `resume` when given.

    Raises:
        ValueError, CheckpointError, ConfigError: bad input, with a one-line message.
    """
    torch.manual_seed(config.train.seed)
    if config.system.threads:
        torch.set_num_threads(config.system.threads)
    device_info = select_device(config.system)
    device = device_info.device
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = config.system.tf32
        torch.backends.cudnn.allow_tf32 = config.system.tf32

    state = ckpt.load_checkpoint(resume) if resume is not None else None
    vocab_size = config.model.vocab_size
    if not vocab_size and state is not None:
        vocab_size = int(state.get("model_args", {}).get("vocab_size", 0))
    dataset = load_dataset(config.data, config.model.block_size, vocab_size)
    if not vocab_size:
        vocab_size = padded_vocab_size(dataset.vocab_size)
    log("INFO", f"data: {dataset.description}")
    try:
        dataset.tokenizer.encode(config.eval.prompt)
    except DataError as exc:
        raise DataError(f"eval.prompt {config.eval.prompt!r} cannot be encoded: {exc}; choose a prompt from the corpus") from None

    model_cfg = config.model
    gpt_config = GPTConfig(
        block_size=model_cfg.block_size, vocab_size=vocab_size, n_layer=model_cfg.n_layer,
        n_head=model_cfg.n_head, n_embd=model_cfg.n_embd, dropout=model_cfg.dropout, bias=model_cfg.bias,
    )
    raw_model = GPT(gpt_config).to(device)
    optimizer = raw_model.configure_optimizers(
        weight_decay=config.optim.weight_decay, learning_rate=config.optim.learning_rate,
        betas=(config.optim.beta1, config.optim.beta2), eps=config.optim.eps,
        device_type=device.type, fused=config.optim.fused,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=device_info.autocast_dtype == torch.float16)

    start_step, best_val_loss, sampler_state = 0, float("inf"), None
    if state is not None:
        start_step, best_val_loss, sampler_state = _restore(state, raw_model, optimizer, scaler, device, resume, log)

    model: torch.nn.Module = raw_model
    if config.train.compile:
        log("INFO", "compiling the model with torch.compile; the first step takes longer")
        model = torch.compile(raw_model)  # type: ignore[assignment]

    ckpt.check_output_dir(run_dir, min_free_bytes=_checkpoint_size_estimate(raw_model))
    seed = config.train.seed
    batch, block = config.train.batch_size, model_cfg.block_size
    train_loader = PrefetchingLoader(BatchSampler(dataset, "train", batch, block, device, seed))
    if sampler_state is not None:
        train_loader.load_state_dict(sampler_state)
    eval_train = PrefetchingLoader(BatchSampler(dataset, "train", batch, block, device, seed + _EVAL_SEED_OFFSET))
    eval_val = PrefetchingLoader(BatchSampler(dataset, "val", batch, block, device, seed + _EVAL_SEED_OFFSET))

    fpt = flops_per_token(
        raw_model.num_params(non_embedding=True), model_cfg.n_layer, model_cfg.n_head,
        model_cfg.n_embd // model_cfg.n_head, model_cfg.block_size,
    )
    peak, source = _peak_flops(config, device_info)
    return RunSetup(
        config=config, run_dir=run_dir, device_info=device_info, dataset=dataset, raw_model=raw_model,
        model=model, optimizer=optimizer, scaler=scaler, train_loader=train_loader,
        eval_train_loader=eval_train, eval_val_loader=eval_val, sampler=SystemSampler(device),
        flops_per_token=fpt, peak_flops=peak, peak_flops_source=source, start_step=start_step,
        best_val_loss=best_val_loss,
    )


def _restore(
    state: dict[str, Any], model: GPT, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
    device: torch.device, path: Path | None, log: LogFn,
) -> tuple[int, float, dict[str, Any] | None]:
    assert path is not None
    ckpt.check_compatible(model.state_dict(), state["model"], path)
    model.load_state_dict(state["model"])
    if "optimizer" in state:
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as exc:
            raise ckpt.CheckpointError(f"checkpoint {path}: optimizer state does not match the model ({exc})") from exc
    if "scaler" in state and scaler.is_enabled():
        scaler.load_state_dict(state["scaler"])
    if "rng_cpu" in state:
        torch.set_rng_state(state["rng_cpu"])
    if "rng_cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["rng_cuda"], device)
    step = int(state.get("iter_num", 0))
    best = float(state.get("best_val_loss", float("inf")))
    log("INFO", f"resumed from {path} at step {step} (best val loss {best:.4f})")
    return step, best, state.get("train_sampler")


def _checkpoint_size_estimate(model: GPT) -> int:
    # Weights plus AdamW's two moments in float32, and a margin for the temporary file.
    return int(model.num_params(non_embedding=False) * 4 * 3 * 1.1) + (1 << 20)


def _peak_flops(config: Config, device_info: DeviceInfo) -> tuple[float | None, str]:
    if config.system.peak_tflops:
        return config.system.peak_tflops * 1e12, "system.peak_tflops"
    dtype_name = _DTYPE_NAMES[device_info.autocast_dtype]
    if device_info.device.type == "cuda":
        return lookup_peak_flops(device_info.name, dtype_name, config.system.tf32)  # type: ignore[arg-type]
    if device_info.device.type == "cpu":
        started = time.perf_counter()
        measured = measure_cpu_peak_flops(device_info.autocast_dtype)
        probe_ms = (time.perf_counter() - started) * 1e3
        threads = torch.get_num_threads()
        return measured, f"measured CPU matmul ceiling ({dtype_name}, {threads} threads, {probe_ms:.0f} ms probe)"
    return None, f"unknown peak for {device_info.name}; set system.peak_tflops"
