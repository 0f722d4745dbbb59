"""Every built-in dataset loader, on small files the tests write in the dataset's own format
(IDX, CIFAR pickles, STL-10 binaries, image folders): shapes, labels, statistics, and the
one-line errors for missing or corrupt files."""

import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from sslbench.builtin.data.cifar10 import FILES as CIFAR_FILES
from sslbench.builtin.data.cifar10 import load_cifar10
from sslbench.builtin.data.cifar100 import load_cifar100
from sslbench.builtin.data.digits import load_digits
from sslbench.builtin.data.fashion_mnist import load_fashion_mnist
from sslbench.builtin.data.imagefolder import load_imagefolder
from sslbench.builtin.data.stl10 import load_stl10
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


# --- CIFAR-100: pickled dicts with "data" [n, 3072] (channel planes, row-major) and fine_labels


def write_cifar100(root, n_train=8, n_test=4):
    rng = np.random.default_rng(0)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    batches = {}
    for name, n in (("train", n_train), ("test", n_test)):
        batches[name] = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         "fine_labels": [(7 * i) % 100 for i in range(n)],
                         "coarse_labels": [i % 20 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batches[name]))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    return folder, batches


def trust_cifar100_files(monkeypatch, folder):
    """torchvision checks the published MD5 sums; point them at the generated files."""
    from torchvision.datasets import CIFAR100

    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5(folder / "train")]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5(folder / "test")]])
    monkeypatch.setitem(CIFAR100.meta, "md5", md5(folder / "meta"))


def test_cifar100_through_torchvision_loader(tmp_path, monkeypatch):
    folder, batches = write_cifar100(tmp_path)
    trust_cifar100_files(monkeypatch, folder)
    data = load_cifar100(tmp_path, download=False)
    assert data.num_classes == 100 and len(data.train) == 8 and len(data.test) == 4
    assert data.test.labels.tolist() == [0, 7, 14, 21]  # fine labels, not the coarse ones
    # row 1 of the test batch: 1024 red values, then green, then blue, each plane row-major
    row = batches["test"]["data"][1]
    assert data.test.images[1, 1, 2, 5].item() == row[1024 + 2 * 32 + 5]
    assert data.train.images.dtype == torch.uint8 and len(data.mean) == 3


def test_cifar100_missing_says_where(tmp_path):
    with pytest.raises(DataError, match=r"CIFAR-100 not found: put train, test, meta in "
                                        r".*cifar-100-python"):
        load_cifar100(tmp_path, download=False)


def test_cifar100_corrupt_file_is_one_line(tmp_path):
    folder, _ = write_cifar100(tmp_path)
    (folder / "train").write_bytes(b"\x80 truncated")
    with pytest.raises(DataError, match=r"CIFAR-100 files in .* are unreadable or corrupt") as e:
        load_cifar100(tmp_path, download=False)
    assert "\n" not in str(e.value)


# --- STL-10: *_X.bin = uint8 images 3x96x96, each channel column-major; *_y.bin = uint8 1..10

PIXELS = 3 * 96 * 96


def write_stl10(root, n_train=4, n_test=3, n_unlabeled=5, labels=None):
    rng = np.random.default_rng(0)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        pixels = rng.integers(0, 256, n * PIXELS, np.uint8)
        (folder / f"{split}_X.bin").write_bytes(pixels.tobytes())
    train_y = np.arange(1, n_train + 1) if labels is None else np.asarray(labels)
    (folder / "train_y.bin").write_bytes(train_y.astype(np.uint8).tobytes())
    (folder / "test_y.bin").write_bytes((np.arange(n_test) % 10 + 1).astype(np.uint8).tobytes())
    return folder


def trust_stl10_files(monkeypatch, folder):
    from torchvision.datasets import STL10

    monkeypatch.setattr(STL10, "train_list", [[n, md5(folder / n)] for n in
                                              ("train_X.bin", "train_y.bin", "unlabeled_X.bin")])
    monkeypatch.setattr(STL10, "test_list", [[n, md5(folder / n)] for n in
                                             ("test_X.bin", "test_y.bin")])


def test_stl10_splits_labels_and_column_major_pixels(tmp_path, monkeypatch):
    folder = write_stl10(tmp_path)
    # one bright pixel in test image 2, channel 1, row 2, column 5: column-major offset
    pixels = bytearray(3 * PIXELS)
    pixels[2 * PIXELS + 1 * 96 * 96 + 5 * 96 + 2] = 255
    (folder / "test_X.bin").write_bytes(bytes(pixels))
    trust_stl10_files(monkeypatch, folder)
    data = load_stl10(tmp_path, download=False)
    assert (len(data.train), len(data.test), len(data.unlabeled)) == (4, 3, 5)
    assert data.pretrain_split is data.unlabeled  # pretraining uses the unlabeled images
    assert data.train.labels.tolist() == [0, 1, 2, 3]  # 1..10 on disk, 0..9 here
    assert data.image_size == 96 and data.num_classes == 10
    lit = (data.test.images == 255).nonzero().tolist()
    assert lit == [[2, 1, 2, 5]]


def test_stl10_missing_says_which_files_where(tmp_path):
    with pytest.raises(DataError, match=r"STL-10 not found: put train_X.bin, .*unlabeled_X.bin "
                                        r"in .*stl10_binary"):
        load_stl10(tmp_path, download=False)


def test_stl10_truncated_file_is_one_line(tmp_path, monkeypatch):
    folder = write_stl10(tmp_path)
    trust_stl10_files(monkeypatch, folder)
    (folder / "test_X.bin").write_bytes(b"\0" * 1000)  # MD5 no longer matches
    with pytest.raises(DataError, match=r"STL-10 files in .* are unreadable or corrupt") as e:
        load_stl10(tmp_path, download=False)
    assert "\n" not in str(e.value)


