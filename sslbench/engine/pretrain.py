"""One pretraining loop for every method.

Per step: take a batch of uint8 images already on the device, augment it there into the views
the method declared, compute ``loss, logs = method(views, labels)`` under autocast, step the
optimizer with the lr of this step. The loss is read back to the host only every
``log_every`` steps (a sync), which is also when a non-finite loss stops the run.

Resume is exact: a checkpoint (every epoch, every ``checkpoint_every`` steps, on Ctrl-C) holds
all the next step reads, this epoch's loss sums included, and the data order is a pure function
of (seed, epoch); a run killed mid-epoch and resumed ends with the same weights and final loss,
bit for bit on CPU, as one never stopped. Ctrl-C and SIGTERM act between two steps, where
state is whole; under torchrun all processes agree on the step (see :func:`_stop_requested`).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from sslbench.core.components import Split, StreamSplit
from sslbench.core.config import RunConfig, ViewSpec
from sslbench.engine import distributed
from sslbench.engine.augment import BatchAugment
from sslbench.engine.checkpoint import rng_states, save_checkpoint, set_rng_states
from sslbench.engine.device import autocast, make_scaler
from sslbench.engine.monitor import MetricsLog, Reporter
from sslbench.engine.online import OnlineMonitor
from sslbench.engine.optim import Optimization, set_lr
from sslbench.engine.order import batch_index, epoch_order
from sslbench.errors import Interrupted, Preempted, SSLBenchError, TrainingError, UsageError

WARMUP_STEPS = 3  # steps excluded from the images/s figure (allocator, caches, autotuning)


@dataclass
class PretrainResult:
    final_loss: float | None = None  # mean loss over the last epoch
    images_per_second: float | None = None  # steady state, source images (all views each)
    seconds: float = 0.0
    steps: int = 0


@dataclass
class Context:
    """What the loop needs besides the model and the data: built objects, never names."""

    cfg: RunConfig
    optimization: Optimization  # the pretraining optimizer and lr schedule, resolved
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype, decided once per run (None: fp32)
    needs_labels: bool
    views: list[ViewSpec]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    reporter: Reporter = field(default_factory=lambda: Reporter(quiet=True))
    metrics: MetricsLog = field(default_factory=lambda: MetricsLog(None))
    checkpoint_path: Path | None = None
    checkpoint_every: int | None = None  # also checkpoint every N steps (mid-epoch)
    online: OnlineMonitor | None = None  # online probe and kNN (engine/online.py), if on


@dataclass
class _Loop:
    """The mutable state of one pretraining run: everything a checkpoint must restore."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    augment: BatchAugment
    lr_at: object
    steps_per_epoch: int
    total_steps: int
    epoch: int = 0
    step: int = 0
    timed_images: int = 0
    timed_seconds: float = 0.0
    final_loss: float | None = None
    model: nn.Module | None = None  # what the step calls: the method, or its DDP wrapper
    epoch_loss: torch.Tensor | None = None  # sum of this epoch's step losses, on the device
    interval_loss: torch.Tensor | None = None  # sum since the last log
    interval: int = 0  # steps since the last log
    clean: torch.Tensor | None = None  # steps of this interval before its first non-finite loss
    signal: int = 0  # SIGINT or SIGTERM seen by this process (0: none)
    signal_time: float = 0.0  # when it was first seen (a repeat within a second is the same)
    stopping: int = 0  # the signal all processes agreed to checkpoint and stop on


