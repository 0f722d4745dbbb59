"""One cell of a benchmark: load data, build, pretrain, evaluate, write the record and plots."""

from __future__ import annotations

import inspect
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sslbench.bench import plots, provenance
from sslbench.core.components import DatasetSplits, Split, method_trait
from sslbench.core.config import RunConfig
from sslbench.core.plugins import Plugins
from sslbench.core.records import Cost, Metrics, RunRecord, write_record
from sslbench.engine import device as dev
from sslbench.engine.checkpoint import load_checkpoint
from sslbench.engine.evaluate import evaluate
from sslbench.engine.monitor import MetricsLog, Reporter
from sslbench.engine.pretrain import Context, PretrainResult, pretrain
from sslbench.errors import DataError, SSLBenchError, TrainingError, UsageError

CHECKPOINT = "checkpoint.pt"


def default_data_dir() -> Path:
    return Path(os.environ.get("SSLBENCH_DATA") or Path.home() / ".cache" / "sslbench")


@dataclass
class RunOptions:
    """A run's surroundings: not part of its config, so not part of its identity."""

    device: str = "auto"
    data_dir: Path = field(default_factory=default_data_dir)
    output_dir: Path = Path("runs")
    results_dir: Path = Path("results")
    download: bool = True
    quiet: bool = False
    resume: bool = False


def run_id(cfg: RunConfig) -> str:
    """Stable per cell: the same recipe and seed always map to the same run folder and record."""
    return f"{cfg.method.name}-{cfg.backbone.name}-{cfg.data.name}-s{cfg.seed}-{cfg.hash()[:8]}"


def load_dataset(plugins: Plugins, name: str, opts: RunOptions) -> DatasetSplits:
    factory = plugins.catalog.get("datasets", name)
    try:
        return factory(Path(opts.data_dir).expanduser(), opts.download)
    except SSLBenchError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataError(f"dataset {name!r} could not be loaded: {exc}") from None


def fixed_subset(split: Split, size: int | None) -> Split:
    """The first ``size`` images of a fixed shuffle (seed 0): the same for every run and method."""
    if size is None or size >= len(split):
        return split
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))
    return split.take(order[:size])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_method(plugins: Plugins, cfg: RunConfig, image_size: int, num_classes: int):
    """The backbone from its factory, wrapped by the method with its validated config."""
    method_cls = plugins.catalog.get("methods", cfg.method.name)
    backbone = plugins.catalog.get("backbones", cfg.backbone.name)(
        image_size, **(cfg.backbone.model_extra or {}))
    params = {k: v for k, v in cfg.method.model_dump().items() if k != "name"}
    config_cls = getattr(method_cls, "Config", None)
    kwargs = {}
    if "num_classes" in inspect.signature(method_cls).parameters:
        kwargs["num_classes"] = num_classes
    args = (backbone, config_cls(**params)) if config_cls else (backbone,)
    return method_cls(*args, **kwargs)


def run_cell(cfg: RunConfig, plugins: Plugins, opts: RunOptions) -> RunRecord:
    """Pretrain and evaluate one config; write its record (completed, or failed + reason)."""
    rid = run_id(cfg)
    run_dir = Path(opts.output_dir) / rid
    device = dev.resolve_device(opts.device)
    data = load_dataset(plugins, cfg.data.name, opts)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.model_dump_json(indent=2) + "\n")
    base = dict(run_id=rid, method=cfg.method.name, backbone=cfg.backbone.name,
                dataset=cfg.data.name, seed=cfg.seed, epochs=cfg.pretrain.epochs,
                config=cfg.model_dump(mode="json"), config_hash=cfg.hash(),
                provenance=provenance.collect(dev.device_name(device), plugins.distributions()),
                artifacts={"run_dir": str(run_dir)})
    try:
        metrics, cost = _pretrain_and_evaluate(cfg, plugins, opts, data, device, run_dir)
    except TrainingError as exc:
        write_record(RunRecord(status="failed", reason=str(exc), **base), opts.results_dir)
        raise
    artifacts = {**base.pop("artifacts"), **plots.plot_run(run_dir)}
    if (run_dir / CHECKPOINT).exists():
        artifacts["checkpoint"] = str(run_dir / CHECKPOINT)
    record = RunRecord(status="completed", metrics=metrics, cost=cost, artifacts=artifacts,
                       **base)
    write_record(record, opts.results_dir)
    return record


def _pretrain_and_evaluate(cfg, plugins, opts, data: DatasetSplits, device, run_dir: Path):
    image_size = cfg.data.image_size or data.image_size
    seed_everything(cfg.seed)
    method = build_method(plugins, cfg, image_size, data.num_classes).to(device)
    if cfg.runtime.channels_last:
        method = method.to(memory_format=torch.channels_last)
    dtype = dev.autocast_dtype(device, cfg.runtime.precision)
    reporter, metrics = Reporter(quiet=opts.quiet), MetricsLog(run_dir / "metrics.csv")
    ctx = Context(cfg, plugins.catalog, device, cfg.pretrain.views, image_size, data.mean,
                  data.std, reporter, metrics, run_dir / CHECKPOINT)
    dev.reset_peak_memory(device)
    result = PretrainResult()
    if method_trait(type(method), "pretrains") and cfg.pretrain.epochs > 0:
        resume = _resume_state(run_dir, cfg) if opts.resume else None
        result = pretrain(method, fixed_subset(data.pretrain_split, cfg.data.train_subset), ctx,
                          resume)
    ev = evaluate(method.backbone, fixed_subset(data.train, cfg.eval.train_subset), data.test,
                  data.num_classes, image_size, data.mean, data.std, cfg.eval, plugins.catalog,
                  device, dtype, cfg.seed, metrics, reporter)
    metrics_out = Metrics(linear_acc1=ev.linear_acc1, linear_acc5=ev.linear_acc5,
                          knn_acc1=ev.knn_acc1, final_loss=result.final_loss)
    cost = Cost(pretrain_seconds=result.seconds, eval_seconds=ev.seconds,
                images_per_second=result.images_per_second,
                peak_memory_mb=dev.peak_memory_mb(device), device=str(device))
    return metrics_out, cost


def _resume_state(run_dir: Path, cfg: RunConfig) -> dict | None:
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    state = load_checkpoint(path)
    saved = RunConfig.model_validate_json(state["config"])
    if saved != cfg:
        a, b = saved.model_dump(mode="json"), cfg.model_dump(mode="json")
        diff = sorted(_diff_keys(a, b))
        raise UsageError(f"cannot resume {path}: the config differs in {', '.join(diff)}")
    return state


def _diff_keys(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return [k for key in keys for k in _diff_keys(a.get(key), b.get(key),
                                                       f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if a != b else []
