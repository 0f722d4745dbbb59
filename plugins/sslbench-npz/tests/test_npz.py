"""The npz dataset: layouts, one-line errors, and sslbench's dataset conformance check."""

import numpy as np
import pytest
import sslbench_npz
from sslbench_npz import load_npz

from sslbench.core.plugins import load_plugins
from sslbench.errors import DataError
from sslbench.testing import check_dataset


def write(folder, name, n, layout="NHWC", classes=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 6, 6, 3), dtype=np.uint8)
    if layout == "NCHW":
        images = images.transpose(0, 3, 1, 2)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / name, images=images, labels=np.arange(n) % classes)
    return images


def test_reads_train_and_test_in_both_layouts(tmp_path):
    train = write(tmp_path / "npz", "train.npz", 12)
    write(tmp_path / "npz", "test.npz", 6, layout="NCHW")
    data = load_npz(tmp_path)
    assert tuple(data.train.images.shape) == (12, 3, 6, 6)
    assert tuple(data.test.images.shape) == (6, 3, 6, 6)
    assert data.num_classes == 3
    # pixel (row 1, col 2, channel 0) of image 4 stays where it was
    assert data.train.images[4, 0, 1, 2].item() == train[4, 1, 2, 0]
    assert data.mean[0] == pytest.approx(train[..., 0].mean() / 255, rel=1e-5)


def test_passes_the_dataset_conformance_check(tmp_path, monkeypatch):
    write(tmp_path / "mine", "train.npz", 12)
    write(tmp_path / "mine", "test.npz", 6, seed=1)
    check_dataset("npz", tmp_path, options={"root": str(tmp_path / "mine")},
                  catalog=load_plugins(autoload=False, extra=[("npz", sslbench_npz)]).catalog)


def test_missing_folder_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DataError, match=r"put train.npz and test.npz .* in .*npz"):
        load_npz(tmp_path)


def test_wrong_dtype_is_a_one_line_error(tmp_path):
    folder = tmp_path / "npz"
    folder.mkdir()
    for name in ("train.npz", "test.npz"):
        np.savez(folder / name, images=np.zeros((4, 6, 6), np.float32), labels=np.zeros(4))
    with pytest.raises(DataError, match="images must be uint8"):
        load_npz(tmp_path)


def test_registers_through_the_hook():
    plugins = load_plugins(autoload=False, extra=[("npz", sslbench_npz)])
    entry = plugins.catalog.entry("datasets", "npz")
    assert entry.component is load_npz and entry.metadata["display"] == "NPZ folder"