def pretrain(method: nn.Module, split: Split, ctx: Context,
             resume: dict | None = None) -> PretrainResult:
    """Pretrain ``method`` on ``split`` for ``cfg.pretrain.epochs``; checkpoint every epoch."""
    start = time.perf_counter()
    loop = _setup(method, split, ctx)
    if resume is not None:
        _restore_or_refuse(loop, method, resume, ctx)
    loop.model = distributed.wrap(method, ctx.device, ctx.cfg.runtime.sync_batchnorm)
    if ctx.cfg.runtime.compile:  # the method's forward (and its backward via AOTAutograd)
        loop.model = torch.compile(loop.model)
    batches = _batches(split, loop, ctx)
    ctx.reporter.start("pretrain", loop.total_steps)
    if ctx.online is not None:
        ctx.online.start()
        if loop.step == 0:  # epoch 0: the untrained backbone, this slice's random floor
            ctx.online.on_epoch_end(0, ctx.cfg.pretrain.epochs, 0, ctx.metrics)
    try:
        with _deferred_interrupt(loop):
            while loop.epoch < ctx.cfg.pretrain.epochs:
                _run_epoch(method, loop, batches, ctx)
                loop.epoch += 1
                if ctx.online is not None:
                    ctx.online.on_epoch_end(loop.epoch, ctx.cfg.pretrain.epochs, loop.step,
                                            ctx.metrics)
                _checkpoint(loop, method, ctx)
                _stop_requested(loop, at_sync=True)
                _stop_if_interrupted(loop, ctx)
    finally:
        ctx.reporter.stop()
        if ctx.online is not None:
            ctx.online.stop()
        getattr(batches, "close", lambda: None)()  # a streamed split's decoding workers
    ips = loop.timed_images / loop.timed_seconds if loop.timed_seconds > 0 else None
    return PretrainResult(loop.final_loss, ips, time.perf_counter() - start, loop.step)


def _setup(method: nn.Module, split: Split, ctx: Context) -> _Loop:
    p = ctx.cfg.pretrain
    if len(split) < p.batch_size:
        raise UsageError(f"pretrain.batch_size {p.batch_size} is larger than the "
                         f"{len(split)} pretraining images; lower --batch-size")
    if p.batch_size % distributed.world_size():
        raise UsageError(f"--batch-size {p.batch_size} is the global batch: it must divide "
                         f"evenly over the {distributed.world_size()} processes")
    steps_per_epoch = len(split) // p.batch_size  # drop the last partial batch
    total = steps_per_epoch * p.epochs
    # each process draws its own augmentations (rank 0 draws those of a single-process run)
    gen = torch.Generator(ctx.device).manual_seed(_rank_seed(ctx.cfg.seed))
    augment = BatchAugment(ctx.views, ctx.image_size, ctx.mean, ctx.std, gen,
                           ctx.cfg.runtime.channels_last)
    optimizer = ctx.optimization.build_optimizer(method)
    lr_at = ctx.optimization.build_schedule(total, steps_per_epoch)
    return _Loop(optimizer, make_scaler(ctx.device, ctx.dtype), augment, lr_at, steps_per_epoch,
                 total)


def _rank_seed(seed: int) -> int:
    return seed if distributed.rank() == 0 else (seed * 1_000_003 + distributed.rank()) % 2**63


_batch_index = batch_index  # the name tests/test_distributed.py reads


def _batches(split: Split | StreamSplit, loop: _Loop, ctx: Context):
    """``batches(epoch, first)``: the ``(x, labels, index, batch_labels)`` of the epoch's steps
    from ``first`` on; ``x`` is a uint8 batch (in memory) or the list of its decoded view crops
    (streamed); ``labels`` are passed to the method (None unless it needs them); ``index`` and
    ``batch_labels`` (in memory only) are what the online probe trains on."""
    p, labels_too = ctx.cfg.pretrain, ctx.needs_labels
    if isinstance(split, StreamSplit):
        from sslbench.engine.stream import PretrainStream

        stream = PretrainStream(split, ctx.views, ctx.image_size, ctx.cfg.seed, p.batch_size,
                                loop.steps_per_epoch, ctx.device)

        def streamed(epoch: int, first: int):
            for x, y in stream.epoch(epoch, first):  # no online monitor on streamed data
                yield x, y if labels_too else None, None, None
        streamed.close = stream.close
        return streamed
    images, labels = split.images.to(ctx.device), split.labels.to(ctx.device)

    def in_memory(epoch: int, first: int):
        order = epoch_order(len(images), ctx.cfg.seed, epoch).to(ctx.device)
        for i in range(first, loop.steps_per_epoch):
            index = batch_index(order, i, p.batch_size)
            batch_labels = labels[index]  # the online probe's targets, labels_too or not
            yield images[index], batch_labels if labels_too else None, index, batch_labels
    return in_memory


