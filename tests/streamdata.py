"""Small generated ImageNet-layout JPEG folders and WebDataset shards for the streaming tests."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torchvision.io import encode_jpeg


def jpeg(c: int, i: int, size: int = 12) -> bytes:
    """A JPEG whose colour says its class (c) and whose noise its index (i)."""
    gen = torch.Generator().manual_seed(1000 * c + i)
    base = torch.tensor([60 + 60 * (c % 3), 200 - 50 * (c % 4), 40 + 70 * (c % 2)])
    img = (base.view(3, 1, 1) + torch.randint(-30, 30, (3, size, size + 4), generator=gen))
    return encode_jpeg(img.clamp(0, 255).to(torch.uint8)).numpy().tobytes()


def image_folder(root: Path, classes: int = 2, train: int = 16, val: int = 4,
                 names: list[str] | None = None) -> Path:
    """``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``."""
    names = names or [f"c{c}" for c in range(classes)]
    for split, n in (("train", train), ("val", val)):
        for c, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (folder / f"{i:05d}.jpg").write_bytes(jpeg(c, i + (0 if split == "train" else
                                                                   10_000)))
    return root


def shards(root: Path, classes: int = 2, train: int = 16, val: int = 4, per_shard: int = 10,
           labels: bool = True) -> Path:
    """``root/train/*.tar`` and ``root/val/*.tar`` written by ``webdataset.ShardWriter``."""
    import webdataset as wds

    for split, n in (("train", train), ("val", val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        with wds.ShardWriter(str(root / split / f"{split}-%06d.tar"), maxcount=per_shard,
                             verbose=0) as sink:
            for i in range(n * classes):
                sample = {"__key__": f"s{i:06d}", "jpg": jpeg(i % classes, i)}
                if labels:
                    sample["cls"] = i % classes
                sink.write(sample)
    return root


def png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (10, 10), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()
