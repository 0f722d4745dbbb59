"""The contracts between the engine and the components plugins register (docs/plugins.md).

* **Method** — an ``nn.Module`` class, built as ``Method(backbone, cfg)`` where ``cfg`` is a
  validated instance of ``Method.Config`` (a pydantic model of its hyper-parameters), or as
  ``Method(backbone)`` when it declares no ``Config``; a method that declares
  ``needs_num_classes = True`` also receives ``num_classes=`` (the supervised ceiling). Its class
  attributes, read once when a cell is resolved (:class:`MethodTraits`):

  - ``views``: list of :class:`~sslbench.core.config.ViewSpec` (default: two standard views);
  - ``needs_labels`` (SupCon, supervised): the engine passes labels only then;
  - ``pretrains`` (False for the untrained ``random`` floor);
  - ``recipes``: ``{"*": {...}, "<dataset>": {...}, "<dataset>/<backbone>": {...}}`` partial
    run configs (the paper recipe; the last, for that backbone, replaces the dataset's);
  - ``backbone_requires``: names of attributes the backbone must have (MAE's
    ``("encode_visible",)``: a ViT); a cell whose backbone lacks one is a usage error.

  ``loss, logs = method(views, labels)`` with ``views`` a list of float tensors
  ``[B, 3, H, W]`` (in ``views`` order, ``count`` each) and ``logs`` a dict of scalar tensors.
  Optional hooks: ``on_epoch_start(epoch, epochs)`` (e.g. SwAV freezes prototypes) and
  ``after_step(step, total_steps)`` (e.g. BYOL's EMA target update), both under ``no_grad``.
  Parameters that must not receive optimizer updates (momentum targets) set
  ``requires_grad=False``.
* **Backbone** — ``factory(image_size, **options) -> nn.Module`` mapping ``[B, 3, H, W]`` images to
  ``[B, feature_dim]`` features, with an int attribute ``feature_dim``.
* **Dataset** — ``factory(data_dir: Path, download: bool) -> DatasetSplits``; registered with
  ``options=Model`` it is called ``factory(data_dir, download, options)`` with a validated
  instance of that pydantic model (``--set data.options.root=...``); ``recipe={...}`` metadata
  holds dataset-wide defaults (image size, CPU-friendly subset, the linear-probe recipe).
* **Optimizer** — ``factory(named_params, cfg: OptimizerConfig) -> torch.optim.Optimizer``.
* **Scheduler** — ``factory(cfg: ScheduleConfig, base_lr, total_steps, steps_per_epoch)``
  returning ``lr_at(step) -> float``, a pure function of the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from pydantic import BaseModel

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


class ImageSource(Protocol):
    """Encoded images read one at a time (in DataLoader workers: it must pickle, and open its
    files lazily). ``read(i)`` returns the bytes of a JPEG/PNG/...; ``name(i)`` says where they
    are, for error messages."""

    def __len__(self) -> int: ...

    def read(self, i: int) -> bytes: ...

    def name(self, i: int) -> str: ...


@dataclass
class SourceSubset:
    """The images ``indices`` of ``source``, renumbered from 0."""

    source: Any
    indices: list[int]

    def __len__(self) -> int:
        return len(self.indices)

    def read(self, i: int) -> bytes:
        return self.source.read(self.indices[i])

    def name(self, i: int) -> str:
        return self.source.name(self.indices[i])


@dataclass
class StreamSplit:
    """A split too large for memory: encoded images on disk, decoded by the engine while it
    trains (in DataLoader workers, the random resized crop taken at decode time), int64 labels
    ``[N]`` known up front. ``image_size`` is the side of the crops the engine makes."""

    source: Any  # an ImageSource
    labels: torch.Tensor
    image_size: int = 224

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.source):
            raise ValueError(f"{len(self.source)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: torch.Tensor) -> StreamSplit:
        return StreamSplit(SourceSubset(self.source, index.tolist()), self.labels[index],
                           self.image_size)


@dataclass
class DatasetSplits:
    """What a dataset factory returns. ``unlabeled`` (STL-10) is used for pretraining if set."""

    train: Split | StreamSplit
    test: Split | StreamSplit
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    unlabeled: Split | StreamSplit | None = None

    @property
    def image_size(self) -> int:
        if isinstance(self.train, StreamSplit):
            return self.train.image_size
        return int(self.train.images.shape[-1])

    @property
    def pretrain_split(self) -> Split:
        return self.unlabeled if self.unlabeled is not None else self.train


@dataclass(frozen=True)
class MethodTraits:
    """A method class's declared contract, read and checked once (at registration and when a
    cell is resolved): nothing else asks the class what it declares."""

    config: type[BaseModel] | None = None
    views: tuple[ViewSpec, ...] = DEFAULT_VIEWS
    needs_labels: bool = False
    needs_num_classes: bool = False
    pretrains: bool = True
    recipes: dict[str, dict] = field(default_factory=dict)
    backbone_requires: tuple[str, ...] = ()

    @classmethod
    def of(cls, method_cls: Any) -> MethodTraits:
        """The traits of ``method_cls``; a ``ValueError`` naming the first one that is wrong."""
        from torch import nn  # only a real registration or run gets here: torch is needed then

        if not (isinstance(method_cls, type) and issubclass(method_cls, nn.Module)):
            raise ValueError(f"a method must be an nn.Module subclass, got {_kind(method_cls)}")
        config = getattr(method_cls, "Config", None)
        if config is not None and not (isinstance(config, type)
                                       and issubclass(config, BaseModel)):
            raise ValueError(f"Config must be a pydantic model class (e.g. a StrictModel "
                             f"subclass), got {_kind(config)}")
        views = getattr(method_cls, "views", DEFAULT_VIEWS)
        if (not isinstance(views, list | tuple) or not views
                or not all(isinstance(v, ViewSpec) for v in views)):
            raise ValueError("views must be a non-empty list of ViewSpec")
        flags = {name: getattr(method_cls, name, default) for name, default in
                 (("needs_labels", False), ("needs_num_classes", False), ("pretrains", True))}
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {_kind(value)}")
        recipes = getattr(method_cls, "recipes", {})
        if not (isinstance(recipes, dict)
                and all(isinstance(k, str) and isinstance(v, dict) for k, v in recipes.items())):
            raise ValueError('recipes must be a dict {"*", "<dataset>" or "<dataset>/<backbone>": '
                             'partial config dict}')
        requires = getattr(method_cls, "backbone_requires", ())
        if (not isinstance(requires, list | tuple)
                or not all(isinstance(r, str) and r for r in requires)):
            raise ValueError("backbone_requires must be a tuple of attribute names")
        return cls(config, tuple(views), recipes=recipes, backbone_requires=tuple(requires),
                   **flags)

    def build(self, method_cls: Any, backbone: Any, options: BaseModel | None,
              num_classes: int) -> Any:
        """``Method(backbone, cfg)`` (or ``Method(backbone)``), plus ``num_classes=`` if asked."""
        args = (backbone,) if self.config is None else (backbone, options)
        extra = {"num_classes": num_classes} if self.needs_num_classes else {}
        return method_cls(*args, **extra)


def _kind(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
