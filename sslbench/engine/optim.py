"""Optimizers and lr schedules from resolved factories (shared by pretraining and probes).

The engine never looks a name up: it receives an :class:`Optimization` (the registered factories
and their validated configs) built when the cell was resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from sslbench.core.config import OptimizerConfig, ScheduleConfig
from sslbench.errors import UsageError


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Parameters the optimizer updates; momentum targets have ``requires_grad=False``."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def base_lr(cfg: OptimizerConfig, batch_size: int) -> float:
    """The configured lr, scaled by ``batch_size / 256`` when ``scale_lr_with_batch`` is set."""
    return cfg.lr * batch_size / 256 if cfg.scale_lr_with_batch else cfg.lr


@dataclass(frozen=True)
class Optimization:
    """One training section's optimizer and schedule: registered factories plus configs."""

    optimizer_factory: Callable
    optimizer: OptimizerConfig
    schedule_factory: Callable
    schedule: ScheduleConfig
    batch_size: int

    @property
    def lr(self) -> float:
        return base_lr(self.optimizer, self.batch_size)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        lr = self.lr
        try:
            optimizer = self.optimizer_factory(trainable(model),
                                               self.optimizer.model_copy(update={"lr": lr}))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"optimizer {self.optimizer.name!r}: {exc}") from None
        for group in optimizer.param_groups:  # schedules set group lr = lr_at(step) * lr_scale
            group.setdefault("lr_scale", group["lr"] / lr if lr else 1.0)
        return optimizer

    def build_schedule(self, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
        try:
            return self.schedule_factory(self.schedule, self.lr, total_steps, steps_per_epoch)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"schedule {self.schedule.name!r}: {exc}") from None

    def check(self) -> None:
        """Build both once on a throwaway parameter, so that a bad option is a usage error at
        resolution (and in ``--dry-run``), not after the data has loaded."""
        self.build_optimizer(nn.Linear(1, 1))
        self.build_schedule(1, 1)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
