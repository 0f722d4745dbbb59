"""SGD with momentum (and the seed's ``sgd_nesterov`` spelling for Nesterov momentum)."""

from __future__ import annotations

import torch

from sslbench import OptimizerConfig, hookimpl


def _no_options(cfg: OptimizerConfig) -> None:
    if cfg.options:
        raise ValueError(f"optimizer {cfg.name!r} takes no options, got {sorted(cfg.options)}")


def sgd(named_params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """SGD with momentum, optional Nesterov, coupled L2 weight decay."""
    _no_options(cfg)
    params = [p for _, p in named_params]
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, foreach=True)


def sgd_nesterov(named_params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (the seed's ``--optimizer=sgd_nesterov``)."""
    return sgd(named_params, cfg.model_copy(update={"nesterov": True}))


@hookimpl
def sslbench_register_optimizers(register):
    register("sgd", sgd)
    register("sgd_nesterov", sgd_nesterov)
