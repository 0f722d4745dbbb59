"""Streaming data: encoded images decoded in DataLoader workers, for splits larger than memory.

A worker reads one image's bytes (``StreamSplit.source.read``), decodes them with
``torchvision.io.decode_image`` (libjpeg-turbo, libpng), and takes each view's random resized
crop and flip at decode time (``torchvision.transforms.v2.functional``), so it emits fixed-size
uint8 crops; the colour part of the augmentation then runs batched on the device as for
in-memory data (:meth:`BatchAugment.cropped`). Memory: the loader holds file names and the
batches in flight, never the decoded split.

Exactness: which images a step reads is the in-memory path's order (:mod:`.order`), and each
image's crop parameters come from a generator seeded by (seed, epoch, image index), so the
crops do not depend on the worker or process that decodes them. Resuming at step ``k`` of an
epoch starts the sampler at batch ``k``; nothing is decoded for the skipped batches.

Bad images: a file that cannot be read or decoded stops the run with one line naming it
(``DataError``); the worker returns the error instead of raising, so no worker traceback
reaches the terminal. (We fail rather than skip: a skipped image would change the batch and
break exact resume; a corrupt file in a benchmark dataset is worth fixing, not hiding.)

``SSLBENCH_WORKERS`` sets the number of worker processes (default: the CPU count, at most 8);
results do not depend on it.
"""

from __future__ import annotations

import atexit
import functools
import math
import multiprocessing
import os
import signal
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sslbench.core.components import StreamSplit
from sslbench.core.config import ViewSpec
from sslbench.engine.order import batch_index, epoch_order, sample_seed
from sslbench.errors import DataError, UsageError

EVAL_CROP = 0.875  # test images: shorter side to size / 0.875, centre crop (224 of 256)


def worker_count() -> int:
    text = os.environ.get("SSLBENCH_WORKERS")
    if text is None:
        return min(8, os.cpu_count() or 1)
    if not text.isdigit():
        raise UsageError(f"SSLBENCH_WORKERS must be a whole number, got {text!r}")
    return int(text)


def decode(data: bytes) -> torch.Tensor:
    """Encoded bytes -> uint8 ``[3, H, W]`` RGB."""
    from torchvision.io import ImageReadMode, decode_image

    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return decode_image(raw, mode=ImageReadMode.RGB)


