"""Cost of online monitoring (issue 17): a pretraining step with the online probe, plus the
held-out kNN amortised over the steps between two measurements, as a ratio to the same step
without it, measured in one run (interleaved, median of ``repeats``).

- ``online_efficiency`` = plain step time ÷ monitored step time (target >= 0.95, i.e. the
  monitored step costs at most 1.05× the plain one).

The kNN runs every ``knn_every`` epochs on ``bank + queries`` images (``OnlineConfig``'s
defaults); it is amortised over the steps of that many epochs of a recipe whose epoch has
``SSLBENCH_BENCH_EPOCH_IMAGES`` images (default 10,000: the Fashion-MNIST CPU recipe's subset)
at the benchmark's batch size.
"""

from __future__ import annotations

import os
import time

import torch

from benchmarks import harness
from benchmarks.test_speed import SIZES, _sizes, warm
from sslbench.core.components import Split
from sslbench.core.config import OnlineConfig
from sslbench.engine.evaluate import FrozenEncoder
from sslbench.engine.monitor import MetricsLog
from sslbench.engine.online import OnlineMonitor

EPOCH_IMAGES = int(os.environ.get("SSLBENCH_BENCH_EPOCH_IMAGES", "10000"))


def watched(s: harness.Sizes, cfg: OnlineConfig):
    """An engine whose backbone the online monitor listens to, and its monitored step."""
    e = harness.build_engine("simclr", s)
    n = cfg.bank + cfg.queries + s.batch
    gen = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (n, 3, s.size, s.size), dtype=torch.uint8,
                                generator=gen), torch.randint(0, 10, (n,), generator=gen))
    encoder = FrozenEncoder(e.method.backbone, s.size, harness.CIFAR_MEAN, harness.CIFAR_STD,
                            e.ctx.device, e.ctx.dtype)
    monitor = OnlineMonitor.build(cfg, encoder, split, 10)
    monitor.start()
    index = (~monitor.held_out).nonzero().flatten()[:s.batch]
    labels = split.labels.to(e.ctx.device)

    def step():
        e.step()
        monitor.on_step(index, labels[index])

    return monitor, step


def test_online_monitoring_cost(benchmark):
    s, cfg = SIZES, OnlineConfig()
    plain = harness.build_engine("simclr", s)
    monitor, monitored = watched(s, cfg)
    sides = {"plain": plain.step, "monitored": monitored}
    for fn in sides.values():
        warm(fn)
    times: dict[str, list[float]] = {}

    def one_round():
        start = len(times.get("plain", []))
        for name, sec in harness.interleaved(sides, plain.ctx.device, s.steps, 1,
                                             start).items():
            times.setdefault(name, []).append(sec)

    benchmark.pedantic(one_round, rounds=s.repeats, iterations=1)
    med = {name: sorted(v)[len(v) // 2] for name, v in times.items()}
    start = time.perf_counter()
    monitor.on_epoch_end(cfg.knn_every, 10 * cfg.knn_every, 0, MetricsLog(None))
    knn_seconds = time.perf_counter() - start
    steps_between = cfg.knn_every * max(1, EPOCH_IMAGES // s.batch)
    with_knn = med["monitored"] + knn_seconds / steps_between
    info = dict(method="simclr", **_sizes(s), step_seconds=med["plain"],
                probe_step_seconds=med["monitored"], knn_seconds=knn_seconds,
                knn_every=cfg.knn_every, epoch_images=EPOCH_IMAGES,
                online_efficiency=med["plain"] / with_knn,
                online_overhead=with_knn / med["plain"])
    benchmark.extra_info.update(info)
    assert monitor.last.knn_acc1 is not None
    assert info["online_efficiency"] > 0

