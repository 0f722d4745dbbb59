"""A dataset from a folder of ``.npz`` files: bring your own images without writing a plugin.

The folder is the dataset option ``root`` if given (``--set data.options.root=~/my-images``),
else ``<data-dir>/npz`` (``--data-dir``, default ``~/.cache/sslbench``). It holds
``train.npz`` and ``test.npz`` (and optionally ``unlabeled.npz``, used for pretraining), each
with two arrays:

* ``images``: uint8, ``[N, H, W]`` (grey), ``[N, H, W, C]`` or ``[N, C, H, W]`` with C 1 or 3,
  square;
* ``labels``: integers ``[N]`` in ``0 .. num_classes - 1`` (``unlabeled.npz`` needs none).

The number of classes is the largest train label + 1; mean and std are computed on train.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sslbench import DataError, DatasetSplits, Split, StrictModel, hookimpl


class NpzOptions(StrictModel):
    """The dataset's options (``--set data.options.<name>=...``), validated by sslbench."""

    root: str | None = None  # the folder of .npz files; None: <data-dir>/npz


def npz_folder(data_dir: Path, options: NpzOptions | None = None) -> Path:
    if options is not None and options.root:
        return Path(options.root).expanduser()
    return Path(data_dir) / "npz"


def channels_first(images: np.ndarray) -> np.ndarray:
    """``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` (C in 1, 3) -> ``[N, C, H, W]``."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
        return images.transpose(0, 3, 1, 2)
    if images.ndim == 4 and images.shape[1] in (1, 3):
        return images
    raise ValueError(f"images must be [N, H, W], [N, H, W, C] or [N, C, H, W], "
                     f"got shape {images.shape}")


def read_split(path: Path, labelled: bool = True) -> Split:
    """One ``.npz`` file as a :class:`Split` (labels -1 where the file has none)."""
    try:
        with np.load(path) as archive:
            images = archive["images"]
            labels = archive["labels"] if labelled else np.full(len(images), -1)
    except KeyError as exc:
        raise DataError(f"{path} has no array {exc}; it needs 'images' and 'labels'") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file: {exc}") from None
    if images.dtype != np.uint8:
        raise DataError(f"{path}: images must be uint8 (0..255), got {images.dtype}")
    try:
        images = channels_first(images)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
    if images.shape[2] != images.shape[3]:
        raise DataError(f"{path}: images must be square, got {images.shape[2]}x"
                        f"{images.shape[3]}")
    return Split(torch.from_numpy(np.ascontiguousarray(images)),
                 torch.from_numpy(np.asarray(labels)).long())


def load_npz(data_dir: Path, download: bool = False,
             options: NpzOptions | None = None) -> DatasetSplits:
    """Images from ``train.npz`` / ``test.npz`` (/ ``unlabeled.npz``) in the npz folder."""
    folder = npz_folder(data_dir, options)
    missing = [name for name in ("train.npz", "test.npz") if not (folder / name).is_file()]
    if missing:
        raise DataError(f"npz dataset not found: put {' and '.join(missing)} (arrays 'images', "
                        f"'labels') in {folder}, or point --set data.options.root= at the "
                        "folder that holds them")
    train, test = read_split(folder / "train.npz"), read_split(folder / "test.npz")
    unlabeled = None
    if (folder / "unlabeled.npz").is_file():
        unlabeled = read_split(folder / "unlabeled.npz", labelled=False)
    if test.images.shape[1:] != train.images.shape[1:]:
        raise DataError(f"{folder}: test images {tuple(test.images.shape[1:])} differ from "
                        f"train images {tuple(train.images.shape[1:])}")
    x = train.images.float().div(255)
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp(min=1e-3)
    return DatasetSplits(train=train, test=test, num_classes=int(train.labels.max()) + 1,
                         mean=tuple(mean.tolist()), std=tuple(std.tolist()),
                         unlabeled=unlabeled)


@hookimpl
def sslbench_register_datasets(register):
    register("npz", load_npz, display="NPZ folder", options=NpzOptions,
             recipe={"pretrain": {"epochs": 10, "batch_size": 64}})