def _run_epoch(method, loop: _Loop, batches, ctx: Context) -> None:
    p = ctx.cfg.pretrain
    method.train()
    if hasattr(method, "on_epoch_start"):
        method.on_epoch_start(loop.epoch, p.epochs)
    first = loop.step - loop.epoch * loop.steps_per_epoch  # > 0: resumed mid-epoch
    if first == 0 or loop.epoch_loss is None:  # mid-epoch, the sums come from the checkpoint
        loop.epoch_loss = torch.zeros((), device=ctx.device)
        loop.interval_loss, loop.interval = torch.zeros((), device=ctx.device), 0
    loop.clean = torch.zeros((), dtype=torch.long, device=ctx.device)
    tick = time.perf_counter()
    for i, (x, y, index, batch_labels) in zip(range(first, loop.steps_per_epoch),
                                              batches(loop.epoch, first), strict=True):
        loss, logs = _train_step(method, loop, x, y, ctx)
        if ctx.online is not None and index is not None:
            ctx.online.on_step(index, batch_labels)
        loop.epoch_loss += loss
        loop.interval_loss += loss
        loop.clean += torch.isfinite(loop.interval_loss)  # a NaN or inf sum stays non-finite
        loop.step += 1
        loop.interval += 1
        last = i == loop.steps_per_epoch - 1
        # a log (one sync) right at the end of warm-up, so no timed interval contains it
        if loop.step % p.log_every == 0 or loop.step == WARMUP_STEPS or last:
            tick = _log(loop, loop.interval_loss / loop.interval, logs, loop.interval, tick, ctx)
            loop.interval_loss.zero_()
            loop.clean.zero_()
            loop.interval = 0
        if not last:  # the epoch's end checkpoints (and stops) in pretrain()
            if _stop_requested(loop, loop.step % p.log_every == 0) or (
                    ctx.checkpoint_every and loop.step % ctx.checkpoint_every == 0):
                _checkpoint(loop, method, ctx)
            _stop_if_interrupted(loop, ctx)
    mean_loss = loop.epoch_loss / loop.steps_per_epoch
    loop.final_loss = distributed.average(mean_loss).item()


def _train_step(method, loop: _Loop, x, y, ctx: Context):
    lr = loop.lr_at(loop.step)
    set_lr(loop.optimizer, lr)
    views = loop.augment(x) if isinstance(x, torch.Tensor) else loop.augment.cropped(x)
    with autocast(ctx.device, ctx.dtype):
        loss, logs = (method if loop.model is None else loop.model)(views, y)
    loop.optimizer.zero_grad(set_to_none=True)
    loop.scaler.scale(loss).backward()
    loop.scaler.step(loop.optimizer)
    loop.scaler.update()
    if hasattr(method, "after_step"):
        with torch.no_grad():
            method.after_step(loop.step, loop.total_steps)
    return loss.detach().float(), logs


def _log(loop: _Loop, mean_loss, logs, steps: int, tick: float, ctx: Context) -> float:
    """Read the loss back (one sync), stop on non-finite values, log and report.

    The loss is averaged over processes first, so every process stops at the same step.
    """
    loss = distributed.average(mean_loss).item()
    if not math.isfinite(loss):
        first = loop.step - steps + int(loop.clean) + 1  # the step whose loss was not finite
        bad = [k for k, v in logs.items() if not torch.isfinite(v).all()] or ["loss"]
        hint = "lower the learning rate" + (
            "" if ctx.dtype is None else " or use --set runtime.precision=fp32")
        raise TrainingError(
            f"non-finite loss at step {first}, epoch {loop.epoch + 1} ({', '.join(bad)} not "
            f"finite at the step logged last, {loop.step}); {hint}")
    now = time.perf_counter()
    images = steps * ctx.cfg.pretrain.batch_size
    ips = images / max(now - tick, 1e-9)
    if loop.step > WARMUP_STEPS:
        loop.timed_images += images
        loop.timed_seconds += now - tick
    lr = loop.lr_at(loop.step - 1)
    ctx.metrics.write(phase="pretrain", epoch=loop.epoch + 1, step=loop.step, loss=loss, lr=lr,
                      images_per_second=ips)
    ctx.reporter.update(loop.step, f"pretrain {loop.epoch + 1}/{ctx.cfg.pretrain.epochs}",
                        loss=loss, lr=lr, **{"img/s": round(ips, 1)})
    return time.perf_counter()


def _checkpoint(loop: _Loop, method: nn.Module, ctx: Context) -> None:
    # every process's own random streams (its augmentations differ from rank 0's), so that a
    # resumed torchrun run continues each process exactly; called by all processes alike
    ranks = distributed.gather_objects(_rank_rng(loop))
    if ctx.checkpoint_path is not None:  # rank 0 only under torchrun
        save_checkpoint({**_state(loop, method, ctx), "ranks": ranks}, ctx.checkpoint_path)


def _rank_rng(loop: _Loop) -> dict:
    return {"augment_rng": loop.augment.generator.get_state(), "rng": rng_states()}


@contextlib.contextmanager
def _deferred_interrupt(loop: _Loop):
    """While training, Ctrl-C (SIGINT) and SIGTERM only set ``loop.signal``; the loop
    checkpoints and stops at the next step boundary. A second Ctrl-C raises at once; a repeat
    within a second does not (torchrun forwards the terminal's Ctrl-C to processes that got it
    already), nor does a second SIGTERM (Slurm signals every process, torchrun forwards again)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def on_signal(signum, frame):
        now = time.monotonic()
        if signum == signal.SIGINT and loop.signal and now - loop.signal_time > 1.0:
            raise KeyboardInterrupt
        if not loop.signal:
            loop.signal_time = now
        if signum == signal.SIGTERM or not loop.signal:  # a pre-emption outranks a Ctrl-C
            loop.signal = signum

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _stop_requested(loop: _Loop, at_sync: bool) -> bool:
    """Whether to checkpoint and stop at this step boundary.

    In one process: whenever a signal has been seen. Under torchrun the signal reaches the
    processes at slightly different steps, and a process that stopped alone would leave the
    others waiting in their next all-reduce; so they agree (an all-reduce of the flag) at the
    sync points only: every ``log_every`` steps, where the loss is read back anyway, and at each
    epoch's end. ``at_sync`` must be a pure function of the step, the same on every process.
    """
    if not distributed.is_distributed():
        loop.stopping = loop.signal
    elif at_sync:
        loop.stopping = distributed.agree_max(loop.signal)
    return bool(loop.stopping)


def _stop_if_interrupted(loop: _Loop, ctx: Context) -> None:
    if not loop.stopping:
        return
    distributed.barrier()  # rank 0's checkpoint is on disk before any process exits
    saved = (f"checkpoint saved to {ctx.checkpoint_path}; continue with --resume"
             if ctx.checkpoint_path is not None else "no checkpoint on this process")
    where = f"at step {loop.step} of {loop.total_steps}: {saved}"
    if loop.stopping == signal.SIGTERM:
        raise Preempted(f"terminated by SIGTERM {where}")
    raise Interrupted(f"interrupted {where}")


def _state(loop: _Loop, method: nn.Module, ctx: Context) -> dict:
    return {
        "model": method.state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "scaler": loop.scaler.state_dict(),
        "augment_rng": loop.augment.generator.get_state(),
        "rng": rng_states(),
        "epoch": loop.epoch,
        "step": loop.step,
        "final_loss": loop.final_loss,
        "epoch_loss": loop.epoch_loss,  # mid-epoch: the sums the final loss is made of
        "interval": [loop.interval_loss, loop.interval],
        "timing": [loop.timed_images, loop.timed_seconds],
        "config": ctx.cfg.model_dump_json(),
        "online": ctx.online.state_dict() if ctx.online is not None else None,
    }


def _restore_or_refuse(loop: _Loop, method: nn.Module, state: dict, ctx: Context) -> None:
    try:
        _restore(loop, method, state, ctx.device)
        if ctx.online is not None and state.get("online"):
            ctx.online.load_state_dict(state["online"])
    except (KeyError, IndexError, RuntimeError, TypeError, ValueError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise SSLBenchError(f"cannot resume from {ctx.checkpoint_path}: the checkpoint does "
                            f"not fit this run ({type(exc).__name__}: {first})") from None


def _restore(loop: _Loop, method: nn.Module, state: dict, device: torch.device) -> None:
    method.load_state_dict(state["model"])
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.scaler.load_state_dict(state["scaler"])
    ranks = state.get("ranks") or []
    own = ranks[distributed.rank()] if len(ranks) == distributed.world_size() else state
    loop.augment.generator.set_state(own["augment_rng"])  # else another process count: rank 0's
    set_rng_states(own["rng"])
    loop.epoch, loop.step, loop.final_loss = state["epoch"], state["step"], state["final_loss"]
    loop.timed_images, loop.timed_seconds = state["timing"]
    if state.get("epoch_loss") is not None:
        loop.epoch_loss = state["epoch_loss"].to(device)
        interval_loss, loop.interval = state["interval"]
        loop.interval_loss = interval_loss.to(device)
