"""scikit-learn's bundled handwritten digits: 1,797 8x8 grey images, 10 classes, no download.

The split is fixed and stratified (20% test, ``random_state=0``) so every run and every method
sees the same held-out images. Pixel values 0..16 are scaled to 0..255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslbench import DatasetSplits, hookimpl

from ._common import channel_stats, split_from_arrays

# CPU-sized defaults: the native 8 px (upsampling adds compute, not information), no mirror
# flips (a mirrored digit is another symbol or none), a short schedule. The linear probe's lr is
# 0.02: at 0.1 it overfits the 1,437 train images (about 1 point lower on short-trained
# features, equal on fully trained ones). fp32 even where the CPU has bf16 hardware: at 8 px and
# quarter width, bf16's conversions cost more than its arithmetic saves (measured 1.6-2x slower
# than fp32 on an AMX Xeon). Online kNN every 20 epochs: a curve of five points costs seconds.
# See README "Recipes".
RECIPE = {
    "data": {"image_size": 8, "hflip": False},
    "runtime": {"precision": "fp32"},
    "pretrain": {"epochs": 30, "batch_size": 128,
                 "optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 5e-4},
                 "schedule": {"name": "cosine", "warmup_epochs": 2}},
    "eval": {"linear": {"epochs": 100, "batch_size": 256,
                        "optimizer": {"name": "sgd", "lr": 0.02, "weight_decay": 0.0}},
             "online": {"knn_every": 20}},
}


def load_digits(data_dir: Path, download: bool = False) -> DatasetSplits:
    """Digits from scikit-learn (``data_dir`` and ``download`` are unused: the data ships)."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target, test_size=0.2, stratify=bunch.target, random_state=0
    )
    train, test = split_from_arrays(x_train, y_train), split_from_arrays(x_test, y_test)
    mean, std = channel_stats(train.images)
    return DatasetSplits(train=train, test=test, num_classes=10, mean=mean, std=std)


@hookimpl
def sslbench_register_datasets(register):
    register("digits", load_digits, display="Digits", recipe=RECIPE)
