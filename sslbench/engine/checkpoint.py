"""Checkpoints: written atomically, loaded as data only (``weights_only=True``).

A checkpoint is a ``torch.save`` of tensors and plain containers. Loading goes through PyTorch's
restricted unpickler, so a file crafted to run code (a pickled object whose ``__reduce__`` calls
a function) is refused before anything runs. Writing goes to a temp file in the same folder,
which is fsynced and renamed over the old one: a crash, a kill or a full disk at any moment
leaves either the previous checkpoint or the new one, never a half-written file.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import stat
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslbench.core.safe_io import is_disk_full, write_failure
from sslbench.errors import SSLBenchError


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Temp file, fsync, rename: a crash or a full disk leaves the previous checkpoint intact.

    A full disk is one line however it surfaced: an ``OSError`` from the write, the fsync or
    the rename, or PyTorch's ``RuntimeError`` about its zip writer with the ``OSError`` inside.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise SSLBenchError(write_failure("checkpoint", path, exc)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) or is_disk_full(exc):  # say so in one line, keep the old
            kept = "; the previous checkpoint is intact" if path.exists() else ""
            raise SSLBenchError(write_failure("checkpoint", path, exc, kept)) from None
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load tensors and plain containers only; anything that would run code is refused."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path):
            raise SSLBenchError(f"refusing checkpoint {path}: it is not a regular file (a "
                                "FIFO or a device would block or never end)")
        with warnings.catch_warnings():  # torch's notes on odd pickles: the refusal says enough
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SSLBenchError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise SSLBenchError(f"checkpoint {path} is a folder, not a file") from None
    except pickle.UnpicklingError as exc:
        blocked = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if blocked:  # the restricted unpickler met a callable: the file would run code
            raise SSLBenchError(
                f"refusing checkpoint {path}: it holds {blocked.group(1)}, which would run "
                "code on load; a checkpoint may hold only tensors and plain containers") from None
        raise SSLBenchError(_not_valid(path, exc)) from None
    except (RuntimeError, EOFError, ValueError, OSError, TypeError, AttributeError) as exc:
        raise SSLBenchError(_not_valid(path, exc)) from None
    if not isinstance(state, dict) or "model" not in state:
        raise SSLBenchError(f"refusing checkpoint {path}: not an sslbench checkpoint")
    return state


def _not_valid(path: Path, exc: BaseException) -> str:
    first = " ".join(str(exc).split())[:200]
    return (f"refusing checkpoint {path}: not a valid sslbench checkpoint "
            f"({type(exc).__name__}: {first})")


def rng_states() -> dict[str, Any]:
    """Every global RNG a run touches (torch, CUDA, numpy, python)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _python_state_to_tensor(random.getstate()),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal.tolist()), gauss_next))


def _python_state_to_tensor(state):
    version, internal, gauss_next = state
    return [version, torch.tensor(internal, dtype=torch.int64), gauss_next]
