"""Building optimizers and lr schedules from the catalog (shared by pretraining and probes)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from sslbench.core.catalog import Catalog
from sslbench.core.config import OptimizerConfig, ScheduleConfig
from sslbench.errors import UsageError


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Parameters the optimizer updates; momentum targets have ``requires_grad=False``."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def base_lr(cfg: OptimizerConfig, batch_size: int) -> float:
    """The configured lr, scaled by ``batch_size / 256`` when ``scale_lr_with_batch`` is set."""
    return cfg.lr * batch_size / 256 if cfg.scale_lr_with_batch else cfg.lr


def build_optimizer(catalog: Catalog, model: nn.Module, cfg: OptimizerConfig,
                    batch_size: int) -> torch.optim.Optimizer:
    factory = catalog.get("optimizers", cfg.name)
    lr = base_lr(cfg, batch_size)
    try:
        optimizer = factory(trainable(model), cfg.model_copy(update={"lr": lr}))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"optimizer {cfg.name!r}: {exc}") from None
    for group in optimizer.param_groups:  # schedules set group lr = lr_at(step) * lr_scale
        group.setdefault("lr_scale", group["lr"] / lr if lr else 1.0)
    return optimizer


def build_schedule(catalog: Catalog, cfg: ScheduleConfig, lr: float, total_steps: int,
                   steps_per_epoch: int) -> Callable[[int], float]:
    factory = catalog.get("schedulers", cfg.name)
    try:
        return factory(cfg, lr, total_steps, steps_per_epoch)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"schedule {cfg.name!r}: {exc}") from None


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
