"""CIFAR-10 (Krizhevsky 2009): 50k/10k 32x32 colour images, 10 classes.

Loaded by torchvision from ``<data_dir>/cifar-10-batches-py/`` (the python version's pickled
batches, checked against their published MD5 sums), downloaded there when allowed.
"""

from __future__ import annotations

from pathlib import Path

from sslbench import DatasetSplits, hookimpl

from ._common import channel_stats, corrupt, missing, split_from_arrays

FOLDER = "cifar-10-batches-py"
FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
# The linear probe most CIFAR-10 recipes share (the original project's main_linear.py: SGD with
# Nesterov momentum, lr 0.1, batch 512, 100 epochs); a method whose paper probes otherwise
# (MoCo v2 and SimSiam: lr 30; SupCon: lr 5) overrides it in its own recipe.
RECIPE = {"eval": {"linear": {"epochs": 100, "batch_size": 512,
                              "optimizer": {"name": "sgd_nesterov", "lr": 0.1,
                                            "weight_decay": 0.0, "momentum": 0.9}}}}


def load_cifar10(data_dir: Path, download: bool = False) -> DatasetSplits:
    """CIFAR-10 via ``torchvision.datasets.CIFAR10``."""
    from torchvision.datasets import CIFAR10

    return load_torchvision_cifar(CIFAR10, "CIFAR-10", FOLDER, FILES, 10, data_dir, download)


def load_torchvision_cifar(cls, display, folder, files, num_classes, data_dir, download):
    """Shared by CIFAR-10 and CIFAR-100: same on-disk format, different names."""
    where = Path(data_dir) / folder
    have = where.is_dir() and all((where / f).is_file() for f in files)
    if not have and not download:
        raise missing(display, where, files, "extract the 'python version' archive")
    try:
        train = cls(str(data_dir), train=True, download=not have)
        test = cls(str(data_dir), train=False, download=False)
    except Exception as exc:  # RuntimeError (md5 mismatch), UnpicklingError, URLError...
        if not have:
            raise missing(display, where, files, f"download failed: {exc}") from None
        raise corrupt(display, where, exc) from None
    train_split = split_from_arrays(train.data, train.targets)
    mean, std = channel_stats(train_split.images)
    return DatasetSplits(train=train_split, test=split_from_arrays(test.data, test.targets),
                         num_classes=num_classes, mean=mean, std=std)


@hookimpl
def sslbench_register_datasets(register):
    register("cifar10", load_cifar10, display="CIFAR-10", recipe=RECIPE)
