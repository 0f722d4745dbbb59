"""Which images a step reads: pure functions of (seed, epoch, step, rank), shared by the
in-memory and the streaming loaders, so a resumed run needs nothing but the step."""

from __future__ import annotations

import torch

from sslbench.engine import distributed


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch: a pure function of (seed, epoch), so resume needs no state."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=gen)


def batch_index(order: torch.Tensor, step: int, batch_size: int) -> torch.Tensor:
    """This process's disjoint share of global batch ``step`` of the epoch's ``order``."""
    local = batch_size // distributed.world_size()
    start = step * batch_size + distributed.rank() * local
    return order[start:start + local]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one image's decode-time crops in one epoch: the same whichever process or
    worker decodes it, so streamed runs are exact under any worker or process count."""
    return (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index) % 2**63
