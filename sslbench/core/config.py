"""Pydantic models of a run's configuration, and how layers of settings merge into one.

A run's resolved config is built from, in order: the model defaults below, the dataset's
recipe, the method's recipe (``"*"`` then the dataset's own), a config file (TOML/YAML/JSON),
``--set section.key=value`` overrides, then explicit CLI flags. Every model forbids unknown
fields, so a typo is an error naming the field, never silently ignored.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Prob = Field(ge=0.0, le=1.0)


class StrictModel(BaseModel):
    # no inf/nan: JSON has no spelling for them, so a record or checkpoint could not round-trip
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ViewSpec(StrictModel):
    """One kind of augmented view (a method asks for one or more; SwAV's small crops are one).

    ``size`` is relative to the dataset's image size (SwAV's 96/224 crops are 0.43). Colour jitter
    is (brightness, contrast, saturation, hue) applied with probability ``jitter_p``.
    """

    count: int = Field(1, ge=1, le=16)
    size: float = Field(1.0, gt=0.0, le=4.0)
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = Field(0.5, ge=0.0, le=1.0)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = Field(0.8, ge=0.0, le=1.0)
    grayscale_p: float = Field(0.2, ge=0.0, le=1.0)
    blur_p: float = Field(0.0, ge=0.0, le=1.0)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered_ranges(self) -> ViewSpec:
        for name in ("scale", "ratio", "blur_sigma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high")
        if self.scale[1] > 1:
            raise ValueError("scale is a fraction of the image area: high must be <= 1")
        return self


class OptimizerConfig(StrictModel):
    """Optimizer settings; ``options`` carries optimizer-specific ones (e.g. LARS' ``eta``)."""

    name: str = "sgd"
    lr: float = Field(0.05, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(5e-4, ge=0.0)
    nesterov: bool = False
    scale_lr_with_batch: bool = False  # lr * batch_size / 256 (Goyal et al. 2017)
    options: dict[str, float | int | bool | str] = {}


class ScheduleConfig(StrictModel):
    """Learning-rate schedule, evaluated per step (the seed's warm-up/base/final flags)."""

    name: str = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0)
    warmup_lr: float = Field(0.0, ge=0.0)
    final_lr: float = Field(0.0, ge=0.0)
    options: dict[str, float | int | bool | str | list[int]] = {}


class PretrainConfig(StrictModel):
    epochs: int = Field(100, ge=0)
    batch_size: int = Field(256, ge=2)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig(warmup_epochs=10)
    views: list[ViewSpec] | None = None  # None: the method's own default views
    log_every: int = Field(10, ge=1)


class LinearConfig(StrictModel):
    """Linear probe on the frozen backbone (the original's ``main_linear.py``)."""

    epochs: int = Field(100, ge=0)
    batch_size: int = Field(256, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig(name="sgd", lr=0.1, weight_decay=0.0)
    schedule: ScheduleConfig = ScheduleConfig()
    cached: bool = True  # train on features computed once (fast); False: augment every epoch


class FinetuneConfig(StrictModel):
    """Fine-tuning: the whole backbone and a linear classifier trained on labels, with a random
    resized crop + flip of every image (SimCLR, Chen et al. 2020, §B.5: Nesterov momentum, no
    weight decay). ``epochs`` 0: not run. A dataset's recipe may set its own."""

    epochs: int = Field(0, ge=0)
    batch_size: int = Field(128, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig(name="sgd", lr=0.01, nesterov=True,
                                                 weight_decay=0.0)
    schedule: ScheduleConfig = ScheduleConfig()


Percent = Annotated[float, Field(gt=0.0, le=100.0)]


class FewLabelConfig(StrictModel):
    """Few-label evaluation on fixed class-balanced subsets of the train split (e.g. [1, 10]):
    a linear probe on each (``eval.linear``'s recipe), and a fine-tune if ``finetune``."""

    percents: list[Percent] = []
    finetune: bool = False  # also fine-tune on each subset (eval.finetune's recipe and epochs)


class OnlineConfig(StrictModel):
    """Online monitoring during pretraining (engine/online.py): a linear probe on detached
    features, and kNN on a fixed held-out slice of the pretraining split (never the test
    split) every ``knn_every`` epochs (0: no kNN, no probe score) and at the last epoch."""

    linear: bool = True
    knn_every: int = Field(5, ge=0)
    bank: int = Field(2000, ge=1)  # labelled images of the kNN memory bank
    queries: int = Field(1000, ge=1)  # held-out images scored (the probe never trains on them)
    knn_k: int = Field(200, ge=1)
    lr: float = Field(0.01, gt=0.0)  # the probe's SGD (momentum 0.9), constant


class EvalConfig(StrictModel):
    linear: LinearConfig = LinearConfig()
    knn_k: int = Field(200, ge=1)
    knn_temperature: float = Field(0.1, gt=0.0)
    train_subset: int | None = Field(None, ge=1)  # labelled train images used (None: all)
    finetune: FinetuneConfig = FinetuneConfig()
    few_label: FewLabelConfig = FewLabelConfig()
    online: OnlineConfig = OnlineConfig()
    # transfer: evaluate on this dataset (its train/test splits) instead of the pretraining one
    dataset: str | None = None


class DataConfig(StrictModel):
    name: str
    options: dict[str, Any] = {}  # the dataset's own options, validated by its options model
    image_size: int | None = Field(None, ge=8, le=1024)  # resize to this; None: native size
    train_subset: int | None = Field(None, ge=2)  # pretrain on a fixed subset (CPU recipes)
    hflip: bool = True  # False where a mirror image changes the class (digits)


class ComponentConfig(BaseModel):
    """``name`` plus the component's own options, validated by the component itself."""

    model_config = ConfigDict(extra="allow")
    name: str


class RuntimeConfig(StrictModel):
    # auto: bf16 where the hardware has it (recent GPUs; CPUs with AVX512-BF16/AMX), fp16 on
    # older GPUs, fp32 on other CPUs (see engine.device.autocast_dtype)
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    channels_last: bool = True
    compile: bool = False
    sync_batchnorm: bool = True  # under torchrun on CUDA: batch statistics over all processes


class RunConfig(StrictModel):
    method: ComponentConfig
    backbone: ComponentConfig
    data: DataConfig
    pretrain: PretrainConfig = PretrainConfig()
    eval: EvalConfig = EvalConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    seed: int = Field(0, ge=0, le=2**32 - 1)

    def hash(self, *, with_seed: bool = False, plugins: dict[str, str] | None = None) -> str:
        """Identity of the recipe (seeds of one recipe share it; ``with_seed`` for the cell).

        ``plugins``: the third-party distributions (name -> version) whose components the
        cell uses; bumping one's version makes a new cell. See :func:`identity_hash`.
        """
        data = self.model_dump(mode="json")
        if not with_seed:
            data.pop("seed")
        return identity_hash(data, plugins)


# Fields added after the first records were written: left out of the identity while they hold
# their default, so that adding a field does not change the id of every existing cell.
_LATER_FIELDS = {
    ("data", "options"): {},
    ("eval", "finetune"): FinetuneConfig().model_dump(mode="json"),
    ("eval", "few_label"): FewLabelConfig().model_dump(mode="json"),
    ("eval", "online"): OnlineConfig().model_dump(mode="json"),
    ("eval", "dataset"): None,
}


def identity_hash(config: dict[str, Any], plugins: dict[str, str] | None = None) -> str:
    """sha256 (12 hex digits) of a config dump (``model_dump(mode="json")``, seed removed for
    a recipe hash) and the third-party plugins it uses; records are checked against it."""
    data = copy.deepcopy(config)
    for (section, key), default in _LATER_FIELDS.items():
        part = data.get(section)
        if isinstance(part, dict) and part.get(key, default) == default:
            part.pop(key, None)
    if plugins:
        data["plugins"] = dict(sorted(plugins.items()))
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def deep_merge(base: dict, *layers: dict | None) -> dict:
    """Merge nested dicts left to right; later layers win, dicts merge, other values replace."""
    merged = copy.deepcopy(base)
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = deep_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"pretrain": {"epochs": 5}}`` -> ``{"pretrain.epochs": 5}``: nested config sections as
    the dotted keys of ``--set`` (leaves only; lists and empty dicts stay values). The inverse
    of :func:`dotted_to_nested` merged over every key."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def dotted_to_nested(key: str, value: Any) -> dict:
    """``"pretrain.optimizer.lr", 0.1`` -> ``{"pretrain": {"optimizer": {"lr": 0.1}}}``."""
    nested: Any = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested
