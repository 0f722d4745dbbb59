"""The sides a speed benchmark compares, built from sslbench's own engine.

- ``sslbench``: the engine's real training step (``pretrain._train_step``): batched on-device
  augmentation of a uint8 batch into all views, forward under autocast, loss, backward, optimizer.
- ``bare``: the backbone alone, forward + backward on views already prepared (same count, shapes,
  dtype, memory format): the practical limit of the device.
- ``classic``: the same method and step, its views coming from a torchvision-PIL
  ``transforms.Compose`` pipeline in a ``DataLoader`` (how most SSL code feeds a model);
  ``original`` is that pipeline again at the original project's fp32, NCHW settings.

Sizes come from :class:`Sizes` (environment variables, so ``nox``, ``gpu.sh`` and CI choose them).
Data is synthetic uint8 noise of the dataset's shape: speed does not depend on pixel values.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from dataclasses import dataclass

import torch

from sslbench.core.components import Split
from sslbench.core.config import RunConfig
from sslbench.core.plugins import load_plugins
from sslbench.engine import pretrain as engine
from sslbench.engine.device import autocast, autocast_dtype, peak_memory_mb, reset_peak_memory

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
PRESETS = {  # name -> defaults; each may be overridden by its SSLBENCH_BENCH_* variable
    "cpu": dict(batch=16, size=16, steps=1, repeats=3, workers=2),
    # issue 6's CPU acceptance sizes: ResNet-18 at CIFAR-10 scale, 2 cores (about 6 minutes)
    "acceptance": dict(batch=256, size=32, steps=1, repeats=3, workers=2),
    "smoke": dict(batch=4, size=8, steps=1, repeats=3, workers=0),
    "gpu": dict(batch=512, size=32, steps=10, repeats=5, workers=8),
}


@dataclass(frozen=True)
class Sizes:
    device: str
    batch: int
    size: int
    steps: int  # training steps per timed sample
    repeats: int  # interleaved samples per side; the median is reported
    workers: int  # DataLoader workers of the classic pipeline
    backbone: str
    precision: str
    channels_last: bool
    compile: bool

    @classmethod
    def from_env(cls) -> Sizes:
        env = os.environ.get
        preset = PRESETS[env("SSLBENCH_BENCH_PRESET", "cpu")]

        def num(key):
            return int(env(f"SSLBENCH_BENCH_{key.upper()}", preset[key]))

        return cls(device=env("SSLBENCH_BENCH_DEVICE", "cpu"), batch=num("batch"),
                   size=num("size"), steps=num("steps"), repeats=num("repeats"),
                   workers=num("workers"), backbone=env("SSLBENCH_BENCH_BACKBONE", "resnet18"),
                   precision=env("SSLBENCH_BENCH_PRECISION", "auto"),
                   channels_last=env("SSLBENCH_BENCH_CHANNELS_LAST", "1") == "1",
                   compile=env("SSLBENCH_BENCH_COMPILE", "0") == "1")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, steps: int) -> float:
    """Seconds per call of ``fn``, over ``steps`` calls, device work included."""
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


def interleaved(sides: dict, device: torch.device, steps: int, repeats: int,
                start: int = 0) -> dict:
    """Median seconds per step of each side, sampled in turn so that load drifts hit all alike.

    The order rotates by one side per repeat (from ``start``), so no side is always the one
    timed right after another side's leftover work (e.g. DataLoader workers refilling).
    """
    names = list(sides)
    samples = {name: [] for name in names}
    for r in range(repeats):
        k = (start + r) % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(timed(sides[name], device, steps))
    return {name: statistics.median(s) for name, s in samples.items()}


def peak_memory(fn, device: torch.device) -> float | None:
    """Peak memory (MiB) of one call: allocator peak on CUDA, process peak RSS on CPU.

    On CPU the figure is the whole process's high-water mark (data, all sides, workers
    excluded), so ``fn`` is not run again there.
    """
    if device.type != "cuda":
        return peak_memory_mb(device)
    reset_peak_memory(device)
    fn()
    sync(device)
    return peak_memory_mb(device)


@dataclass
class Engine:
    """One method built the way ``sslbench run`` builds it, with the engine's loop state."""

    method: torch.nn.Module
    loop: object
    ctx: engine.Context
    images: torch.Tensor  # uint8 [N, 3, size, size] on the device

    def step(self) -> None:
        """One engine training step on the next batch (a fixed slice: speed only)."""
        n = self.ctx.cfg.pretrain.batch_size
        self.loop.step = 0  # every step at the first lr: the schedule is not what is timed
        engine._train_step(self.method, self.loop, self.images[:n], None, self.ctx)


def run_config(method: str, s: Sizes) -> RunConfig:
    return RunConfig(
        method={"name": method}, backbone={"name": s.backbone},
        data={"name": "synthetic", "image_size": s.size},
        pretrain={"epochs": 1, "batch_size": s.batch, "optimizer": {"name": "sgd", "lr": 0.03}},
        runtime={"precision": s.precision, "channels_last": s.channels_last,
                 "compile": s.compile})


def build_engine(method_name: str, s: Sizes, seed: int = 0) -> Engine:
    """The method, optimizer, schedule and augmentation of a real run, on synthetic data."""
    from sslbench.bench.resolve import optimization  # what a resolved cell hands the engine
    from sslbench.core.components import MethodTraits

    torch.manual_seed(seed)
    device = torch.device(s.device)
    cfg = run_config(method_name, s)
    catalog = load_plugins(autoload=False).catalog
    method_cls = catalog.get("methods", method_name)
    traits = MethodTraits.of(method_cls)
    backbone = catalog.get("backbones", s.backbone)(s.size)
    method = traits.build(method_cls, backbone, traits.config() if traits.config else None,
                          10).to(device)
    if s.channels_last:
        method = method.to(memory_format=torch.channels_last)
    dtype = autocast_dtype(device, s.precision)
    ctx = engine.Context(cfg, optimization(catalog, cfg.pretrain), device, dtype,
                         traits.needs_labels, list(traits.views), s.size, CIFAR_MEAN, CIFAR_STD)
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (s.batch, 3, s.size, s.size), dtype=torch.uint8,
                           generator=gen)
    loop = engine._setup(method, Split(images, torch.zeros(s.batch, dtype=torch.long)), ctx)
    loop.model = torch.compile(method) if s.compile else method  # as pretrain() does
    method.train()
    return Engine(method, loop, ctx, images.to(device))


def bare_step_fn(e: Engine):
    """Backbone forward + backward on prepared views of the engine's shapes and precision."""
    views = [v.detach().clone() for v in e.loop.augment(e.images[: e.ctx.cfg.pretrain.batch_size])]
    backbone = copy.deepcopy(e.method.backbone)  # its own weights and grads: shares no state
    model = torch.compile(backbone) if e.ctx.cfg.runtime.compile else backbone
    dtype = e.ctx.dtype

    def step():
        with autocast(e.ctx.device, dtype):
            out = sum(model(v).float().sum() for v in views)
        backbone.zero_grad(set_to_none=True)
        out.backward()

    return step


def flops_per_step(e: Engine) -> int:
    """Forward + backward FLOPs of one engine step (``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    saved = e.loop.model
    e.loop.model = e.method  # count the eager graph: the compiled one hides its ops
    try:
        with FlopCounterMode(display=False) as counter:
            e.step()
    finally:
        e.loop.model = saved
    return counter.get_total_flops()


PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0,
                    "4090": 165.0, "3090": 71.0, "V100": 125.0, "B200": 2250.0}


def device_peak_flops(device: torch.device) -> float | None:
    """Dense bf16 tensor-core peak of a known GPU (``SSLBENCH_PEAK_TFLOPS`` overrides)."""
    if os.environ.get("SSLBENCH_PEAK_TFLOPS"):
        return float(os.environ["SSLBENCH_PEAK_TFLOPS"]) * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf * 1e12 for key, tf in PEAK_BF16_TFLOPS.items() if key in name), None)
