"""One cell of a benchmark: load data, build, pretrain, evaluate, write the record and plots."""

from __future__ import annotations

import inspect
import os
import random
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sslbench.bench import plots, provenance
from sslbench.bench.loggers import open_loggers
from sslbench.core.components import DatasetSplits, Split, method_trait
from sslbench.core.config import RunConfig
from sslbench.core.plugins import Plugins
from sslbench.core.records import Cost, Metrics, RunRecord, write_record
from sslbench.engine import device as dev
from sslbench.engine import distributed
from sslbench.engine.checkpoint import load_checkpoint
from sslbench.engine.evaluate import evaluate
from sslbench.engine.monitor import Reporter
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
    resume: bool | str = False  # True or "yes": continue from the checkpoint; "auto": if any
    checkpoint_every: int | None = None  # steps between mid-epoch checkpoints (None: epochs)
    log: tuple[str, ...] = ()  # loggers besides metrics.csv (--log tensorboard,wandb)
    log_options: dict[str, dict] = field(default_factory=dict)  # logger name -> its options


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
    except Exception as exc:  # a dataset plugin's own bug: still one line, naming it
        raise DataError(f"dataset {name!r} could not be loaded: "
                        f"{type(exc).__name__}: {exc}") from exc


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
    device = distributed.setup(opts.device)  # joins torchrun's process group if launched so
    if distributed.is_main():  # only rank 0 writes; the others compute
        _prepare_folders(cfg, run_dir, Path(opts.results_dir))  # fail now, not after training
    data = load_dataset(plugins, cfg.data.name, opts)
    base = dict(run_id=rid, method=cfg.method.name, backbone=cfg.backbone.name,
                dataset=cfg.data.name, seed=cfg.seed, epochs=cfg.pretrain.epochs,
                config=cfg.model_dump(mode="json"), config_hash=cfg.hash(),
                provenance=provenance.collect(dev.device_name(device), plugins.distributions()),
                artifacts={"run_dir": str(run_dir)})
    # every metrics row goes to metrics.csv and the --log trackers; they get the final record
    sink = open_loggers(plugins.catalog, opts.log, run_dir, rid, opts.log_options,
                        active=distributed.is_main())
    sink.start(base["config"])
    started = time.time()
    try:
        metrics, cost = _pretrain_and_evaluate(cfg, plugins, opts, data, device, run_dir, sink)
    except Exception as exc:
        error = _explain(exc, cfg)
        sink.finish(RunRecord(status="failed", reason=str(error), **base))
        _record_failure(error, base, opts.results_dir, started)
    except BaseException:  # Ctrl-C: the trackers' runs end (as stopped), then it goes on up
        sink.close()
        raise
    if not distributed.is_main():
        return RunRecord(status="completed", metrics=metrics, cost=cost, **base)
    artifacts = {**base.pop("artifacts"), **plots.plot_run(run_dir)}
    if (run_dir / CHECKPOINT).exists():
        artifacts["checkpoint"] = str(run_dir / CHECKPOINT)
    record = RunRecord(status="completed", metrics=metrics, cost=cost, artifacts=artifacts,
                       **base)
    _save_record(record, Path(opts.results_dir))
    sink.finish(record)
    return record


def _prepare_folders(cfg: RunConfig, run_dir: Path, results_dir: Path) -> None:
    """Create the run folder with its ``config.json``, and check that both folders take files."""
    for what, folder in (("results folder", results_dir), ("run folder", run_dir)):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            why = ("it is a file" if isinstance(exc, FileExistsError)
                   else exc.strerror or str(exc))
            raise SSLBenchError(f"cannot write to the {what} {folder}: {why}") from None
    try:
        (run_dir / "config.json").write_text(cfg.model_dump_json(indent=2) + "\n")
    except OSError as exc:
        raise SSLBenchError(f"cannot write {run_dir / 'config.json'}: "
                            f"{exc.strerror or exc}") from None


def _save_record(record: RunRecord, results_dir: Path) -> None:
    try:
        write_record(record, results_dir)
    except OSError as exc:  # e.g. a full disk: the write is atomic, so nothing is half-written
        raise SSLBenchError(
            f"cannot write the record {results_dir / (record.run_id + '.json')}: "
            f"{exc.strerror or exc}; any previous record is intact, and the run's checkpoint "
            "is kept (rerun with --resume auto to evaluate and record it)") from None


