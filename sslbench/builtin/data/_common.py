"""Helpers shared by the built-in dataset plugins (not a plugin itself)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sslbench import DataError, Split


def split_from_arrays(images: np.ndarray | torch.Tensor, labels) -> Split:
    """``[N, H, W]`` or ``[N, H, W, C]`` uint8 images -> a :class:`Split` with ``[N, C, H, W]``."""
    images = torch.as_tensor(np.asarray(images))
    if images.dim() == 3:
        images = images.unsqueeze(1)
    elif images.dim() == 4 and images.shape[-1] in (1, 3):
        images = images.permute(0, 3, 1, 2)
    return Split(images.contiguous().to(torch.uint8), torch.as_tensor(np.asarray(labels)).long())


def channel_stats(images: torch.Tensor,
                  chunk: int = 2048) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) std of uint8 images, in [0, 1] units (train only).

    Sums are accumulated in float64 chunk by chunk, so a large split (STL-10, an image folder)
    never needs a float copy of itself in memory.
    """
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].double().div_(255)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    std = ((squares - n * mean.square()) / max(n - 1, 1)).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def missing(name: str, where: Path, files: list[str], hint: str = "") -> DataError:
    listed = ", ".join(files)
    extra = f" ({hint})" if hint else ""
    return DataError(f"{name} not found: put {listed} in {where}{extra}, or allow the download")


def corrupt(name: str, where: Path, exc: Exception) -> DataError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return DataError(f"{name} files in {where} are unreadable or corrupt: {detail}")
