"""Any folder of images with one sub-folder per class (torchvision's ``ImageFolder`` layout).

Where: ``$SSLBENCH_IMAGEFOLDER`` if set, else ``<data_dir>/imagefolder/`` (``--data-dir``,
default ``~/.cache/sslbench``). Nothing is downloaded. Two layouts are understood:

* ``root/train/<class>/<image>`` and ``root/val/<class>/<image>`` (or ``root/test/``): those are
  the train and test splits (every test class must also be a train class);
* ``root/<class>/<image>``: a fixed stratified split, 20% of each class held out for testing
  (a seeded shuffle per class: the same images every run).

The registered ``imagefolder`` streams (a :class:`~sslbench.StreamSplit`): only the file list
is held; the engine decodes each image in DataLoader workers (``torchvision.io``), takes the
random resized crops at decode time, ``SIZE x SIZE`` (``SIZE``: ``data.options.image_size``, else
``$SSLBENCH_IMAGEFOLDER_SIZE``, default 96), and normalises with ImageNet's mean and std. With
``data.options.memory=true`` the folder is instead decoded once with PIL (shorter side to
``SIZE``, centre crop) and held in memory as uint8 like the small datasets, which is faster for
a folder that fits (``N x 3 x SIZE^2`` bytes: ImageNet-100 at 96 px is 3.5 GB).

The folder is not part of a run's config, so runs on two different folders share a run id:
give each folder its own name by registering ``imagefolder_factory(root, size)`` under that
name in a plugin (e.g. ``imagenet100``), or keep one ``--data-dir`` per folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from sslbench import DataError, DatasetSplits, Split, StreamSplit, StrictModel, hookimpl

from ._common import channel_stats
from ._sources import FileSource

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
DEFAULT_SIZE = 96
TEST_FRACTION = 0.2
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the statistics every ImageNet recipe normalises with
IMAGENET_STD = (0.229, 0.224, 0.225)


class FolderOptions(StrictModel):
    """``data.options`` of the image-folder datasets."""

    root: str | None = None  # the folder (default: see the dataset's docstring)
    image_size: int | None = None  # crop side (default: the dataset's)
    memory: bool = False  # decode once and hold in memory instead of streaming


def stream_imagefolder(data_dir: Path, download: bool = False,
                       options: FolderOptions | None = None) -> DatasetSplits:
    """Any folder of images with one sub-folder per class, streamed (or held in memory)."""
    options = options or FolderOptions()
    root = Path(options.root or os.environ.get("SSLBENCH_IMAGEFOLDER")
                or Path(data_dir) / "imagefolder")
    size = options.image_size or int(os.environ.get("SSLBENCH_IMAGEFOLDER_SIZE") or DEFAULT_SIZE)
    if options.memory:
        return load_imagefolder(data_dir, download, root=root, image_size=size)
    return streamed_splits(*find_images(root), size)


def streamed_splits(classes, train, test, size: int) -> DatasetSplits:
    """Streamed train and test splits of ``find_images``' lists."""
    def split(files_labels):
        files, labels = files_labels
        return StreamSplit(FileSource(files), torch.tensor(labels, dtype=torch.long), size)
    return DatasetSplits(train=split(train), test=split(test), num_classes=len(classes),
                         mean=IMAGENET_MEAN, std=IMAGENET_STD)


def load_imagefolder(data_dir: Path, download: bool = False, *, root: Path | None = None,
                     image_size: int | None = None, workers: int | None = None) -> DatasetSplits:
    """Decode the folder at ``root`` (default: see the module docstring) into uint8 splits."""
    root = Path(root or os.environ.get("SSLBENCH_IMAGEFOLDER") or Path(data_dir) / "imagefolder")
    size = image_size or int(os.environ.get("SSLBENCH_IMAGEFOLDER_SIZE") or DEFAULT_SIZE)
    classes, (train_files, train_labels), (test_files, test_labels) = find_images(root)
    train = Split(decode_images(train_files, size, workers), torch.tensor(train_labels))
    test = Split(decode_images(test_files, size, workers), torch.tensor(test_labels))
    mean, std = channel_stats(train.images)
    return DatasetSplits(train=train, test=test, num_classes=len(classes), mean=mean, std=std)


def imagefolder_factory(root: Path, image_size: int = DEFAULT_SIZE):
    """A dataset factory for one fixed folder, to register under a name of its own."""
    def factory(data_dir: Path, download: bool = False) -> DatasetSplits:
        return load_imagefolder(data_dir, download, root=root, image_size=image_size)
    return factory


def missing_folder(root: Path, why: str) -> DataError:
    return DataError(f"image folder {root} {why}: create {root}/<class>/<image>.jpg (one "
                     f"sub-folder per class; or {root}/train/<class>/… and {root}/val/<class>/…),"
                     f" or set SSLBENCH_IMAGEFOLDER to such a folder")


