"""The classic pipelines sslbench is compared with: torchvision transforms image by image.

- :func:`classic_engine`: PIL images, a ``transforms.Compose`` per view (SimCLR/SimSiam's CIFAR
  recipe), a ``DataLoader`` with worker processes; its views then go through the very same
  engine step as sslbench's (same method, optimizer, batch, views, device, precision).
- :func:`per_image_v2`: torchvision ``transforms.v2`` applied to one uint8 tensor at a time, the
  baseline of the augmentation-alone benchmark.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from torchvision.transforms import v2

from benchmarks.harness import CIFAR_MEAN, CIFAR_STD, Engine


def compose_for(spec, size: int):
    """``transforms.Compose`` of one :class:`ViewSpec` (crop, flip, jitter, grey, tensor, norm)."""
    ops = [T.RandomResizedCrop(size, scale=spec.scale, ratio=spec.ratio),
           T.RandomHorizontalFlip(spec.flip)]
    if spec.jitter_p > 0:
        ops.append(T.RandomApply([T.ColorJitter(*spec.jitter)], p=spec.jitter_p))
    if spec.grayscale_p > 0:
        ops.append(T.RandomGrayscale(spec.grayscale_p))
    return T.Compose([*ops, T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])


class MultiViewPIL(Dataset):
    """PIL images (as CIFAR-10's torchvision dataset holds them), each returned as all views."""

    def __init__(self, images: torch.Tensor, transforms: list) -> None:
        arrays = images.permute(0, 2, 3, 1).cpu().numpy()
        self.images = [Image.fromarray(np.ascontiguousarray(a)) for a in arrays]
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return [t(self.images[i]) for t in self.transforms]


def endless(loader):
    while True:
        yield from loader


def classic_engine(e: Engine, workers: int, batches: int = 8) -> tuple[Engine, DataLoader]:
    """``e``'s step with its augmentation replaced by the next DataLoader batch of PIL views."""
    batch, size = e.ctx.cfg.pretrain.batch_size, e.ctx.image_size
    transforms = [compose_for(spec, max(4, round(spec.size * size)))  # multi-crop sizes
                  for spec in e.ctx.views for _ in range(spec.count)]
    data = e.images.cpu().repeat(batches, 1, 1, 1)
    on_cuda = e.ctx.device.type == "cuda"
    loader = DataLoader(MultiViewPIL(data, transforms), batch_size=batch, shuffle=True,
                        drop_last=True, num_workers=workers, pin_memory=on_cuda,
                        persistent_workers=workers > 0)
    batches_iter = endless(loader)
    fmt = torch.channels_last if e.ctx.cfg.runtime.channels_last else torch.contiguous_format

    def next_views(_images):  # stands in for BatchAugment inside the engine's step
        return [v.to(e.ctx.device, non_blocking=True).contiguous(memory_format=fmt)
                for v in next(batches_iter)]

    e.loop.augment = next_views
    return e, loader


def per_image_v2(spec, size: int):
    """A callable applying torchvision v2 transforms image by image to a uint8 batch."""
    ops = [v2.RandomResizedCrop(size, scale=spec.scale, ratio=spec.ratio, antialias=True),
           v2.RandomHorizontalFlip(spec.flip)]
    if spec.jitter_p > 0:
        ops.append(v2.RandomApply([v2.ColorJitter(*spec.jitter)], p=spec.jitter_p))
    if spec.grayscale_p > 0:
        ops.append(v2.RandomGrayscale(spec.grayscale_p))
    if spec.blur_p > 0:
        k = max(3, int(0.1 * size) // 2 * 2 + 1)
        ops.append(v2.RandomApply([v2.GaussianBlur(k, spec.blur_sigma)], p=spec.blur_p))
    if spec.solarize_p > 0:
        ops.append(v2.RandomSolarize(128, spec.solarize_p))
    compose = v2.Compose([*ops, v2.ToDtype(torch.float32, scale=True),
                          v2.Normalize(CIFAR_MEAN, CIFAR_STD)])

    def run(images: torch.Tensor) -> list[torch.Tensor]:
        return [compose(img) for img in images]

    return run
