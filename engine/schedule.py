"""Learning-rate schedules as pure functions of the step.

Every kind starts with the same linear warmup. Like nanoGPT, warmup uses
(step + 1) / (warmup_iters + 1), so step 0 already trains with a non-zero LR.
A pure function of the step means a resumed run continues the schedule exactly.
"""

from __future__ import annotations

import math

from engine.config import ScheduleConfig


def learning_rate(step: int, peak_lr: float, cfg: ScheduleConfig) -> float:
    """Return the learning rate for optimizer step `step` (0-based)."""
    if step < cfg.warmup_iters:
        return peak_lr * (step + 1) / (cfg.warmup_iters + 1)
    after_warmup = step - cfg.warmup_iters

    if cfg.kind == "constant":
        return peak_lr
    if cfg.kind == "step":
        return peak_lr * cfg.gamma ** (after_warmup // cfg.step_size)
    if cfg.kind == "exponential":
        return peak_lr * cfg.gamma**after_warmup
    if step >= cfg.lr_decay_iters:
        return cfg.min_lr

    if cfg.kind == "cosine":
        progress = after_warmup / max(1, cfg.lr_decay_iters - cfg.warmup_iters)
        coeff = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
        return cfg.min_lr + coeff * (peak_lr - cfg.min_lr)
    if cfg.kind == "linear":
        progress = after_warmup / max(1, cfg.lr_decay_iters - cfg.warmup_iters)
        return peak_lr + progress * (cfg.min_lr - peak_lr)
    if cfg.kind == "wsd":
        decay_start = cfg.lr_decay_iters - cfg.decay_iters
        if step < decay_start:
            return peak_lr
        progress = (step - decay_start) / cfg.decay_iters
        return peak_lr + progress * (cfg.min_lr - peak_lr)
    raise ValueError(f"unknown schedule.kind {cfg.kind!r}")
