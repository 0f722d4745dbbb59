"""Linear / kNN evaluation of a finished run's checkpoint (the original's ``main_linear.py``).

``evaluate_run(path, ...)`` takes a run folder (``runs/<run-id>/``: ``config.json`` +
``checkpoint.pt``) or a checkpoint file (its config is stored inside), rebuilds the method with
the run's config, loads the weights (``weights_only``), and evaluates the frozen backbone with the
run's ``eval`` section, changed only by the caller's ``eval.*`` overrides.

The result is an *eval record* written atomically beside the checkpoint as
``eval-<hash>.json`` (with the linear probe's per-epoch figures in ``eval-<hash>.csv``), where
``<hash>`` identifies the evaluation settings: evaluating the same checkpoint with the same
settings again replaces that record, other settings add another.

The run's own record in the results registry (when there is one) gains the figures that only an
evaluation measures (fine-tune, few-label, RankMe and feature std: ``LATER_FIGURES``), with their
protocols, through :meth:`~sslbench.core.store.RecordStore.add_evaluations`: atomically, and
never changing its linear, kNN or pretraining figures (they describe the run as it was run).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sslbench.bench.cell import Cell
from sslbench.bench.evaluations import Figures, check_transfer, eval_data, evaluate_all
from sslbench.bench.resolve import cell_from_config, parse_sets, validate
from sslbench.bench.run import CHECKPOINT, RunOptions, fixed_subset, seed_everything
from sslbench.core import safe_io
from sslbench.core.config import RunConfig, deep_merge, dotted_to_nested
from sslbench.core.plugins import Plugins
from sslbench.core.records import LATER_FIGURES, PROTOCOL, Metrics, atomic_write_text
from sslbench.core.store import RecordStore
from sslbench.engine import device as dev
from sslbench.engine.checkpoint import load_checkpoint
from sslbench.engine.evaluate import FrozenEncoder
from sslbench.engine.monitor import MetricsLog, Reporter
from sslbench.errors import SSLBenchError, UsageError

CONFIG = "config.json"


class EvalRecord(BaseModel):
    """One evaluation of one checkpoint: ``<checkpoint folder>/eval-<eval_hash>.json``."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = 2  # 2: fine-tune, few-label and diagnostics figures; protocols
    run_id: str
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    method: str
    backbone: str
    dataset: str
    eval_dataset: str | None = None  # transfer: the dataset evaluated on
    seed: int
    checkpoint: str | None  # None: the untrained ``random`` floor, rebuilt from its seed
    checkpoint_epoch: int  # pretraining epochs done when the checkpoint was written
    pretrain_epochs: int  # epochs the run was configured for
    variant: Literal["cached", "augmented"]
    eval: dict[str, Any]  # the resolved ``eval`` section used
    eval_hash: str
    metrics: Metrics
    eval_seconds: float
    device: str
    protocol: str = PROTOCOL
    protocols: dict[str, str] = {}


