"""STL-10 (Coates et al. 2011): 96x96 colour images, 10 classes; 5k labelled train, 8k test
and 100k unlabeled images.

Pretraining uses the ``unlabeled`` split (``DatasetSplits.unlabeled``), the linear probe and kNN
the labelled ``train`` split, and the figures are reported on ``test``; the 10 predefined folds
of 1k train images are not used (the SSL papers train the probe on all 5k).

Loaded by torchvision from ``<data_dir>/stl10_binary/``: the binary release's ``*_X.bin`` (uint8
images, 3x96x96 each, column-major) and ``*_y.bin`` (uint8 labels 1..10), checked against their
published MD5 sums, downloaded there (2.6 GB) when allowed. Held in memory as uint8: 2.8 GB for
the unlabeled split (briefly twice that while it is converted).
"""

from __future__ import annotations

from pathlib import Path

from sslbench import DataError, DatasetSplits, hookimpl

from ._common import channel_stats, corrupt, missing, split_from_arrays

FOLDER = "stl10_binary"
FILES = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin"]


def load_stl10(data_dir: Path, download: bool = False) -> DatasetSplits:
    """STL-10 via ``torchvision.datasets.STL10``: train, test and unlabeled splits."""
    where = Path(data_dir) / FOLDER
    have = all((where / f).is_file() for f in FILES)
    if not have and not download:
        raise missing("STL-10", where, FILES, "extract stl10_binary.tar.gz")
    try:
        train, test, unlabeled = _torchvision_splits(Path(data_dir), download=not have)
        splits = [split_from_arrays(s.data, s.labels) for s in (train, test, unlabeled)]
    except Exception as exc:  # RuntimeError (md5 mismatch), ValueError (reshape), URLError...
        if not have:
            raise missing("STL-10", where, FILES, f"download failed: {exc}") from None
        raise corrupt("STL-10", where, exc) from None
    for name, split in zip(("train", "test"), splits[:2], strict=True):
        if len(split) and not 0 <= int(split.labels.min()) <= int(split.labels.max()) <= 9:
            raise DataError(f"STL-10 files in {where} are unreadable or corrupt: "
                            f"{name}_y.bin has labels outside 1..10")
    mean, std = channel_stats(splits[0].images)  # the labelled train split: 5k images suffice
    return DatasetSplits(train=splits[0], test=splits[1], unlabeled=splits[2], num_classes=10,
                         mean=mean, std=std)


def _torchvision_splits(data_dir: Path, download: bool):
    from torchvision.datasets import STL10

    class Verified(STL10):
        """The first split's load already checked all five files' MD5 sums (2.7 GB of data):
        the other two splits skip hashing them again."""

        def _check_integrity(self) -> bool:
            return True

    train = STL10(str(data_dir), split="train", download=download)
    return (train, Verified(str(data_dir), split="test"),
            Verified(str(data_dir), split="unlabeled"))


@hookimpl
def sslbench_register_datasets(register):
    register("stl10", load_stl10, display="STL-10")
