"""Distributed helpers: torchrun's process group, DDP wrapping, and gathers that pass gradients.

In a single process every function here is the identity / trivial, so methods and the engine
call them unconditionally. ``torchrun --nproc-per-node N -m sslbench run ...`` starts N
processes; :func:`setup` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) and joins the group: nccl on CUDA (one GPU per process,
``cuda:LOCAL_RANK``), gloo on CPU.

Losses that compare samples across the batch (NT-Xent negatives, SupCon positives, Barlow
Twins / VICReg statistics, SwAV's Sinkhorn, MoCo queues) call :func:`gather` on their
embeddings and compute the loss of the whole global batch on every process. Why that gives the
single-process gradient: with ``L`` the global-batch loss (the same on every rank), the backward
of :func:`gather` sums over ranks the gradient each rank's ``L`` sends to this rank's slice, so
rank r's parameters receive ``N * dL/dθ`` through its own samples; DDP averages over the N
ranks, which leaves exactly ``dL/dθ``. A gather whose backward kept only the local slice would
lose the gradient that the other ranks' copies of the loss send through this rank's samples.
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist
from torch import nn

from sslbench.engine.device import resolve_device
from sslbench.errors import UsageError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    return rank() == 0


def backend() -> str | None:
    """``"nccl"`` / ``"gloo"`` in a distributed run, ``None`` in a single process."""
    return str(dist.get_backend()) if is_distributed() else None


def launched_world_size() -> int:
    """The number of processes the launcher (torchrun) started; 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(spec: str = "auto") -> torch.device:
    """This process's device; under torchrun (``WORLD_SIZE`` > 1) also join the process group.

    ``spec`` is ``--device``: ``auto``/``cuda`` take ``cuda:LOCAL_RANK`` under torchrun, ``cpu``
    uses gloo. Joining is idempotent (a matrix runs many cells in one process group).
    """
    device = resolve_device(spec)
    if launched_world_size() <= 1:
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if ":" in spec:
            raise UsageError(f"--device {spec}: under torchrun each process uses "
                             "cuda:LOCAL_RANK; pass --device cuda or auto")
        if local >= torch.cuda.device_count():
            raise UsageError(f"process with LOCAL_RANK {local} has no GPU "
                             f"({torch.cuda.device_count()} visible); lower --nproc-per-node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not is_distributed():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_teardown)
    return device


def _teardown() -> None:
    if is_distributed():
        dist.destroy_process_group()


def wrap(method: nn.Module, device: torch.device, sync_batchnorm: bool = True) -> nn.Module:
    """``method`` in DistributedDataParallel when distributed (else ``method`` itself).

    BatchNorm becomes SyncBatchNorm (statistics over the global batch, as in one process) on
    CUDA only: SyncBatchNorm has no CPU kernel. Conversion happens in place, keeping the same
    parameter objects, so an optimizer built on ``method`` stays valid. Hooks such as
    ``after_step`` must be called on ``method``, not on the wrapper. A method with
    ``on_epoch_start`` may freeze parameters for some epochs (SwAV's prototypes): DDP then looks
    for parameters without a gradient each step instead of waiting for them forever.
    """
    if not is_distributed():
        return method
    if sync_batchnorm and device.type == "cuda":
        _convert_sync_batchnorm(method)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        method, device_ids=ids, find_unused_parameters=hasattr(method, "on_epoch_start"))


def _convert_sync_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0; backward: all-reduce (sum) the full gradient, keep our slice."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(parts, tensor)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # all_reduce works in place
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        n = grad.shape[0] // world_size()
        return grad[rank() * n:(rank() + 1) * n]


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor [n, ...]`` from every process in rank order: ``[N * n, ...]``.

    Identity in a single process. Every process must pass the same shape. Gradients flow back
    to every process's slice: the backward returns the sum over ranks of the gradient reaching
    this rank's slice (see the module docstring for why that is the single-process gradient).
    """
    if not is_distributed():
        return tensor
    return _GatherWithGrad.apply(tensor)


def average(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over processes (a copy; identity in a single process)."""
    if not is_distributed():
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return total / world_size()


def agree_max(value: int) -> int:
    """The largest ``value`` over processes (the value itself in a single process).

    A collective: every process must call it at the same point (the training loop does so at
    its log steps, a pure function of the step, where it reads the loss back anyway).
    """
    if not is_distributed():
        return value
    device = (torch.device("cuda", torch.cuda.current_device()) if backend() == "nccl"
              else torch.device("cpu"))
    flag = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def gather_objects(obj) -> list:
    """Every process's ``obj`` (picklable), in rank order, on every process (``[obj]`` alone)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def shard(n: int) -> tuple[int, int]:
    """This process's contiguous ``[start, stop)`` of ``n`` items (sizes differ by at most 1)."""
    base, extra = divmod(n, world_size())
    r = rank()
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


@torch.no_grad()
def gather_shards(part: torch.Tensor, n: int) -> torch.Tensor:
    """Reassemble ``[n, ...]`` from every process's :func:`shard` of it (no gradient).

    Shards may differ in size by one, so each is padded to the largest before the all-gather.
    """
    if not is_distributed():
        return part
    base, extra = divmod(n, world_size())
    size = base + (1 if extra else 0)
    padded = part.new_zeros((size, *part.shape[1:]))
    padded[:len(part)] = part
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded)
    return torch.cat([p[:base + (1 if r < extra else 0)] for r, p in enumerate(parts)])


def shared_token() -> str:
    """A fresh random token, the same on every process (rank 0's): names one attempt of a
    run, so that processes agree on what they are failing, without comparing timestamps."""
    import uuid

    token = [uuid.uuid4().hex]
    if is_distributed():
        dist.broadcast_object_list(token, src=0)
    return token[0]
