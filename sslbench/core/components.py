"""The contracts between the engine and the components plugins register.

* **Method** — an ``nn.Module`` class, built as ``Method(backbone, cfg)`` where ``cfg`` is an
  instance of ``Method.Config`` (a pydantic model of its hyper-parameters). It declares:

  - ``views``: list of :class:`~sslbench.core.config.ViewSpec` (default: two standard views);
  - ``needs_labels`` (SupCon, supervised): the engine passes labels only then;
  - ``pretrains`` (False for the untrained ``random`` floor);
  - ``recipes``: ``{"*": {...}, "<dataset>": {...}}`` partial run configs (the paper recipe).

  ``loss, logs = method(views, labels)`` with ``views`` a list of float tensors
  ``[B, 3, H, W]`` (in ``views`` order, ``count`` each) and ``logs`` a dict of scalar tensors.
  Optional hooks: ``on_epoch_start(epoch, epochs)`` (e.g. SwAV freezes prototypes) and
  ``after_step(step, total_steps)`` (e.g. BYOL's EMA target update), both under ``no_grad``.
  Parameters that must not receive optimizer updates (momentum targets) set
  ``requires_grad=False``.
* **Backbone** — ``factory(image_size, **options) -> nn.Module`` mapping ``[B, 3, H, W]`` images to
  ``[B, feature_dim]`` features, with an int attribute ``feature_dim``.
* **Dataset** — ``factory(data_dir: Path, download: bool) -> DatasetSplits``; register with
  ``recipe={...}`` metadata for dataset-wide defaults (image size, CPU-friendly subset).
* **Optimizer** — ``factory(named_params, cfg: OptimizerConfig) -> torch.optim.Optimizer``.
* **Scheduler** — ``factory(cfg: ScheduleConfig, base_lr, total_steps, steps_per_epoch)``
  returning ``lr_at(step) -> float``, a pure function of the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sslbench.core.config import ViewSpec

DEFAULT_VIEWS = (ViewSpec(count=2),)


@dataclass
class Split:
    """Images as a uint8 tensor ``[N, C, H, W]`` (C is 1 or 3) and int64 labels ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], self.labels[index])


@dataclass
class DatasetSplits:
    """What a dataset factory returns. ``unlabeled`` (STL-10) is used for pretraining if set."""

    train: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    unlabeled: Split | None = None

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    @property
    def pretrain_split(self) -> Split:
        return self.unlabeled if self.unlabeled is not None else self.train


def method_trait(method_cls: Any, name: str) -> Any:
    """A method's declared trait, or the contract's default."""
    defaults = {"views": list(DEFAULT_VIEWS), "needs_labels": False, "pretrains": True,
                "recipes": {}}
    return getattr(method_cls, name, defaults[name])
