"""AdamW (Loshchilov & Hutter 2019): Adam with weight decay decoupled from the gradient.

The parameters shrink by ``lr * weight_decay`` each step, outside the adaptive moments, so the
decay is the same for every weight whatever its gradient scale. Same settings as ``adam``: the
config's ``momentum`` is beta1 (0.9), ``options`` ``beta2`` (0.999) and ``eps`` (1e-8).
"""

from __future__ import annotations

import torch

from sslbench import OptimizerConfig, hookimpl

from .adam import adam_arguments


def adamw(named_params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """AdamW, decoupled weight decay; beta1 is the config's momentum (options: beta2, eps)."""
    return torch.optim.AdamW([p for _, p in named_params], **adam_arguments(cfg), foreach=True)


@hookimpl
def sslbench_register_optimizers(register):
    register("adamw", adamw)
