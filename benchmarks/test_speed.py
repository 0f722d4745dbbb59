"""Speed of sslbench's pretraining step, as ratios measured in the same run.

Run with ``nox -s bench`` (or ``pytest benchmarks/test_speed.py``). Sizes come from
``SSLBENCH_BENCH_*`` variables (see ``harness.Sizes``). Every figure goes into the benchmark's
``extra_info``; the ratios are what ``compare.py`` checks against ``baseline.json``:

- ``efficiency`` = bare backbone step time / sslbench step time (1.0: augmentation, heads, loss
  and optimizer cost nothing; target >= 0.90);
- ``vs_classic`` = sslbench images/s / classic PIL + DataLoader images/s, same precision and
  memory format, so only the data path differs (target >= 1.15 on CPU);
- ``vs_original`` = the same against the classic pipeline at the original project's settings
  (fp32, NCHW): what moving from the seed's scripts to sslbench gains (no target);
- ``aug_speedup`` = batched augmentation images/s / per-image torchvision v2 images/s (>= 10).

Each side is timed in turn (interleaved), ``repeats`` times, and the median taken, so that the
load of a shared machine drifts over all sides alike.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from benchmarks import classic, harness
from sslbench.engine.device import autocast_dtype, precision_name

SIZES = harness.Sizes.from_env()
# gpu.sh adds byol; any registered method name works. SwAV is the multi-crop one (2 global +
# 6 small views, each group augmented as one batch)
METHODS = os.environ.get("SSLBENCH_BENCH_METHODS", "simsiam,simclr,swav").split(",")


def warm(fn, n: int = 1) -> None:
    """Calls excluded from timing: allocator growth, oneDNN/cuDNN plans, compilation."""
    for _ in range(n):
        fn()


@pytest.mark.parametrize("method", METHODS)
def test_training_step(benchmark, method):
    s = SIZES
    torch.set_num_threads(torch.get_num_threads())  # as configured; recorded below
    ours = harness.build_engine(method, s)
    bare = harness.bare_step_fn(ours)
    theirs, loader = classic.classic_engine(harness.build_engine(method, s, seed=1), s.workers)
    # the same classic pipeline at the original project's settings (fp32, NCHW): what a user of
    # the seed scripts gets today, not only the data path changed
    seed_like = dataclasses.replace(s, precision="fp32", channels_last=False)
    original, original_loader = classic.classic_engine(
        harness.build_engine(method, seed_like, seed=2), s.workers)
    sides = {"sslbench": ours.step, "bare": bare, "classic": theirs.step,
             "original": original.step}
    for fn in sides.values():
        warm(fn, 3 if s.compile else 1)
    times = {}

    def one_round():  # what pytest-benchmark times: one interleaved sample of every side
        start = len(times.get("sslbench", []))  # rotate the order each round
        t = harness.interleaved(sides, ours.ctx.device, s.steps, 1, start)
        for name, sec in t.items():
            times.setdefault(name, []).append(sec)

    benchmark.pedantic(one_round, rounds=s.repeats, iterations=1)
    med = {name: sorted(v)[len(v) // 2] for name, v in times.items()}
    ips = {name: s.batch / sec for name, sec in med.items()}
    flops = harness.flops_per_step(ours)
    peak = harness.device_peak_flops(ours.ctx.device)
    info = dict(method=method, **_sizes(s), num_views=ours.loop.augment.num_views,
                images_per_second=ips["sslbench"], bare_images_per_second=ips["bare"],
                classic_images_per_second=ips["classic"],
                step_seconds=med["sslbench"], bare_step_seconds=med["bare"],
                classic_step_seconds=med["classic"],
                original_images_per_second=ips["original"],
                peak_memory_mb=harness.peak_memory(ours.step, ours.ctx.device),
                bare_peak_memory_mb=harness.peak_memory(bare, ours.ctx.device),
                flops_per_step=flops, flops_per_second=flops / med["sslbench"],
                mfu=flops / med["sslbench"] / peak if peak else None,
                efficiency=med["bare"] / med["sslbench"],
                vs_classic=med["classic"] / med["sslbench"],
                vs_original=med["original"] / med["sslbench"])
    benchmark.extra_info.update(info)
    del loader, original_loader  # persistent workers end with them
    assert info["efficiency"] > 0 and info["vs_classic"] > 0 and flops > 0


@pytest.mark.parametrize("method", ["simsiam"])
def test_augmentation(benchmark, method):
    """Batched on-device augmentation vs torchvision v2 image by image on the host, all views."""
    s = SIZES
    e = harness.build_engine(method, s)
    images = e.images[: s.batch]
    per_image = [classic.per_image_v2(spec, s.size) for spec in e.ctx.views
                 for _ in range(spec.count)]
    host = images.cpu()  # per-image transforms run where they usually do: on the host
    sides = {"batched": lambda: e.loop.augment(images),
             "per_image": lambda: [f(host) for f in per_image]}
    for fn in sides.values():
        warm(fn)
    times = {}

    def one_round():
        start = len(times.get("batched", []))
        for name, sec in harness.interleaved(sides, e.ctx.device, 1, 1, start).items():
            times.setdefault(name, []).append(sec)

    benchmark.pedantic(one_round, rounds=max(3, s.repeats), iterations=1)
    med = {name: sorted(v)[len(v) // 2] for name, v in times.items()}
    info = dict(method=method, **_sizes(s), num_views=e.loop.augment.num_views,
                images_per_second=s.batch / med["batched"],
                per_image_images_per_second=s.batch / med["per_image"],
                peak_memory_mb=harness.peak_memory(sides["batched"], e.ctx.device),
                aug_speedup=med["per_image"] / med["batched"])
    benchmark.extra_info.update(info)
    assert info["aug_speedup"] > 0


def _sizes(s: harness.Sizes) -> dict:
    return dict(device=s.device, batch=s.batch, image_size=s.size, backbone=s.backbone,
                precision=precision_name(autocast_dtype(torch.device(s.device), s.precision)),
                channels_last=s.channels_last, compile=s.compile,
                threads=torch.get_num_threads(), workers=s.workers)
