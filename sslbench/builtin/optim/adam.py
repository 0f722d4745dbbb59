"""Adam (Kingma & Ba 2015) with coupled L2 weight decay, as ``torch.optim.Adam``.

The config's ``momentum`` is Adam's beta1 (0.9, the paper's default, is also the config's
default); ``options``: ``beta2`` (0.999) and ``eps`` (1e-8), the paper's defaults. Weight decay
is added to the gradient before the moment estimates (L2 regularisation); for decoupled decay
use ``adamw``.
"""

from __future__ import annotations

import torch

from sslbench import OptimizerConfig, hookimpl

from ._options import positive, read_options

DEFAULTS = {"beta2": 0.999, "eps": 1e-8}


def adam_arguments(cfg: OptimizerConfig) -> dict:
    """torch's keyword arguments from the config (shared with ``adamw``)."""
    if cfg.nesterov:
        raise ValueError("Adam has no Nesterov momentum (set nesterov=false)")
    options = read_options(cfg.options, DEFAULTS)
    positive(options, "eps")
    if not 0 <= options["beta2"] < 1:
        raise ValueError(f"option 'beta2' must be in [0, 1), got {options['beta2']!r}")
    return {"lr": cfg.lr, "betas": (cfg.momentum, options["beta2"]), "eps": options["eps"],
            "weight_decay": cfg.weight_decay}


def adam(named_params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """Adam with L2 weight decay; beta1 is the config's momentum (options: beta2, eps)."""
    return torch.optim.Adam([p for _, p in named_params], **adam_arguments(cfg), foreach=True)


@hookimpl
def sslbench_register_optimizers(register):
    register("adam", adam)