def scan(folder: Path) -> dict[str, list[Path]]:
    """``{class: sorted image files}`` for the non-hidden sub-folders holding images."""
    found = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in sub.rglob("*") if f.suffix.lower() in EXTENSIONS
                       and not f.name.startswith(".") and f.is_file())
        if files:
            found[sub.name] = files
    return found


def find_images(root: Path, only: list[str] | None = None):
    """(class names, (train files, labels), (test files, labels)) from either layout; with
    ``only``, the split layout restricted to those classes, every one required in both."""
    if not root.is_dir():
        raise missing_folder(root, "does not exist")
    if only is not None:
        return _chosen_classes(root, only)
    test_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        train, test = scan(root / "train"), scan(test_dir)
        if not train or not test:
            raise missing_folder(root, f"has no images in {'train' if not train else test_dir.name}"
                                       "/<class>/ sub-folders")
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise DataError(f"image folder {root}: {test_dir.name}/ has classes that train/ "
                            f"lacks: {', '.join(unknown[:5])}")
        classes = sorted(train)
        return classes, labelled(train, classes), labelled(test, classes)
    if (root / "train").is_dir():  # not a class called "train": a half-made split layout
        raise missing_folder(root, "has train/ but no val/ or test/ beside it")
    per_class = scan(root)
    if not per_class:
        raise missing_folder(root, "has no images in class sub-folders")
    classes = sorted(per_class)
    train, test = stratified_split(per_class)
    return classes, labelled(train, classes), labelled(test, classes)


def _chosen_classes(root: Path, only: list[str]):
    per_split = []
    for name in ("train", "val"):
        if not (root / name).is_dir():
            raise missing_folder(root, f"has no {name}/ folder")
        found = {c: files for c, files in scan(root / name).items() if c in set(only)}
        lacking = [c for c in only if c not in found]
        if lacking:
            raise DataError(f"image folder {root}: {name}/ lacks {len(lacking)} of the "
                            f"{len(only)} classes, e.g. {', '.join(lacking[:3])}")
        per_split.append(found)
    classes = sorted(only)
    return classes, labelled(per_split[0], classes), labelled(per_split[1], classes)


def labelled(per_class: dict[str, list[Path]], classes: list[str]):
    files = [f for name in classes for f in per_class.get(name, [])]
    labels = [i for i, name in enumerate(classes) for _ in per_class.get(name, [])]
    return files, labels


def stratified_split(per_class: dict[str, list[Path]], fraction: float = TEST_FRACTION,
                     seed: int = 0):
    """Hold out ``round(fraction * n)`` images of each class (at least one where n >= 2)."""
    train, test = {}, {}
    gen = torch.Generator().manual_seed(seed)
    for name in sorted(per_class):
        files = per_class[name]
        n_test = min(len(files) - 1, max(1, round(fraction * len(files))))
        order = torch.randperm(len(files), generator=gen).tolist()
        test[name] = sorted(files[i] for i in order[:n_test])
        train[name] = sorted(files[i] for i in order[n_test:])
    return train, test


class DecodedImages(torch.utils.data.Dataset):
    """Decodes one file per item (in a worker): ``(uint8 [3, S, S], "")`` or a blank image and
    the error, so that the main process can name the bad file in one line."""

    def __init__(self, files: list[Path], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image
        from torchvision.transforms import functional as TF

        try:
            with Image.open(self.files[i]) as img:
                img = img.convert("RGB")
            img = TF.center_crop(TF.resize(img, self.size, antialias=True), self.size)
            return TF.pil_to_tensor(img), ""
        except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError... per format
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), \
                " ".join(f"{type(exc).__name__}: {exc}".split())


def decode_images(files: list[Path], size: int, workers: int | None = None) -> torch.Tensor:
    """All ``files`` as one uint8 tensor ``[N, 3, size, size]``, filled batch by batch."""
    if workers is None:  # worker start-up costs more than it saves on a few hundred images
        workers = 0 if len(files) < 512 else min(8, os.cpu_count() or 1)
    loader = torch.utils.data.DataLoader(DecodedImages(files, size), batch_size=64,
                                         num_workers=workers)
    out = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
    pos = 0
    for images, errors in loader:
        bad = next((j for j, e in enumerate(errors) if e), None)
        if bad is not None:
            raise DataError(f"image folder file {files[pos + bad]} is unreadable or corrupt: "
                            f"{errors[bad]}")
        out[pos:pos + len(images)] = images
        pos += len(images)
    return out


@hookimpl
def sslbench_register_datasets(register):
    register("imagefolder", stream_imagefolder, display="Image folder", options=FolderOptions)