def test_stl10_labels_outside_1_to_10_are_reported(tmp_path, monkeypatch):
    folder = write_stl10(tmp_path, labels=[1, 0, 3, 4])  # 0 is no STL-10 class
    trust_stl10_files(monkeypatch, folder)
    with pytest.raises(DataError, match=r"train_y.bin has labels outside 1..10"):
        load_stl10(tmp_path, download=False)


# --- image folders: root/<class>/<image>, or root/train|val/<class>/<image>

RED, BLUE = (200, 10, 10), (10, 20, 230)


def write_image(path, colour, size=(16, 8)):
    """A ``size`` (w, h) image of one ``colour``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[:] = colour
    Image.fromarray(pixels).save(path)


def write_flat_folder(root, per_class=5):
    for c, colour in enumerate((RED, BLUE, (0, 200, 0))):
        for i in range(per_class):
            write_image(root / f"class{c}" / f"img{i}.png", colour)
    return root


def test_imagefolder_fixed_stratified_split(tmp_path):
    root = write_flat_folder(tmp_path / "flat")
    a = load_imagefolder(tmp_path, root=root, image_size=8)
    b = load_imagefolder(tmp_path, root=root, image_size=8)
    assert a.num_classes == 3 and (len(a.train), len(a.test)) == (12, 3)  # 1 of 5 per class
    assert sorted(a.test.labels.tolist()) == [0, 1, 2]
    assert torch.equal(a.test.images, b.test.images) and torch.equal(a.train.labels,
                                                                     b.train.labels)
    assert a.train.images.shape == (12, 3, 8, 8) and a.train.images.dtype == torch.uint8
    blue = a.train.images[a.train.labels == 1]
    assert blue[:, 2].eq(230).all() and blue[:, 0].eq(10).all()


def test_imagefolder_resizes_shorter_side_then_centre_crops(tmp_path):
    root = tmp_path / "f"
    (root / "a").mkdir(parents=True)
    # 32x16 -> shorter side 8 -> 16x8 -> centre 8 columns: source columns 8..23 (a squash to
    # 8x8 would leave half the image red; a left-aligned crop would be mostly red)
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:] = RED
    pixels[:, 8:24] = BLUE
    Image.fromarray(pixels).save(root / "a" / "x.png")
    write_image(root / "a" / "y.png", RED)
    data = load_imagefolder(tmp_path, root=root, image_size=8)
    images = torch.cat([data.train.images, data.test.images])
    [centre] = [img for img in images if img[2].float().mean() > 200]
    assert centre[:, :, 1:-1].flatten(1).tolist() == [[10] * 48, [20] * 48, [230] * 48]


def test_imagefolder_train_val_layout_with_workers_and_jpeg(tmp_path):
    root = tmp_path / "tv"
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            write_image(root / split / "cat" / f"{i}.jpg", RED)
            write_image(root / split / "dog" / f"{i}.png", BLUE)
    data = load_imagefolder(tmp_path, root=root, image_size=8, workers=2)
    assert (len(data.train), len(data.test)) == (6, 4)
    assert data.test.labels.tolist() == [0, 0, 1, 1]  # classes sorted: cat, dog
    cats = data.test.images[:2].float()
    assert (cats[:, 0] - RED[0]).abs().max() < 8  # JPEG is lossy: close, not equal
    assert torch.equal(data.test.images[2:], torch.tensor(BLUE, dtype=torch.uint8)
                       .view(1, 3, 1, 1).expand(2, 3, 8, 8))


def test_imagefolder_val_class_missing_from_train(tmp_path):
    root = tmp_path / "tv"
    write_image(root / "train" / "cat" / "0.png", RED)
    write_image(root / "val" / "cow" / "0.png", RED)
    with pytest.raises(DataError, match=r"val/ has classes that train/ lacks: cow"):
        load_imagefolder(tmp_path, root=root, image_size=8)


def test_imagefolder_found_by_convention_and_env(tmp_path, monkeypatch, plugins):
    factory = plugins.catalog.get("datasets", "imagefolder")
    with pytest.raises(DataError) as e:
        factory(tmp_path / "data", False)
    where = tmp_path / "data" / "imagefolder"
    assert f"image folder {where} does not exist: create {where}/<class>/<image>.jpg" \
        in str(e.value) and "SSLBENCH_IMAGEFOLDER" in str(e.value)
    monkeypatch.setenv("SSLBENCH_IMAGEFOLDER", str(write_flat_folder(tmp_path / "mine", 2)))
    monkeypatch.setenv("SSLBENCH_IMAGEFOLDER_SIZE", "12")
    data = factory(tmp_path / "data", False)
    assert data.num_classes == 3 and data.image_size == 12


def test_imagefolder_without_images_says_what_to_create(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match=r"has no images in class sub-folders: create"):
        load_imagefolder(tmp_path, root=tmp_path / "empty")


def test_imagefolder_corrupt_image_names_the_file(tmp_path):
    root = write_flat_folder(tmp_path / "flat", 2)
    (root / "class1" / "img1.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"file .*class1/img1.png is unreadable or corrupt: ") as e:
        load_imagefolder(tmp_path, root=root, image_size=8)
    assert "\n" not in str(e.value)


def test_new_datasets_are_registered(plugins):
    names = {e.name for e in plugins.catalog.entries("datasets")}
    assert {"cifar100", "stl10", "imagefolder"} <= names
