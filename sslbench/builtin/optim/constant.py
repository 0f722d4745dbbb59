"""A constant learning rate, after an optional linear warm-up.

Warm-up goes linearly from ``warmup_lr`` to the base lr over ``warmup_epochs`` (per step, as for
``cosine``); the lr then stays at the base lr. ``final_lr`` does not apply. No ``options``.
"""

from __future__ import annotations

from sslbench import ScheduleConfig, hookimpl

from ._options import read_options


def warmup_lr_at(step: int, warmup: int, start: float, base: float) -> float:
    """Linear from ``start`` at step 0 to ``base`` at step ``warmup`` (then ``base``)."""
    if step >= warmup:
        return base
    return start + (base - start) * step / warmup


def constant(cfg: ScheduleConfig, base_lr: float, total_steps: int, steps_per_epoch: int):
    """Constant lr, after an optional linear warm-up."""
    read_options(cfg.options, {})
    warmup = min(total_steps, round(cfg.warmup_epochs * steps_per_epoch))

    def lr_at(step: int) -> float:
        return warmup_lr_at(step, warmup, cfg.warmup_lr, base_lr)

    return lr_at


@hookimpl
def sslbench_register_schedulers(register):
    register("constant", constant)
