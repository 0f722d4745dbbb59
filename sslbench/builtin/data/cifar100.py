"""CIFAR-100 (Krizhevsky 2009): 50k/10k 32x32 colour images, 100 fine classes.

Loaded by torchvision from ``<data_dir>/cifar-100-python/`` (``train``, ``test`` and ``meta``:
the python version's pickles, checked against their published MD5 sums), downloaded there when
allowed. The labels are the 100 fine classes (the 20 coarse superclasses are not used).
"""

from __future__ import annotations

from pathlib import Path

from sslbench import DatasetSplits, hookimpl

from .cifar10 import load_torchvision_cifar

FOLDER = "cifar-100-python"
FILES = ["train", "test", "meta"]


def load_cifar100(data_dir: Path, download: bool = False) -> DatasetSplits:
    """CIFAR-100 via ``torchvision.datasets.CIFAR100``."""
    from torchvision.datasets import CIFAR100

    return load_torchvision_cifar(CIFAR100, "CIFAR-100", FOLDER, FILES, 100, data_dir, download)


@hookimpl
def sslbench_register_datasets(register):
    register("cifar100", load_cifar100, display="CIFAR-100")
