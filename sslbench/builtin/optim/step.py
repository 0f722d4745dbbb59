"""Step decay: the lr is multiplied by ``gamma`` at each milestone epoch (after a warm-up).

The classic schedule of supervised ImageNet training (He et al. 2016: x0.1 at epochs 30, 60,
90) and of several linear-evaluation recipes. ``options``: ``milestones``, epochs at which the
lr drops (a list, or one epoch; default: 60% and 80% of the run, e.g. 60 and 80 of 100) and
``gamma`` (0.1). After step k the lr is ``base * gamma ** (milestones passed by epoch
k // steps_per_epoch)``; an optional linear warm-up from ``warmup_lr`` comes first.
"""

from __future__ import annotations

import bisect

from sslbench import ScheduleConfig, hookimpl

from ._options import read_options
from .constant import warmup_lr_at

DEFAULT_FRACTIONS = (0.6, 0.8)


def milestone_epochs(value, epochs: int) -> list[int]:
    """Sorted milestone epochs from the option (an int, a list of ints, or None: the default)."""
    if value is None:
        return sorted({max(1, round(f * epochs)) for f in DEFAULT_FRACTIONS})
    milestones = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(milestones, list) or not all(
            isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in milestones):
        raise ValueError(f"option 'milestones' must be positive epochs (e.g. [30, 60]), "
                         f"got {value!r}")
    return sorted(milestones)


def step(cfg: ScheduleConfig, base_lr: float, total_steps: int, steps_per_epoch: int):
    """lr x gamma at each milestone epoch (options: milestones, gamma), after a warm-up."""
    options = read_options(cfg.options, {"gamma": 0.1, "milestones": None})
    gamma = options["gamma"]
    if not 0 < gamma <= 1:
        raise ValueError(f"option 'gamma' must be in (0, 1], got {gamma!r}")
    per_epoch = max(1, steps_per_epoch)
    milestones = milestone_epochs(options["milestones"], max(1, -(-total_steps // per_epoch)))
    warmup = min(total_steps, round(cfg.warmup_epochs * steps_per_epoch))

    def lr_at(k: int) -> float:
        decayed = base_lr * gamma ** bisect.bisect_right(milestones, k // per_epoch)
        return warmup_lr_at(k, warmup, cfg.warmup_lr, decayed)

    return lr_at


@hookimpl
def sslbench_register_schedulers(register):
    register("step", step)
