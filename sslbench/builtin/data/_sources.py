"""Encoded-image sources for streamed splits (``StreamSplit.source``): files and tar shards.

Both pickle small (file names, member offsets) and open files only when an image is read, so
each DataLoader worker reads its own images.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

from sslbench import DataError

IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp", "ppm", "bmp")


@dataclass
class FileSource:
    """One image file per item."""

    files: list[Path]

    def __len__(self) -> int:
        return len(self.files)

    def read(self, i: int) -> bytes:
        return Path(self.files[i]).read_bytes()

    def name(self, i: int) -> str:
        return str(self.files[i])


@dataclass
class TarSource:
    """Images inside uncompressed tar shards, by (shard, offset, size, key): a random access
    read is one ``seek`` + ``read`` of the member's bytes."""

    shards: list[Path]
    members: list[tuple[int, int, int, str]]

    def __len__(self) -> int:
        return len(self.members)

    def read(self, i: int) -> bytes:
        shard, offset, size, _ = self.members[i]
        with open(self.shards[shard], "rb") as f:
            f.seek(offset)
            return f.read(size)

    def name(self, i: int) -> str:
        shard, _, _, key = self.members[i]
        return f"{self.shards[shard]}:{key}"


def sample_key(member: str) -> tuple[str, str]:
    """WebDataset's convention: ``dir/key.ext.more`` is sample ``dir/key``, field ``ext.more``."""
    folder, _, base = member.rpartition("/")
    key, _, ext = base.partition(".")
    return (f"{folder}/{key}" if folder else key), ext.lower()


def index_shards(shards: list[Path]) -> tuple[TarSource, list[int]]:
    """Index WebDataset-style shards (``key.jpg`` + ``key.cls`` per sample): member offsets of
    the images and the labels, read from the tar headers and the tiny ``.cls`` members only.

    Python's ``tarfile`` reads the headers (webdataset's own reader only streams a shard from
    its start; exact resume needs random access). Every image must have a ``.cls`` label.
    """
    members, labels = [], []
    for s, shard in enumerate(shards):
        images, classes = {}, {}
        try:
            with tarfile.open(shard, "r:") as tar:
                for m in tar:
                    if not m.isfile():
                        continue
                    key, ext = sample_key(m.name)
                    if ext in IMAGE_SUFFIXES:
                        images[key] = (s, m.offset_data, m.size, key)
                    elif ext == "cls":
                        classes[key] = tar.extractfile(m).read()
        except (tarfile.TarError, OSError) as exc:
            raise DataError(f"shard {shard} is not a readable uncompressed tar file: "
                            f"{' '.join(str(exc).split())}") from None
        for key in images:  # in the order the shard stores them
            if key not in classes:
                raise DataError(f"shard {shard}: sample {key!r} has no .cls label (each "
                                f"sample needs {key}.cls holding its class number)")
            labels.append(_label(classes[key], shard, key))
            members.append(images[key])
    return TarSource(list(shards), members), labels


def _label(raw: bytes, shard: Path, key: str) -> int:
    text = raw.decode("utf-8", "replace").strip()
    if not text.isdigit():
        raise DataError(f"shard {shard}: {key}.cls holds {text[:20]!r}, not a class number")
    return int(text)