def eval_hash(cfg: RunConfig) -> str:
    text = json.dumps(cfg.eval.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def locate(path: Path) -> tuple[Path, RunConfig, Path, dict | None]:
    """(folder for the eval record, the run's config, checkpoint path, its state or None)."""
    path = Path(path)
    if path.is_dir():
        if not (path / CONFIG).is_file():
            raise UsageError(f"{path} is not a run folder: it has no {CONFIG}")
        cfg = read_config(safe_io.read_text(path / CONFIG, "run config"), path / CONFIG)
        ckpt = path / CHECKPOINT
        return path, cfg, ckpt, load_checkpoint(ckpt) if ckpt.exists() else None
    if not path.exists():
        raise UsageError(f"no run folder or checkpoint at {path}")
    state = load_checkpoint(path)
    if "config" in state:
        return path.parent, read_config(state["config"], path), path, state
    if (path.parent / CONFIG).is_file():
        config = read_config(safe_io.read_text(path.parent / CONFIG, "run config"), path.parent)
        return path.parent, config, path, state
    raise SSLBenchError(f"checkpoint {path} carries no config and has no {CONFIG} beside it")


def read_config(text: str, where: Path) -> RunConfig:
    try:
        return RunConfig.model_validate_json(text)
    except ValidationError as exc:
        first = " ".join(str(exc).split("\n")[:2])
        raise SSLBenchError(f"cannot read the run config in {where}: {first}") from None


def with_eval_overrides(cfg: RunConfig, plugins: Plugins, sets: list[str],
                        overrides: dict[str, Any]) -> Cell:
    """The run's cell with its ``eval`` section changed by ``--set eval.*`` and flags."""
    layer = parse_sets(sets)
    others = sorted(set(layer) - {"eval"})
    if others:
        raise UsageError(f"sslbench eval only changes eval.* settings, got --set {others[0]}.…")
    flags = [dotted_to_nested(k, v) for k, v in overrides.items() if v is not None]
    raw = deep_merge(cfg.model_dump(mode="json"), layer, *flags)
    return cell_from_config(plugins.catalog, validate(RunConfig, raw))


def evaluate_run(path: Path, plugins: Plugins, opts: RunOptions, sets: list[str] = (),
                 overrides: dict[str, Any] | None = None) -> tuple[EvalRecord, Path]:
    """Evaluate the checkpoint at ``path``; write and return its eval record and its path."""
    folder, cfg, ckpt, state = locate(path)
    rid = cell_from_config(plugins.catalog, cfg).run_id  # before the eval settings change
    cell = with_eval_overrides(cfg, plugins, list(sets), overrides or {})
    cfg = cell.config
    if state is None and cell.pretrains:
        raise SSLBenchError(f"no {CHECKPOINT} in {folder}: the run has not finished an epoch")
    device = dev.resolve_device(opts.device)
    data = cell.load_data(opts.data_dir, opts.download)
    image_size = cfg.data.image_size or data.image_size
    seed_everything(cfg.seed)  # the random floor's weights come from the seed alone
    method = cell.build_method(image_size, data.num_classes)
    if state is not None:
        load_weights(method, state["model"], ckpt)
    method = method.to(device)
    if cfg.runtime.channels_last:
        method = method.to(memory_format=torch.channels_last)
    h = eval_hash(cfg)
    csv = folder / f"eval-{h}.csv"
    csv.unlink(missing_ok=True)  # this evaluation's own log, started afresh
    encoder = FrozenEncoder(method.backbone, image_size, data.mean, data.std, device,
                            dev.autocast_dtype(device, cell.precision))
    target = cell.load_eval_data(opts.data_dir, opts.download) or data
    check_transfer(cell, target, image_size)
    ev = evaluate_all(cell, encoder, eval_data(cell, target, fixed_subset(
        target.train, cfg.eval.train_subset)), MetricsLog(csv), Reporter(quiet=opts.quiet))
    record = _record(rid, cfg, ckpt if state is not None else None, state, h, ev, device)
    out = folder / f"eval-{h}.json"
    atomic_write_text(out, record.model_dump_json(indent=2) + "\n")
    return record, out


def add_to_registry(record: EvalRecord, results_dir: Path) -> Path | None:
    """Add the eval record's later figures to the run's registry record, if it has one there:
    fine-tune and few-label figures, and the diagnostics where the record has none yet (one
    written before they existed). Return its path; None where nothing was added (no completed
    record of the run in ``results_dir``, or no new figure)."""
    store = RecordStore(results_dir)
    current = store.read(record.run_id)
    if current is None or current.status != "completed":
        return None
    if record.eval_dataset != current.eval_dataset:  # another dataset's figures: not its own
        return None
    figures = {name: getattr(record.metrics, name) for name in LATER_FIGURES}
    if current.metrics.rankme is not None:  # the run measured them itself: those stay
        figures.update(rankme=None, feature_std=None)
    kinds = {"finetune": "finetune_acc1", "few_label": "few_label", "rankme": "rankme"}
    protocols = {k: v for k, v in record.protocols.items() if figures.get(kinds.get(k))}
    if not protocols:
        return None  # nothing new: the record is left as it is, byte for byte
    return store.add_evaluations(record.run_id, figures, protocols)


def load_weights(method, weights: dict, path: Path) -> None:
    try:
        method.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise SSLBenchError(f"checkpoint {path} does not fit the run's method: {first}") from None


def _record(rid: str, cfg: RunConfig, ckpt: Path | None, state, h: str, ev: Figures,
            device) -> EvalRecord:
    return EvalRecord(
        run_id=rid, method=cfg.method.name, backbone=cfg.backbone.name,
        dataset=cfg.data.name, seed=cfg.seed,
        eval_dataset=cfg.eval.dataset if cfg.eval.dataset != cfg.data.name else None,
        checkpoint=str(ckpt) if ckpt is not None else None,
        checkpoint_epoch=int(state.get("epoch", 0)) if state is not None else 0,
        pretrain_epochs=cfg.pretrain.epochs,
        variant="cached" if cfg.eval.linear.cached else "augmented",
        eval=cfg.eval.model_dump(mode="json"), eval_hash=h,
        metrics=Metrics(**ev.metrics()), protocols=ev.protocols,
        eval_seconds=ev.seconds, device=str(device))
