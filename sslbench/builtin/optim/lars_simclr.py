"""LARS as SimCLR trains with it (Chen et al. 2020, the seed's ``--optimizer=lars_simclr``).

One difference from ``lars`` (which, like this one, gives biases and normalisation parameters
neither weight decay nor the trust ratio; SimCLR's code finds them by name, ``bias`` and
``batch_normalization``, here by name *and* shape since torch names do not always say "norm"):

* the trust ratio's denominator is the norm of the weight-decayed gradient,
  ``eta * ||w|| / ||g + wd * w||``, as in SimCLR's implementation.

SimCLR's CIFAR-10 recipe: lr 1.0 at batch 512, momentum 0.9, weight decay 1e-4 (1e-6 on
ImageNet), eta 0.001, 10 warm-up epochs then cosine decay. ``options``: ``eta`` (0.001).
"""

from __future__ import annotations

import torch

from sslbench import OptimizerConfig, hookimpl

from ._options import positive, read_options
from .lars import LARS, exclusion_groups

DEFAULTS = {"eta": 0.001}


def lars_simclr(named_params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """LARS, SimCLR variant: biases and norm parameters excluded from decay and trust ratio."""
    options = read_options(cfg.options, DEFAULTS)
    positive(options, "eta")
    return LARS(exclusion_groups(named_params, cfg.weight_decay), lr=cfg.lr,
                momentum=cfg.momentum, eta=options["eta"], nesterov=cfg.nesterov,
                simclr_norm=True)


@hookimpl
def sslbench_register_optimizers(register):
    register("lars_simclr", lars_simclr)