def _explain(exc: Exception, cfg: RunConfig) -> Exception:
    """One line for an error a single process cannot go on from: out of memory says what to
    lower; any other (a plugin's bug, say) is named with where it was raised. Errors of a
    distributed run are left to :func:`_record_failure`."""
    if isinstance(exc, SSLBenchError) or distributed.is_distributed():
        return exc
    if isinstance(exc, torch.OutOfMemoryError):
        first = str(exc).strip().split(".")[0] or "out of memory"
        error = TrainingError(
            f"{first}: lower --batch-size (now {cfg.pretrain.batch_size}), or "
            f"eval.linear.batch_size (now {cfg.eval.linear.batch_size}) if it ran out while "
            "evaluating")
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        # the innermost frame outside torch: where the plugin (or sslbench) called it wrongly
        frame = next((f for f in reversed(frames) if f"{os.sep}torch{os.sep}" not in f.filename),
                     frames[-1])
        text = " ".join(str(exc).split())[:300]
        error = TrainingError(f"run failed: {type(exc).__name__}: {text} (raised in "
                              f"{frame.name} at {frame.filename}:{frame.lineno})")
    error.__cause__ = exc  # the traceback stays reachable from Python, never printed
    return error


def _pretrain_and_evaluate(cfg, plugins, opts, data: DatasetSplits, device, run_dir: Path,
                           metrics):
    image_size = cfg.data.image_size or data.image_size
    seed_everything(cfg.seed)
    method = build_method(plugins, cfg, image_size, data.num_classes).to(device)
    if cfg.runtime.channels_last:
        method = method.to(memory_format=torch.channels_last)
    dtype = dev.autocast_dtype(device, cfg.runtime.precision)
    main = distributed.is_main()  # progress bars, metrics.csv and checkpoints: rank 0 only
    reporter = Reporter(quiet=opts.quiet or not main)
    slow = dev.emulated_bf16_warning(device, dtype)
    if main and slow:  # shown even with --quiet: it can cost an order of magnitude in run time
        print(f"warning: {slow}", file=sys.stderr)
    if main and not opts.resume:  # a fresh run of a cell starts its curves afresh
        (run_dir / "metrics.csv").unlink(missing_ok=True)
    ctx = Context(cfg, plugins.catalog, device, cfg.pretrain.views, image_size, data.mean,
                  data.std, reporter, metrics, run_dir / CHECKPOINT if main else None)
    ctx.checkpoint_every = opts.checkpoint_every
    dev.reset_peak_memory(device)
    result = PretrainResult()
    if method_trait(type(method), "pretrains") and cfg.pretrain.epochs > 0:
        resume = _resume_state(run_dir, cfg, opts.resume) if opts.resume else None
        result = pretrain(method, fixed_subset(data.pretrain_split, cfg.data.train_subset), ctx,
                          resume)
    ev = evaluate(method.backbone, fixed_subset(data.train, cfg.eval.train_subset), data.test,
                  data.num_classes, image_size, data.mean, data.std, cfg.eval, plugins.catalog,
                  device, dtype, cfg.seed, metrics, reporter, hflip=cfg.data.hflip)
    metrics_out = Metrics(linear_acc1=ev.linear_acc1, linear_acc5=ev.linear_acc5,
                          knn_acc1=ev.knn_acc1, final_loss=result.final_loss)
    cost = Cost(pretrain_seconds=result.seconds, eval_seconds=ev.seconds,
                images_per_second=result.images_per_second,
                peak_memory_mb=dev.peak_memory_mb(device), device=str(device),
                num_devices=distributed.world_size(), backend=distributed.backend(),
                precision=dev.precision_name(dtype))
    return metrics_out, cost


def _record_failure(exc: Exception, base: dict, results_dir: Path, started: float):
    """Write the ``failed`` record for ``exc`` where one is due, then raise.

    A :class:`TrainingError` (non-finite loss) is raised by every process at the same step (the
    loss is averaged first), so rank 0 records it. Other errors of a distributed run may hit one
    process only: that process records them, unless another process already recorded a failure
    of this run (the first failure is the cause; the others lost their peer), and they end the
    run as one line. Usage and data errors leave no record; any other error of a single
    process arrives here already turned into a :class:`TrainingError` by :func:`_explain`.
    """
    if isinstance(exc, TrainingError):
        if distributed.is_main():
            write_record(RunRecord(status="failed", reason=str(exc), **base), results_dir)
        raise exc
    if isinstance(exc, SSLBenchError) or not distributed.is_distributed():
        raise exc
    reason = (f"process {distributed.rank()} of {distributed.world_size()} failed: "
              f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    path = Path(results_dir) / f"{base['run_id']}.json"
    if not (path.exists() and path.stat().st_mtime >= started):
        write_record(RunRecord(status="failed", reason=reason, **base), results_dir)
    raise TrainingError(reason) from exc


def _resume_state(run_dir: Path, cfg: RunConfig, mode: bool | str = True) -> dict | None:
    """The checkpoint to continue from; without one, ``mode="auto"`` starts afresh."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        if mode == "auto":
            return None
        raise UsageError(f"nothing to resume: no checkpoint at {path}; drop --resume, or use "
                         "--resume auto to start afresh when there is none")
    state = load_checkpoint(path)
    try:
        saved = RunConfig.model_validate_json(state["config"])
    except (KeyError, TypeError, ValueError):  # pydantic's ValidationError is a ValueError
        raise SSLBenchError(f"refusing checkpoint {path}: it holds no valid run config") from None
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
