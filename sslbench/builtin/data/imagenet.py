"""ImageNet-1k, ImageNet-100 and WebDataset-style tar shards, streamed from disk.

* ``imagenet``: ILSVRC-2012 (Russakovsky et al. 2015) in the ImageNet layout,
  ``root/train/<wnid>/*.JPEG`` and ``root/val/<wnid>/*.JPEG`` (the validation images sorted
  into class folders); ``root`` is ``data.options.root``, else ``<data_dir>/imagenet``.
* ``imagenet100``: the 100-class subset of CMC (Tian et al. 2019, "Contrastive Multiview
  Coding", list in ``imagenet100.txt`` beside this file, as published with CMC and used by
  solo-learn); ``root`` is a full ImageNet folder or one holding only those classes
  (default ``<data_dir>/imagenet100``). Every listed class must be in train/ and val/.
* ``shards``: ``root/train/*.tar`` and ``root/val/*.tar``, each sample ``key.jpg`` (or .png,
  .webp) with ``key.cls`` holding its class number, as ``webdataset.ShardWriter`` writes them
  (default ``<data_dir>/shards``). The shards are indexed once (tar headers and labels), then
  read at random, so data order and exact resume are those of the folders.

All stream (see :mod:`sslbench.engine.stream`): crops of ``data.options.image_size`` (default
224) are taken at decode time, normalised with ImageNet's mean and std.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sslbench import DataError, DatasetSplits, StreamSplit, hookimpl

from ._sources import index_shards
from .imagefolder import IMAGENET_MEAN, IMAGENET_STD, FolderOptions, find_images, streamed_splits

IMAGENET_SIZE = 224
# Linear evaluation, shared by every method (one whose source probes otherwise sets its own lr
# in its recipe). Both protocols train on random resized crops + flips of the training images
# every epoch, so the probe is not cached; SGD with momentum 0.9, no weight decay, 100 epochs,
# lr x 0.1 at epochs 60 and 80, batch 256.
# ImageNet-100: solo-learn's scripts/linear/imagenet-100/*.yaml (commit 9187ea39), one device,
# lr 0.3 as most of them (BYOL, DINO, MoCo v3, NNCLR, VICReg).
# ImageNet: MoCo's protocol (He et al. 2020, §4.1, "Linear Classification Protocol"; the
# defaults of facebookresearch/moco main_lincls.py at 132aea9d: 100 epochs, decay at 60 and
# 80, batch 256, wd 0), with lr 0.1 as solo-learn's scripts/linear/imagenet/byol.yaml and
# SimCLR's 0.1 x batch / 256 (Chen et al. 2020, Appendix B.6): MoCo's own lr 30 suits MoCo's
# features; solo-learn's MoCo v2+ (lr 3.0) and SimSiam's LARC probe are in their recipes.
# (``step``'s default milestones, 60% and 80% of the run, are epochs 60 and 80 of 100, and its
# gamma is 0.1: no options, so that a method or user switching to cosine inherits none)
_LINEAR = {"epochs": 100, "batch_size": 256, "cached": False,
           "schedule": {"name": "step", "warmup_epochs": 0.0}}
IMAGENET100_RECIPE = {"eval": {"linear": {**_LINEAR, "optimizer": {
    "name": "sgd", "lr": 0.3, "weight_decay": 0.0, "momentum": 0.9}}}}
IMAGENET_RECIPE = {"eval": {"linear": {**_LINEAR, "optimizer": {
    "name": "sgd", "lr": 0.1, "weight_decay": 0.0, "momentum": 0.9}}}}
CLASS_LIST = Path(__file__).with_name("imagenet100.txt")


def imagenet100_classes() -> list[str]:
    return CLASS_LIST.read_text().split()


def _root(options: FolderOptions | None, data_dir: Path, name: str) -> Path:
    return Path(options.root) if options and options.root else Path(data_dir) / name


def _size(options: FolderOptions | None) -> int:
    return options.image_size if options and options.image_size else IMAGENET_SIZE


def load_imagenet(data_dir: Path, download: bool = False,
                  options: FolderOptions | None = None) -> DatasetSplits:
    """ImageNet-1k, streamed."""
    root = _root(options, data_dir, "imagenet")
    if root.is_dir() and not (root / "train").is_dir():
        raise DataError(f"image folder {root} has no train/ and val/ folders (ImageNet layout)")
    classes, train, test = find_images(root)
    return streamed_splits(classes, train, test, _size(options))


def load_imagenet100(data_dir: Path, download: bool = False,
                     options: FolderOptions | None = None) -> DatasetSplits:
    """ImageNet-100 (CMC's classes), streamed."""
    root = _root(options, data_dir, "imagenet100")
    return streamed_splits(*find_images(root, only=imagenet100_classes()), _size(options))


def load_shards(data_dir: Path, download: bool = False,
                options: FolderOptions | None = None) -> DatasetSplits:
    """Tar shards of ``key.jpg`` + ``key.cls`` samples, streamed."""
    root = _root(options, data_dir, "shards")
    splits = []
    for name in ("train", "val"):
        shards = sorted((root / name).glob("*.tar")) if (root / name).is_dir() else []
        if not shards:
            raise DataError(f"no shards in {root / name}: put {name}-000000.tar, ... there "
                            "(webdataset.ShardWriter's format: key.jpg + key.cls per sample)")
        source, labels = index_shards(shards)
        if not labels:
            raise DataError(f"the shards in {root / name} hold no images")
        splits.append(StreamSplit(source, torch.tensor(labels, dtype=torch.long),
                                  _size(options)))
    num_classes = int(max(splits[0].labels.max(), splits[1].labels.max())) + 1
    return DatasetSplits(train=splits[0], test=splits[1], num_classes=num_classes,
                         mean=IMAGENET_MEAN, std=IMAGENET_STD)


@hookimpl
def sslbench_register_datasets(register):
    register("imagenet", load_imagenet, display="ImageNet", options=FolderOptions,
             recipe=IMAGENET_RECIPE)
    register("imagenet100", load_imagenet100, display="ImageNet-100", options=FolderOptions,
             recipe=IMAGENET100_RECIPE)
    register("shards", load_shards, display="Tar shards", options=FolderOptions)
