"""Checkpoints: written atomically, loaded as data only (``weights_only=True``)."""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslbench.errors import SSLBenchError


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Temp file, fsync, rename: a crash or a full disk leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load tensors and plain containers only; anything that would run code is refused."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SSLBenchError(f"checkpoint not found: {path}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise SSLBenchError(f"refusing checkpoint {path}: not a valid sslbench checkpoint "
                            f"({type(exc).__name__}: {first})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise SSLBenchError(f"refusing checkpoint {path}: not an sslbench checkpoint")
    return state


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
