"""The sides of the streaming benchmarks, each run in its own process so its peak memory is its
own: ``python -m benchmarks.streaming SIDE ROOT`` prints one JSON line
``{"images": n, "seconds": s, "peak_rss_mb": m}`` (peak RSS of the process plus that of its
largest DataLoader worker; the timing excludes start-up and the first batch).

Sides:
- ``epoch``: one pretraining epoch of SimCLR on the streamed folder (issue 15's memory figure);
- ``stream``: the streaming loader alone, all views of every image, colour operations included
  (batched, as in training), no model;
- ``pil``: torchvision ``ImageFolder`` + PIL transforms (the same views) in a ``DataLoader``;
- ``step_stream`` / ``step_memory``: the full pretraining step (ResNet-18, small-image stem) on
  the streamed folder, or on the same images decoded once and held in memory.
Sizes: ``SSLBENCH_BENCH_{BATCH,SIZE,WORKERS,BACKBONE}`` (defaults 64, 32, 2, resnet18).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

BATCH = int(os.environ.get("SSLBENCH_BENCH_BATCH", "64"))
SIZE = int(os.environ.get("SSLBENCH_BENCH_SIZE", "32"))
WORKERS = os.environ.get("SSLBENCH_BENCH_WORKERS", "2")
BACKBONE = os.environ.get("SSLBENCH_BENCH_BACKBONE", "resnet18")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + workers) / 1024  # kB on Linux


def make_folder(root: Path, n: int, classes: int = 10, size: int = 40) -> Path:
    """``root/train/<class>/*.jpg`` (and a small ``val/``) of ``n`` random JPEGs, quickly."""
    from torchvision.io import encode_jpeg

    gen = torch.Generator().manual_seed(0)
    tiles = [encode_jpeg(torch.randint(0, 256, (3, size, size + 8), dtype=torch.uint8,
                                       generator=gen)).numpy().tobytes() for _ in range(64)]
    for split, count in (("train", n), ("val", classes)):
        for c in range(classes):
            (root / split / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / split / f"c{i % classes}" / f"{i:06d}.jpg").write_bytes(tiles[i % 64])
    return root


def _engine(method_name: str, backbone: str):
    from sslbench.bench.resolve import optimization
    from sslbench.core.components import MethodTraits
    from sslbench.core.config import RunConfig
    from sslbench.core.plugins import load_plugins
    from sslbench.engine.device import autocast_dtype
    from sslbench.engine.pretrain import Context
    from sslbench.testing import TinyConvNet

    torch.manual_seed(0)
    catalog = load_plugins(autoload=False).catalog
    cls = catalog.get("methods", method_name)
    traits = MethodTraits.of(cls)
    # the memory benchmark trains a tiny backbone: its figure is the loader's, not a model's
    net = TinyConvNet(SIZE) if backbone == "tiny" else catalog.get("backbones", backbone)(SIZE)
    method = traits.build(cls, net, traits.config(), 10)
    method = method.to(memory_format=torch.channels_last)
    cfg = RunConfig(method={"name": method_name}, backbone={"name": backbone},
                    data={"name": "imagefolder"}, pretrain={"epochs": 1, "batch_size": BATCH,
                                                            "log_every": 10})
    device = torch.device("cpu")
    ctx = Context(cfg, optimization(catalog, cfg.pretrain), device,
                  autocast_dtype(device, "auto"), False, list(traits.views), SIZE, MEAN, STD)
    return method, ctx


def _streamed(root: Path):
    from sslbench.builtin.data.imagefolder import FolderOptions, stream_imagefolder

    return stream_imagefolder(root, False, FolderOptions(root=str(root), image_size=SIZE)).train


def epoch(root: Path, backbone: str = BACKBONE) -> dict:
    from sslbench.engine.pretrain import pretrain

    split = _streamed(root)
    method, ctx = _engine("simclr", backbone)
    start = time.perf_counter()
    result = pretrain(method, split, ctx)
    seconds = time.perf_counter() - start
    return {"images": result.steps * BATCH, "seconds": seconds, "images_per_second":
            result.images_per_second}


def step(root: Path, in_memory: bool) -> dict:
    """Pretraining steps on the folder, streamed or decoded once into memory."""
    from sslbench.core.components import Split
    from sslbench.engine.pretrain import pretrain

    split = _streamed(root)
    if in_memory:  # the same images, decoded (shorter side to SIZE, centre crop) and held
        from sslbench.builtin.data.imagefolder import decode_images

        files = [Path(split.source.name(i)) for i in range(len(split))]
        split = Split(decode_images(files, SIZE, int(WORKERS)), split.labels)
    method, ctx = _engine("simclr", BACKBONE)
    result = pretrain(method, split, ctx)
    return {"images": result.steps * BATCH, "images_per_second": result.images_per_second}


def loader_only(root: Path, ours: bool) -> dict:
    """Every view of every image, fully augmented and normalised, no model."""
    from sslbench.core.components import MethodTraits

    # SimCLR's views without the blur: the operations classic.compose_for has (crop, flip,
    # jitter, grayscale), so both sides do the same work
    views = [v.model_copy(update={"blur_p": 0.0}) for v in MethodTraits.of(_simclr()).views]
    batches = _ours(root, views) if ours else _pil(root, views)
    next(batches)  # worker start-up and the first batch are not timed
    start, images = time.perf_counter(), 0
    for n in batches:
        images += n
    return {"images": images, "seconds": time.perf_counter() - start,
            "images_per_second": images / (time.perf_counter() - start)}


def _simclr():
    from sslbench.core.plugins import load_plugins

    return load_plugins(autoload=False).catalog.get("methods", "simclr")


def _ours(root: Path, views):
    from sslbench.engine.augment import BatchAugment
    from sslbench.engine.stream import PretrainStream

    split = _streamed(root)
    steps = len(split) // BATCH
    stream = PretrainStream(split, views, SIZE, 0, BATCH, steps, torch.device("cpu"))
    augment = BatchAugment(views, SIZE, MEAN, STD, torch.Generator().manual_seed(0))
    for crops, _ in stream.epoch(0, 0):
        augment.cropped(crops)
        yield len(crops[0])


def _pil(root: Path, views):
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    from benchmarks.classic import compose_for

    transforms = [compose_for(spec, SIZE) for spec in views for _ in range(spec.count)]
    data = ImageFolder(str(root / "train"), transform=lambda img: [t(img) for t in transforms])
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, drop_last=True,
                        num_workers=int(WORKERS), persistent_workers=int(WORKERS) > 0)
    for views_batch, _ in loader:
        yield len(views_batch[0])


def main(side: str, root: str) -> None:
    os.environ.setdefault("SSLBENCH_WORKERS", WORKERS)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    path = Path(root)
    sides = {"epoch": lambda: epoch(path, "tiny"), "stream": lambda: loader_only(path, True),
             "pil": lambda: loader_only(path, False), "step_stream": lambda: step(path, False),
             "step_memory": lambda: step(path, True)}
    figures = sides[side]()
    print(json.dumps({**figures, "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
