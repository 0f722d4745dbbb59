"""LARS as SimCLR trains with it (Chen et al. 2020, the seed's ``--optimizer=lars_simclr``).

Two differences from plain ``lars`` (You et al. 2017):

* biases and normalisation parameters (every parameter whose name ends in ``bias``, and every
  1-d parameter: batch-norm scales and shifts) get neither weight decay nor the trust ratio:
  they take plain momentum SGD steps. SimCLR's code excludes them by name (``bias``,
  ``batch_normalization``); torch names do not always say "norm" (EfficientNet's are numbers),
  so here they are found by name *and* shape;
* the trust ratio's denominator is the norm of the weight-decayed gradient,
  ``eta * ||w|| / ||g + wd * w||``, as in SimCLR's implementation.

SimCLR's CIFAR-10 recipe: lr 1.0 at batch 512, momentum 0.9, weight decay 1e-4 (1e-6 on
ImageNet), eta 0.001, 10 warm-up epochs then cosine decay. ``options``: ``eta`` (0.001).
"""

from __future__ import annotations

import torch

from sslbench import OptimizerConfig, hookimpl

from ._options import positive, read_options
from .lars import LARS

DEFAULTS = {"eta": 0.001}


def excluded(name: str, param: torch.Tensor) -> bool:
    """Biases and normalisation parameters: no weight decay, no trust ratio."""
    return name.endswith("bias") or param.ndim <= 1


def simclr_groups(named_params, weight_decay: float) -> list[dict]:
    """Two parameter groups: adapted and decayed weights, then the excluded parameters."""
    named = list(named_params)
    adapted = [p for n, p in named if not excluded(n, p)]
    plain = [p for n, p in named if excluded(n, p)]
    return [group for group in (
        {"params": adapted, "weight_decay": weight_decay, "adapt": True},
        {"params": plain, "weight_decay": 0.0, "adapt": False},
    ) if group["params"]]


def lars_simclr(named_params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """LARS, SimCLR variant: biases and norm parameters excluded from decay and trust ratio."""
    options = read_options(cfg.options, DEFAULTS)
    positive(options, "eta")
    return LARS(simclr_groups(named_params, cfg.weight_decay), lr=cfg.lr,
                momentum=cfg.momentum, eta=options["eta"], nesterov=cfg.nesterov,
                simclr_norm=True)


@hookimpl
def sslbench_register_optimizers(register):
    register("lars_simclr", lars_simclr)
