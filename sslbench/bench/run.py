"""One cell of a benchmark: load data, build, pretrain, evaluate, write the record, then plots.

The order is what keeps finished work: the record is written as soon as the evaluation has
given finite, in-range figures, before anything optional (plots); an optional step that fails
is a warning. Records go through :class:`~sslbench.core.store.RecordStore`, so a failed
re-run of a completed cell never replaces its completed record.
"""

from __future__ import annotations

import math
import os
import random
import sys
import tempfile
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sslbench.bench import plots, provenance
from sslbench.bench.cell import Cell
from sslbench.bench.evaluations import check_transfer, eval_data, evaluate_all
from sslbench.bench.loggers import open_loggers
from sslbench.core.components import DatasetSplits, Split
from sslbench.core.config import RunConfig
from sslbench.core.paths import default_data_dir
from sslbench.core.records import Cost, Metrics, RunRecord
from sslbench.core.store import RecordStore
from sslbench.engine import device as dev
from sslbench.engine import distributed
from sslbench.engine.checkpoint import load_checkpoint
from sslbench.engine.evaluate import FrozenEncoder
from sslbench.engine.loggers import LoggerSpec, csv_only
from sslbench.engine.monitor import Reporter
from sslbench.engine.online import OnlineMonitor
from sslbench.engine.pretrain import PretrainResult, pretrain
from sslbench.errors import SSLBenchError, TrainingError, UsageError

CHECKPOINT = "checkpoint.pt"


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
    attempt: str | None = None  # names this attempt in its records (executors set it)
    log: tuple[str, ...] = ()  # loggers besides metrics.csv (--log tensorboard,wandb)
    log_options: dict[str, dict] = field(default_factory=dict)  # logger name -> its options


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


def run_cell(cell: Cell, opts: RunOptions,
             loggers: Sequence[LoggerSpec] | None = None) -> RunRecord:
    """Pretrain and evaluate one cell; write its record (completed, or failed + reason).

    ``loggers``: where its metrics rows go, resolved by the caller
    (:func:`~sslbench.bench.loggers.logger_specs`); ``None`` writes ``metrics.csv`` only.
    """
    run_dir = Path(opts.output_dir) / cell.run_id
    store = RecordStore(opts.results_dir)
    device = distributed.setup(opts.device)  # joins torchrun's process group if launched so
    attempt = opts.attempt or distributed.shared_token()
    if distributed.is_main():  # only rank 0 writes; the others compute
        _prepare_folders(cell.config, run_dir, store.root)  # fail now, not after training
    data = cell.load_data(opts.data_dir, opts.download)
    base = dict(run_id=cell.run_id, method=cell.method.name, backbone=cell.backbone.name,
                dataset=cell.dataset.name, **cell.displays, seed=cell.config.seed,
                epochs=cell.config.pretrain.epochs, config=cell.config.model_dump(mode="json"),
                config_hash=cell.config_hash, attempt=attempt,
                provenance=provenance.collect(dev.device_name(device), cell.plugins),
                eval_dataset=cell.eval_dataset.name if cell.eval_dataset else None,
                artifacts={"run_dir": str(run_dir)})
    # every metrics row goes to metrics.csv and the --log trackers; they get the final record
    sink = open_loggers(list(loggers) if loggers is not None else csv_only(), run_dir,
                        cell.run_id, active=distributed.is_main())
    sink.start(base["config"])
    try:
        metrics, cost, protocols = _pretrain_and_evaluate(cell, opts, data, device, run_dir,
                                                          sink)
    except Exception as exc:
        error = _explain(exc, cell.config)
        sink.finish(RunRecord(status="failed", reason=str(error), **base))
        _record_failure(error, base, store, run_dir, attempt)
    except BaseException:  # Ctrl-C: the trackers' runs end (as stopped), then it goes on up
        sink.close()
        raise
    record = RunRecord(status="completed", metrics=metrics, cost=cost, protocols=protocols,
                       **base)
    if not distributed.is_main():
        return record
    if (run_dir / CHECKPOINT).exists():
        record.artifacts["checkpoint"] = str(run_dir / CHECKPOINT)
    _save(store, record)
    record = _add_plots(store, record, run_dir)
    sink.finish(record)
    return record


