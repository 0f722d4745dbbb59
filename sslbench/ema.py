"""Momentum (exponential moving average) targets: a helper function, not a base class.

BYOL's target network and MoCo's key encoder are copies of the online network whose weights
follow it slowly, ``xi <- tau * xi + (1 - tau) * theta`` after every optimizer step.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy whose parameters receive no gradient and no optimizer update."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target <- tau * target + (1 - tau) * online`` for every parameter.

    Buffers (BatchNorm running statistics) are copied from ``online``: the target normalises
    with batch statistics during training, so its running averages only matter for inspection.
    ``tau = 1`` leaves the parameters unchanged; ``tau = 0`` copies them.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"EMA momentum tau must be in [0, 1], got {tau}")
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o.detach().to(t.dtype), 1.0 - tau)  # t + (1 - tau) (o - t)
    for t, o in zip(target.buffers(), online.buffers(), strict=True):
        t.copy_(o)


def cosine_momentum(step: int, total_steps: int, base: float = 0.996,
                    final: float = 1.0) -> float:
    """BYOL's schedule ``tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2``.

    Grill et al. 2020, section 3.2 (generalised to end at ``final`` instead of 1): ``base`` at
    step 0, rising to ``final`` at step ``K = total_steps``.
    """
    progress = min(max(step / total_steps, 0.0), 1.0) if total_steps > 0 else 1.0
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2
