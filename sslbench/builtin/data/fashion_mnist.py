"""Fashion-MNIST (Xiao et al. 2017): 60k/10k 28x28 grey images of clothing, 10 classes.

Found in this order: ``<data_dir>/FashionMNIST/raw/`` (torchvision's layout, uncompressed IDX
files), then system folders such as ``/usr/share/datasets/fashion-mnist`` (Debian's
``dataset-fashion-mnist`` package ships the gzipped originals; they are decompressed into the
cache on first use), then torchvision's download when allowed.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from sslbench import DatasetSplits, hookimpl

from ._common import channel_stats, corrupt, missing, split_from_arrays

SYSTEM_DIRS = [Path("/usr/share/datasets/fashion-mnist")]
FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

# CPU-sized defaults: 16 px (a 3.5x cheaper step than the native 28 px, so six epochs of a
# full-width ResNet-18 fit), a fixed 10k-image pretraining subset, kNN and the linear probe on a
# fixed 10k labelled subset; the test split is the full 10k. ResNets add their own recipe on
# top (quarter width, 40 epochs: see builtin/backbones/resnet.py). Every run's config records
# these choices, and the table's Recipe column shows them.
RECIPE = {
    "data": {"image_size": 16, "train_subset": 10000},
    "pretrain": {"epochs": 6, "batch_size": 128,
                 "optimizer": {"name": "sgd", "lr": 0.3, "weight_decay": 5e-4},
                 "schedule": {"name": "cosine", "warmup_epochs": 0.5}},
    "eval": {"train_subset": 10000,
             "linear": {"epochs": 30, "batch_size": 256,
                        "optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 0.0}}},
}


def copy_system_files(raw: Path, system_dirs: list[Path]) -> None:
    """Decompress the gzipped IDX files of a system folder into ``raw`` (once)."""
    for folder in system_dirs:
        if all((folder / f"{name}.gz").is_file() for name in FILES):
            raw.mkdir(parents=True, exist_ok=True)
            for name in FILES:
                if not (raw / name).is_file():
                    tmp = raw / f".{name}.tmp"
                    with gzip.open(folder / f"{name}.gz") as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    tmp.replace(raw / name)
            return


def load_fashion_mnist(data_dir: Path, download: bool = False,
                       system_dirs: list[Path] | None = None) -> DatasetSplits:
    """Fashion-MNIST through torchvision's loader, from the cache, a system folder or the web."""
    from torchvision.datasets import FashionMNIST

    raw = Path(data_dir) / "FashionMNIST" / "raw"
    if not all((raw / name).is_file() for name in FILES):
        try:
            copy_system_files(raw, SYSTEM_DIRS if system_dirs is None else system_dirs)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise corrupt("Fashion-MNIST", raw, exc) from None
    have = all((raw / name).is_file() for name in FILES)
    if not have and not download:
        raise missing("Fashion-MNIST", raw, FILES,
                      "or `apt-get install dataset-fashion-mnist`")
    try:
        train = FashionMNIST(str(data_dir), train=True, download=not have)
        test = FashionMNIST(str(data_dir), train=False, download=False)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, ValueError...
        if not have:
            raise missing("Fashion-MNIST", raw, FILES, f"download failed: {exc}") from None
        raise corrupt("Fashion-MNIST", raw, exc) from None
    train_split = split_from_arrays(train.data, train.targets)
    mean, std = channel_stats(train_split.images)
    return DatasetSplits(train=train_split, test=split_from_arrays(test.data, test.targets),
                         num_classes=10, mean=mean, std=std)


@hookimpl
def sslbench_register_datasets(register):
    register("fashion-mnist", load_fashion_mnist, display="Fashion-MNIST", recipe=RECIPE)
