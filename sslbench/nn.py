"""Building blocks that methods share, exported by the public API (``from sslbench import ...``).

* :func:`mlp` — projection and prediction heads;
* :class:`RingBuffer` — a fixed-size FIFO of embeddings on the device (MoCo's queue of negatives,
  NNCLR's support set, SwAV's queue of past embeddings), saved in the checkpoint;
* :func:`fp32_loss` / :func:`full_precision` — a loss computed in real float32 under autocast;
* :func:`gather` — embeddings of the global batch under torchrun (identity in one process),
  :func:`rank` and :func:`world_size` of this process;
* :func:`frozen_copy`, :func:`ema_update`, :func:`cosine_momentum` — momentum targets.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sslbench.ema import cosine_momentum, ema_update, frozen_copy
from sslbench.engine.distributed import gather, rank, world_size

__all__ = ["RingBuffer", "cosine_momentum", "ema_update", "fp32_loss", "frozen_copy",
           "full_precision", "gather", "mlp", "rank", "world_size"]


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    *,
    layers: int = 2,
    last_bn: bool = False,
    last_bn_affine: bool = True,
    bias: bool = True,
) -> nn.Sequential:
    """``layers`` Linear layers with BatchNorm1d + ReLU after each but the last.

    ``last_bn`` adds a BatchNorm1d after the last Linear too (``last_bn_affine=False`` makes it
    non-affine, as SimSiam's projector output); the Linear before a BatchNorm then has no bias,
    since the normalisation would cancel it. ``bias=False`` drops every Linear's bias.

    SimCLR's projector is ``mlp(d, 2048, 128)``; SimSiam's is
    ``mlp(d, 2048, 2048, layers=3, last_bn=True, last_bn_affine=False)``; BYOL's
    ``mlp(d, 4096, 256)``.
    """
    if layers < 1:
        raise ValueError(f"an MLP needs at least one layer, got layers={layers}")
    blocks: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        blocks += [nn.Linear(dim, hidden_dim, bias=bias), nn.BatchNorm1d(hidden_dim),
                   nn.ReLU(inplace=True)]
        dim = hidden_dim
    blocks.append(nn.Linear(dim, out_dim, bias=bias and not last_bn))
    if last_bn:
        blocks.append(nn.BatchNorm1d(out_dim, affine=last_bn_affine))
    return nn.Sequential(*blocks)


class RingBuffer(nn.Module):
    """The newest ``size`` vectors of dimension ``dim``, oldest replaced first, on the device.

    Its three buffers (``items``, ``ptr``, ``filled``) are part of the owner's ``state_dict``,
    so a resumed run continues with the same contents. ``random=True`` starts with random unit
    vectors counted as filled (MoCo's queue starts as random negatives); otherwise the buffer
    starts empty and :attr:`filled` says how many rows hold real vectors (NNCLR masks the rest).
    """

    def __init__(self, size: int, dim: int, *, random: bool = False) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"a ring buffer needs size >= 1 and dim >= 1, got {size}, {dim}")
        items = nn.functional.normalize(torch.randn(size, dim), dim=1) if random else (
            torch.zeros(size, dim))
        self.register_buffer("items", items)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.full((), size if random else 0, dtype=torch.long))

    @property
    def size(self) -> int:
        return self.items.shape[0]

    @torch.no_grad()
    def push(self, vectors: torch.Tensor) -> None:
        """Replace the oldest rows by ``vectors`` ``[N, dim]`` (a batch larger than the buffer
        keeps its last ``size`` rows). Runs on the device: no host sync."""
        vectors = vectors[-self.size:]
        index = (self.ptr + torch.arange(len(vectors), device=self.items.device)) % self.size
        self.items[index] = vectors.to(self.items.dtype)
        self.ptr.copy_((self.ptr + len(vectors)) % self.size)
        self.filled.add_(len(vectors)).clamp_(max=self.size)

    def valid_mask(self) -> torch.Tensor:
        """``[size]`` bools: which rows hold pushed (or initial random) vectors."""
        return torch.arange(self.size, device=self.items.device) < self.filled

    def is_full(self) -> bool:
        """Whether every row holds a vector (reads :attr:`filled`: one host sync)."""
        return int(self.filled) >= self.size


@contextlib.contextmanager
def full_precision():
    """Turn autocast off inside the block, on every device type where it is on.

    Under bf16/fp16 autocast a matmul of float32 tensors still runs in low precision, so
    ``z.float() @ z.float().T`` is not enough to compute logits in float32: autocast must be off.
    """
    with contextlib.ExitStack() as stack:
        for device_type in ("cpu", "cuda"):
            if torch.is_autocast_enabled(device_type):
                stack.enter_context(torch.autocast(device_type, enabled=False))
        yield


def fp32_loss(fn: Callable) -> Callable:
    """Decorator: run a loss function in real float32 under autocast.

    Floating-point tensor arguments (also inside lists and tuples) are cast to float32 and the
    body runs under :func:`full_precision`, so its logits, softmaxes and statistics are float32
    whatever precision the backbone ran in. Gradients flow back through the casts.
    """

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any):
        with full_precision():
            return fn(*_float32(args), **{k: _float32(v) for k, v in kwargs.items()})

    return guarded


def _float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_float32(v) for v in value)
    return value
