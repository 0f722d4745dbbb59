"""``check_dataset``: train / test splits the engine can put on the device as uint8 tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sslbench.core.components import DatasetSplits, Split
from sslbench.core.config import RunConfig, deep_merge
from sslbench.testing.tiny import expect, resolve


def check_dataset(dataset: Any, data_dir: str | Path = ".", *, download: bool = False,
                  recipe: dict | None = None, options: Any = None, catalog=None) -> None:
    """Load ``dataset`` (a registered name or a factory) from ``data_dir`` twice and check that
    it returns :class:`DatasetSplits` whose splits hold square uint8 ``[N, C, H, W]`` images
    (C 1 or 3) of one size with labels in ``[0, num_classes)``; mean/std have one positive
    value per channel; the split is the same on every call; and the registered ``recipe``
    (taken from the catalog for a name) is a valid partial run config.

    ``options``: the dataset's options (a dict validated by its registered ``options`` model,
    or a model instance), passed as the factory's third argument as the engine passes them.
    """
    name, factory = resolve("datasets", dataset, catalog)
    where = f"check_dataset({name!r})"
    model = None
    if isinstance(dataset, str):
        from sslbench.core.plugins import load_plugins

        entry = (catalog or load_plugins().catalog).entry("datasets", name)
        recipe = entry.metadata.get("recipe") if recipe is None else recipe
        model = entry.metadata.get("options")
    if isinstance(options, dict):
        expect(model is not None, where, "options given, but the dataset declares no options "
                                         "model (register it with options=Model)")
        options = model.model_validate(options)
    elif options is None and model is not None:
        options = model()  # its defaults, as a run without --set data.options.* gets
    args = (Path(data_dir), download) + (() if options is None else (options,))
    data = factory(*args)
    expect(isinstance(data, DatasetSplits), where,
           f"the factory must return DatasetSplits, got {type(data).__name__}")
    expect(isinstance(data.num_classes, int) and data.num_classes >= 2, where,
           f"num_classes must be an int >= 2, got {data.num_classes!r}")
    splits = {"train": data.train, "test": data.test}
    if data.unlabeled is not None:
        splits["unlabeled"] = data.unlabeled
    for label, split in splits.items():
        _check_split(split, data, f"{where} {label}", labelled=label != "unlabeled")
    channels = data.train.images.shape[1]
    for stat in ("mean", "std"):
        values = getattr(data, stat)
        expect(len(values) in (channels, 3), f"{where} {stat}",
               f"{stat} needs one value per channel ({channels}), got {len(values)}")
    expect(all(s > 0 for s in data.std), f"{where} std", f"std must be positive: {data.std}")
    again = factory(*args)
    expect(torch.equal(again.test.labels, data.test.labels)
           and torch.equal(again.train.images, data.train.images), f"{where} determinism",
           "two loads gave different splits (every run must see the same held-out images)")
    if recipe:
        names = {"method": {"name": "m"}, "backbone": {"name": "b"}, "data": {"name": name}}
        try:
            RunConfig.model_validate(deep_merge({}, recipe, names))
        except Exception as exc:
            raise AssertionError(f"{where} recipe: not a valid partial run config: "
                                 f"{' '.join(str(exc).split())[:300]}") from None


def _check_split(split: Split, data: DatasetSplits, check: str, labelled: bool) -> None:
    images = split.images
    expect(len(split) > 0, check, "the split is empty")
    expect(images.dtype == torch.uint8 and images.dim() == 4 and images.shape[1] in (1, 3),
           check, f"images must be uint8 [N, 1 or 3, H, W], got {images.dtype} "
                  f"{tuple(images.shape)}")
    expect(images.shape[2] == images.shape[3] == data.train.images.shape[2], check,
           f"images must be square and of the train split's size, got {tuple(images.shape)}")
    if labelled:
        lo, hi = int(split.labels.min()), int(split.labels.max())
        expect(0 <= lo and hi < data.num_classes, check,
               f"labels must lie in [0, {data.num_classes}), got [{lo}, {hi}]")