def crop_box(h: int, w: int, spec: ViewSpec, gen: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random resized crop: area fraction in ``spec.scale``,
    aspect ratio log-uniform in ``spec.ratio``, clamped to the image (as the device crop)."""
    u = torch.rand(4, generator=gen).tolist()
    area = (spec.scale[0] + u[0] * (spec.scale[1] - spec.scale[0])) * h * w
    lo, hi = math.log(spec.ratio[0]), math.log(spec.ratio[1])
    ratio = math.exp(lo + u[1] * (hi - lo))
    cw = max(1, min(w, round(math.sqrt(area * ratio))))
    ch = max(1, min(h, round(math.sqrt(area / ratio))))
    return int(u[2] * (h - ch + 1)) if ch < h else 0, int(u[3] * (w - cw + 1)) if cw < w else 0, \
        ch, cw


def random_view(img: torch.Tensor, size: int, spec: ViewSpec, gen) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    top, left, ch, cw = crop_box(img.shape[-2], img.shape[-1], spec, gen)
    out = TF.resized_crop(img, top, left, ch, cw, [size, size], antialias=True)
    flip = torch.rand(1, generator=gen).item() < spec.flip
    return TF.horizontal_flip(out) if flip else out


def centre_view(img: torch.Tensor, size: int) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    out = TF.resize(img, round(size / EVAL_CROP), antialias=True)
    return TF.center_crop(out, [size, size])


class DecodedViews(Dataset):
    """Item ``(epoch, i)`` -> (one uint8 crop per view, label, error text or "")."""

    def __init__(self, split: StreamSplit, views: list[tuple[ViewSpec, int]] | None,
                 size: int, seed: int) -> None:
        self.split, self.views, self.size, self.seed = split, views, size, seed

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, int]):
        epoch, i = key
        label = int(self.split.labels[i])
        try:
            img = decode(self.split.source.read(i))
            if self.views is None:  # evaluation: the deterministic centre crop
                return [centre_view(img, self.size)], label, ""
            gen = torch.Generator().manual_seed(sample_seed(self.seed, epoch, i))
            return [random_view(img, s, spec, gen) for spec, s in self.views], label, ""
        except Exception as exc:  # decoders raise RuntimeError, OSError...; named in one line
            sizes = [self.size] if self.views is None else [s for _, s in self.views]
            blank = [torch.zeros(3, s, s, dtype=torch.uint8) for s in sizes]
            text = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            return blank, label, f"{self.split.source.name(i)}: {text}"


class EpochBatches(Sampler):
    """The batches of one epoch from step ``first`` on, as lists of ``(epoch, index)``; set
    ``epoch`` and ``first`` before each pass (the loader's workers stay alive between)."""

    def __init__(self, n: int, batch_size: int, seed: int, steps: int) -> None:
        self.n, self.batch_size, self.seed, self.steps = n, batch_size, seed, steps
        self.epoch, self.first = 0, 0

    def __len__(self) -> int:
        return self.steps - self.first

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_order(self.n, self.seed, self.epoch)
        for step in range(self.first, self.steps):
            yield [(self.epoch, j) for j in batch_index(order, step, self.batch_size).tolist()]


class IndexBatches(Sampler):
    """Fixed batches of given indices (evaluation, the augmented linear probe's epochs)."""

    def __init__(self, batches: list[list[int]], epoch: int = 0) -> None:
        self.batches, self.epoch = batches, epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            yield [(self.epoch, j) for j in batch]


WORKER_GRACE_S = 60  # a worker sent SIGTERM ends this long after it, if not shut down before
_exiting = None  # a flag shared with the workers: set when this process exits


def _exit_flag():
    """The shared flag, set at this process's exit (before multiprocessing's own at-exit
    ``terminate`` of its children, which runs after: at-exit hooks run last-in first-out)."""
    global _exiting
    if _exiting is None:
        _exiting = multiprocessing.Value("b", 0, lock=False)
        atexit.register(lambda: setattr(_exiting, "value", 1))
    return _exiting


def _quiet_worker(exiting, _: int) -> None:
    """Workers ignore Ctrl-C and outlive SIGTERM: a terminal or Slurm signals the whole process
    group, and the training process, which checkpoints and stops at its next sync point, must
    not find its workers dead first. A SIGTERM from the exiting training process (through
    multiprocessing) ends a worker at once; any other, ``WORKER_GRACE_S`` later at most."""
    def on_term(*_):
        if exiting.value:
            os._exit(0)
        signal.alarm(WORKER_GRACE_S)  # SIGALRM's default action ends the worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, on_term)


def shutdown(iterator) -> None:
    """Stop a DataLoader iterator's worker processes now (not when it is garbage collected)."""
    stop = getattr(iterator, "_shutdown_workers", None)
    if stop is not None:
        stop()


def make_loader(dataset: DecodedViews, sampler: Sampler, device: torch.device,
                persistent: bool = False) -> DataLoader:
    workers = worker_count()
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                      worker_init_fn=functools.partial(_quiet_worker, _exit_flag()),
                      persistent_workers=persistent and workers > 0,
                      pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None)


def device_batches(loader: DataLoader, device: torch.device):
    """``(crops on the device, labels on the device)`` per batch; a bad image is one line.
    Closing the generator (or an error) stops the workers of a non-persistent loader."""
    iterator = iter(loader)
    try:
        for crops, labels, errors in iterator:
            bad = next((e for e in errors if e), None)
            if bad:
                raise DataError(f"unreadable or corrupt image {bad}")
            yield ([c.to(device, non_blocking=True) for c in crops],
                   labels.to(device, non_blocking=True))
    finally:
        if not loader.persistent_workers:
            shutdown(iterator)


class PretrainStream:
    """Pretraining batches of a :class:`StreamSplit`, one epoch at a time."""

    def __init__(self, split: StreamSplit, views: list[ViewSpec], image_size: int,
                 seed: int, batch_size: int, steps: int, device: torch.device) -> None:
        sized = [(spec, max(4, round(spec.size * image_size)))
                 for spec in views for _ in range(spec.count)]
        self.sampler = EpochBatches(len(split), batch_size, seed, steps)
        self.loader = make_loader(DecodedViews(split, sized, image_size, seed), self.sampler,
                                  device, persistent=True)
        self.device = device

    def epoch(self, epoch: int, first: int):
        self.sampler.epoch, self.sampler.first = epoch, first
        return device_batches(self.loader, self.device)

    def close(self) -> None:
        """Stop the persistent workers (at the end of pretraining, or on any error)."""
        _close_loader(self.loader)


def _close_loader(loader: DataLoader) -> None:
    shutdown(getattr(loader, "_iterator", None))
    loader._iterator = None


def eval_batches(split: StreamSplit, size: int, lo: int, hi: int, batch_size: int,
                 device: torch.device):
    """Centre crops of images ``lo..hi-1`` in order, batch by batch, on the device."""
    chunks = [list(range(s, min(s + batch_size, hi))) for s in range(lo, hi, batch_size)]
    loader = make_loader(DecodedViews(split, None, size, 0), IndexBatches(chunks), device)
    for crops, labels in device_batches(loader, device):
        yield crops[0], labels


def augmented_batches(split: StreamSplit, spec: ViewSpec, size: int, order: list[int],
                      batch_size: int, seed: int, epoch: int, device: torch.device):
    """One random resized crop + flip of the images in ``order`` (the linear probe's epoch)."""
    chunks = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    loader = make_loader(DecodedViews(split, [(spec, size)], size, seed),
                         IndexBatches(chunks, epoch), device)
    for crops, labels in device_batches(loader, device):
        yield crops[0], labels