def _add_plots(store: RecordStore, record: RunRecord, run_dir: Path) -> RunRecord:
    """Draw the run's curves and name them in its record; a failure here is a warning only:
    the record of the finished run is already written."""
    try:
        drawn = plots.plot_run(run_dir)
    except Exception as exc:  # matplotlib, a full disk, a torn metrics.csv: all optional
        print(f"warning: plots of {record.run_id} not drawn: {type(exc).__name__}: "
              f"{_short(str(exc))}", file=sys.stderr)
        return record
    record = record.model_copy(update={"artifacts": {**record.artifacts, **drawn}})
    try:
        _save(store, record)
    except SSLBenchError as exc:
        print(f"warning: {exc}", file=sys.stderr)
    return record


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


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


def _save(store: RecordStore, record: RunRecord):
    try:
        return store.save(record)
    except OSError as exc:  # e.g. a full disk: the write is atomic, so nothing is half-written
        raise SSLBenchError(
            f"cannot write the record {store.path(record.run_id)}: "
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


def _pretrain_and_evaluate(cell: Cell, opts: RunOptions, data: DatasetSplits, device,
                           run_dir: Path, metrics):
    cfg = cell.config
    image_size = cfg.data.image_size or data.image_size
    # the labelled data first: a few-label subset the data cannot give, or a transfer dataset
    # the backbone cannot take, fails before training
    target = cell.load_eval_data(opts.data_dir, opts.download) or data
    check_transfer(cell, target, image_size)
    labelled = eval_data(cell, target, fixed_subset(target.train, cfg.eval.train_subset))
    seed_everything(cfg.seed)
    method = cell.build_method(image_size, data.num_classes).to(device)
    if cfg.runtime.channels_last:
        method = method.to(memory_format=torch.channels_last)
    dtype = dev.autocast_dtype(device, cell.precision)  # decided once for the whole run
    main = distributed.is_main()  # progress bars, metrics.csv and checkpoints: rank 0 only
    reporter = Reporter(quiet=opts.quiet or not main)
    slow = dev.emulated_bf16_warning(device, dtype)
    if main and slow:  # shown even with --quiet: it can cost an order of magnitude in run time
        print(f"warning: {slow}", file=sys.stderr)
    if main and not opts.resume:  # a fresh run of a cell starts its curves afresh
        (run_dir / "metrics.csv").unlink(missing_ok=True)
    dev.reset_peak_memory(device)
    result = PretrainResult()
    encoder = FrozenEncoder(method.backbone, image_size, data.mean, data.std, device, dtype)
    monitor = None
    if cell.pretrains:
        split = fixed_subset(data.pretrain_split, cfg.data.train_subset)
        monitor = online_monitor(cell, encoder, split, data.num_classes)
        ctx = cell.context(device, dtype, image_size, data.mean, data.std, reporter=reporter,
                           metrics=metrics, checkpoint_path=run_dir / CHECKPOINT if main else None,
                           checkpoint_every=opts.checkpoint_every, online=monitor)
        resume = _resume_state(run_dir, cfg, opts.resume) if opts.resume else None
        result = pretrain(method, split, ctx, resume)
    ev = evaluate_all(cell, encoder, labelled, metrics, reporter)
    figures = {**ev.metrics(), "final_loss": result.final_loss}
    if monitor is not None:
        figures.update(online_knn_acc1=monitor.last.knn_acc1,
                       online_linear_acc1=monitor.last.linear_acc1)
        ev.protocols["online"] = online_protocol(cfg, monitor)
    check_metrics(figures)  # before the record model, which refuses such values outright
    metrics_out = Metrics(**figures)
    cost = Cost(pretrain_seconds=result.seconds, eval_seconds=ev.seconds,
                images_per_second=result.images_per_second,
                peak_memory_mb=dev.peak_memory_mb(device), device=str(device),
                num_devices=distributed.world_size(), backend=distributed.backend(),
                precision=dev.precision_name(dtype))
    return metrics_out, cost, ev.protocols


def online_monitor(cell: Cell, encoder: FrozenEncoder, split: Split,
                   num_classes: int) -> OnlineMonitor | None:
    """The online probe and kNN of this pretraining run, or None: switched off, a pretraining
    split without labels (STL-10's unlabeled images), or one streamed from disk. Under
    ``torch.compile`` the probe is off (it listens to the backbone's forward pass), the kNN
    stays."""
    cfg = cell.config.eval.online
    if not isinstance(split, Split):  # streamed data: not monitored online (yet)
        return None
    if not (cfg.linear or cfg.knn_every) or bool((split.labels < 0).any()) or len(split) < 4:
        return None
    return OnlineMonitor.build(cfg, encoder, split, num_classes,
                               probe=not cell.config.runtime.compile)


def online_protocol(cfg: RunConfig, monitor: OnlineMonitor) -> str:
    o = cfg.eval.online
    return (f"online, during pretraining: a held-out slice of the pretraining split (never the "
            f"test split), {len(monitor.bank)} labelled bank images and {len(monitor.queries)} "
            f"query images the probe never trains on; kNN (k={o.knn_k}) every {o.knn_every} "
            "epochs and a linear probe on detached features (own SGD, lr "
            f"{o.lr:g}); the figures are those of the last epoch")


def check_metrics(figures: dict) -> None:
    """A run is completed only if every figure it reports is finite and in range."""
    for few in figures.get("few_label") or []:
        check_metrics({f"{name}_{few.percent:g}pct": value for name, value in dict(few).items()
                       if name.endswith(("acc1", "acc5"))})
    for name, value in figures.items():
        if value is None or name == "few_label":
            continue
        if name in ("rankme", "feature_std"):
            if not math.isfinite(value) or value < 0:
                raise TrainingError(f"evaluation reported {name} = {value}; the run is not "
                                    "recorded as completed")
            continue
        percent = name != "final_loss"
        if not math.isfinite(value) or percent and not 0.0 <= value <= 100.0:
            phase = "pretraining" if name == "final_loss" else "evaluation"
            why = "not finite" if not math.isfinite(value) else "outside [0, 100]"
            raise TrainingError(f"{phase} reported {name} = {value}, which is {why}; the run "
                                "is not recorded as completed")


def _record_failure(exc: Exception, base: dict, store: RecordStore, run_dir: Path,
                    attempt: str):
    """Write the ``failed`` record for ``exc`` where one is due, then raise.

    A :class:`TrainingError` (non-finite loss, bad figures) is raised by every process at the
    same step (the loss is averaged first), so rank 0 records it. Other errors of a distributed
    run may hit one process only: the first process to claim this attempt's failure records it
    (the others lost their peer), and they end the run as one line. Usage and data errors leave
    no record; any other error of a single process arrives here already turned into a
    :class:`TrainingError` by :func:`_explain`. A failure never replaces a completed record
    (see :class:`RecordStore`), and the message says where the failure went.
    """
    if isinstance(exc, TrainingError):
        if distributed.is_main():
            saved = _save(store, RunRecord(status="failed", reason=str(exc), **base))
            error = type(exc)(str(exc) if saved.outcome == "written" else f"{exc}; {saved.note()}")
            error.recorded = True
            raise error from exc
        raise exc
    if isinstance(exc, SSLBenchError) or not distributed.is_distributed():
        raise exc
    reason = (f"process {distributed.rank()} of {distributed.world_size()} failed: "
              f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    if _claim(run_dir / f".failure-{attempt}"):
        _save(store, RunRecord(status="failed", reason=reason, **base))
    error = TrainingError(reason)
    error.recorded = True  # by this process or the one that claimed the failure first
    raise error from exc


def _claim(marker: Path) -> bool:
    """True for the first process to create ``marker`` (atomic ``O_EXCL``), False after."""
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


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
