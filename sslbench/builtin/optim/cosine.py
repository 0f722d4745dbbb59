"""Cosine decay with linear warm-up, evaluated per step (the seed's ``cosine_decay_warmup``).

Warm-up goes linearly from ``warmup_lr`` to the base lr over ``warmup_epochs``; then the lr
follows ``final + (base - final) * (1 + cos(pi * t / T)) / 2`` down to ``final_lr`` at the end.
"""

from __future__ import annotations

import math

from sslbench import ScheduleConfig, hookimpl


def warmup_steps(cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int) -> int:
    return min(total_steps, round(cfg.warmup_epochs * steps_per_epoch))


def cosine(cfg: ScheduleConfig, base_lr: float, total_steps: int, steps_per_epoch: int):
    """Linear warm-up, then cosine decay to ``final_lr``."""
    if cfg.options:
        raise ValueError(f"schedule 'cosine' takes no options, got {sorted(cfg.options)}")
    warmup = warmup_steps(cfg, total_steps, steps_per_epoch)
    decay = max(1, total_steps - warmup)

    def lr_at(step: int) -> float:
        if step < warmup:
            return cfg.warmup_lr + (base_lr - cfg.warmup_lr) * step / warmup
        t = min(step - warmup, decay)
        return cfg.final_lr + (base_lr - cfg.final_lr) * (1 + math.cos(math.pi * t / decay)) / 2

    return lr_at


@hookimpl
def sslbench_register_schedulers(register):
    register("cosine", cosine)
