"""Distributed helpers. In a single process every function here is the identity / trivial, so
methods can call them unconditionally.

Losses that compare samples across the batch (NT-Xent negatives, SupCon positives, Barlow
Twins / VICReg statistics, SwAV's Sinkhorn, MoCo queues) must call :func:`gather` on their
embeddings, so an N-process run computes the same loss as one process with the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    return rank() == 0


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0 (identity in a single process).

    Gradients flow back to every process's slice (to be completed for multi-process runs).
    """
    if not is_distributed():
        return tensor
    raise NotImplementedError("multi-process gather is not implemented yet")
