"""Dataset loaders on small files written in each dataset's own on-disk format (no network)."""

import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch

from sslbench.builtin.data.cifar10 import FILES as CIFAR_FILES
from sslbench.builtin.data.cifar10 import load_cifar10
from sslbench.builtin.data.digits import load_digits
from sslbench.builtin.data.fashion_mnist import load_fashion_mnist
from sslbench.errors import DataError


def idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def write_fashion_gz(folder, n_train=20, n_test=10):
    """The four gzipped IDX files, as Debian's dataset-fashion-mnist package ships them."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "train-images-idx3-ubyte": idx_images(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": idx_labels(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte": idx_images(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": idx_labels(np.arange(n_test) % 10),
    }
    for name, data in payload.items():
        with gzip.open(folder / f"{name}.gz", "wb") as f:
            f.write(data)
    return payload


def test_digits_fixed_stratified_split():
    a, b = load_digits(None), load_digits(None)
    assert len(a.train) == 1437 and len(a.test) == 360
    assert torch.equal(a.test.labels, b.test.labels)
    assert a.train.images.shape[1:] == (1, 8, 8) and a.train.images.dtype == torch.uint8
    assert torch.bincount(a.test.labels).min() >= 35  # every class held out


def test_fashion_mnist_from_system_gz_files(tmp_path):
    system = tmp_path / "usr-share"
    payload = write_fashion_gz(system)
    data = load_fashion_mnist(tmp_path / "cache", download=False, system_dirs=[system])
    assert len(data.train) == 20 and len(data.test) == 10
    assert data.train.images.shape[1:] == (1, 28, 28)
    raw = tmp_path / "cache" / "FashionMNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte").read_bytes() == payload["train-images-idx3-ubyte"]
    expected = np.frombuffer(payload["t10k-images-idx3-ubyte"][16:], np.uint8)
    assert np.array_equal(data.test.images.numpy().ravel(), expected)


def test_fashion_mnist_missing_says_where(tmp_path):
    with pytest.raises(DataError, match=r"put train-images-idx3-ubyte.* in .*FashionMNIST/raw"):
        load_fashion_mnist(tmp_path, download=False, system_dirs=[tmp_path / "nowhere"])


def test_fashion_mnist_bad_gzip_is_a_clear_error(tmp_path):
    system = tmp_path / "sys"
    write_fashion_gz(system)
    (system / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="unreadable or corrupt"):
        load_fashion_mnist(tmp_path / "cache", download=False, system_dirs=[system])


def test_fashion_mnist_truncated_file_is_a_clear_error(tmp_path):
    system = tmp_path / "sys"
    write_fashion_gz(system)
    load_fashion_mnist(tmp_path / "cache", download=False, system_dirs=[system])
    raw = tmp_path / "cache" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    raw.write_bytes(raw.read_bytes()[:100])
    with pytest.raises(DataError, match="unreadable or corrupt"):
        load_fashion_mnist(tmp_path / "cache", download=False, system_dirs=[system])


def write_cifar10(root, n=10):
    """The python-version batches: pickled dicts with "data" [n, 3072] and "labels"."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in CIFAR_FILES[:-1]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": list(np.arange(n) % 10)}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"c{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_through_torchvision_loader(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    folder = write_cifar10(tmp_path)
    # torchvision checks the published MD5 sums; point them at our generated files.
    batches = [[f"data_batch_{i}", md5(folder / f"data_batch_{i}")] for i in range(1, 6)]
    monkeypatch.setattr(CIFAR10, "train_list", batches)
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setitem(CIFAR10.meta, "md5", md5(folder / "batches.meta"))
    data = load_cifar10(tmp_path, download=False)
    assert len(data.train) == 50 and len(data.test) == 10
    assert data.train.images.shape[1:] == (3, 32, 32) and len(data.mean) == 3


def test_cifar10_corrupt_batch_is_reported(tmp_path):
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(b"\x80truncated")
    with pytest.raises(DataError, match="CIFAR-10 files in .* are unreadable or corrupt"):
        load_cifar10(tmp_path, download=False)


def test_cifar10_missing_says_where(tmp_path):
    with pytest.raises(DataError,
                       match="CIFAR-10 not found: put data_batch_1.*cifar-10-batches-py"):
        load_cifar10(tmp_path, download=False)
