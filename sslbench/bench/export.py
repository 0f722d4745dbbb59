"""Export a run's pretrained backbone for use outside sslbench, and load it back.

``export_run`` reads a completed run's record and its final checkpoint (``weights_only``),
keeps the method's backbone (the ``backbone.`` entries of its state dict: projectors,
predictors, momentum targets and queues stay behind) and writes a folder of three files:

* ``backbone.safetensors`` — the weights, named as the backbone's own ``state_dict``;
* ``model.json`` — what is needed to rebuild and feed it (backbone name and options, input size
  and normalisation, feature width), generated from the record: method, recipe (config and its
  hash), metrics and the protocol they follow, provenance, the checkpoint it came from, the
  weights' sha256, and, for torchvision-family backbones, the changes that make the plain
  torchvision model take these weights (see :mod:`sslbench.bench.torchvision_export`);
* ``README.md`` — a short model card saying the same for people.

``load_backbone(folder)`` rebuilds the backbone through the plugin catalog and returns it in
eval mode; ``load_backbone(folder, torchvision=True)`` returns the plain torchvision model
instead (classifier replaced by an identity, stem as stated in the card). Both give the same
features as the run's backbone on the same input.

The input of a backbone is what sslbench's evaluation feeds it: RGB in ``[0, 1]`` (a grey image
repeated over three channels), resized to the run's image size, standardised per channel with
the dataset's mean and std. The dataset is loaded once at export (as ``sslbench eval`` does) to
read them, since a config only names its image size when a recipe or the user set one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

import sslbench
from sslbench.bench import torchvision_export
from sslbench.bench.model_card import render as model_card
from sslbench.bench.resolve import cell_from_config
from sslbench.bench.run import CHECKPOINT, RunOptions
from sslbench.core.components import MethodTraits
from sslbench.core.config import RunConfig
from sslbench.core.plugins import Plugins, load_plugins
from sslbench.core.records import RunRecord, atomic_write_text, read_record
from sslbench.engine.checkpoint import load_checkpoint
from sslbench.errors import SSLBenchError, UsageError

WEIGHTS = "backbone.safetensors"
META = "model.json"
CARD = "README.md"
FORMAT = "sslbench-backbone"
FORMAT_VERSION = 1
PREFIX = "backbone."


def export_run(record_path: Path, plugins: Plugins, opts: RunOptions,
               out: Path | None = None) -> Path:
    """Write the backbone of the run recorded at ``record_path`` to ``out`` (default
    ``exports/<run-id>``); return that folder."""
    record = _read(record_path)
    _check_exportable(record, plugins)
    ckpt = _checkpoint_path(record, Path(record_path))
    if not ckpt.is_file():
        raise SSLBenchError(f"run {record.run_id} has no checkpoint at {ckpt}: the run folder "
                            "was moved or removed; nothing to export")
    weights, epoch = _final_backbone_weights(record, ckpt)
    cfg = RunConfig.model_validate(record.config)
    data = cell_from_config(plugins.catalog, cfg).load_data(opts.data_dir, opts.download)
    image_size = cfg.data.image_size or data.image_size
    options = dict(cfg.backbone.model_extra or {})
    backbone = build_backbone(plugins, cfg.backbone.name, image_size, options, weights, ckpt)
    builtin = plugins.catalog.entry("backbones", cfg.backbone.name).plugin.startswith(
        "sslbench.builtin")
    meta = _metadata(record, ckpt, epoch, image_size, options, backbone, data.mean, data.std,
                     torchvision_export.describe(cfg.backbone.name, options, backbone, builtin))
    out = Path(out) if out is not None else Path("exports") / record.run_id
    _write(out, weights, meta)
    return out


def _checkpoint_path(record: RunRecord, record_path: Path) -> Path:
    """The record's checkpoint; a relative path is tried from the working folder, then from
    the folder holding the results registry (where the run was started, as a rule)."""
    ckpt = Path(record.artifacts.get("checkpoint")
                or Path(record.artifacts.get("run_dir", "")) / CHECKPOINT)
    beside = record_path.resolve().parent.parent / ckpt
    return beside if not ckpt.is_absolute() and not ckpt.exists() and beside.exists() else ckpt


def _read(path: Path) -> RunRecord:
    try:
        return read_record(Path(path))
    except (OSError, ValueError, ValidationError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SSLBenchError(f"cannot read the record {path}: {first}") from None


def _check_exportable(record: RunRecord, plugins: Plugins) -> None:
    """Only a completed run whose backbone was trained has weights worth exporting."""
    rid = record.run_id
    if record.status != "completed":
        raise UsageError(f"run {rid} failed ({record.reason or 'no reason recorded'}); "
                         "there is no trained backbone to export")
    method = plugins.catalog.get("methods", record.method)
    if not MethodTraits.of(method).pretrains:
        raise UsageError(f"run {rid} is the {record.method!r} floor: its backbone was never "
                         "trained (its weights are its seed's initialisation); nothing to export")
    if record.epochs == 0:
        raise UsageError(f"run {rid} ran 0 pretraining epochs: its backbone was never trained; "
                         "nothing to export")


def _final_backbone_weights(record: RunRecord, ckpt: Path) -> tuple[dict, int]:
    """The backbone's tensors from the checkpoint, which must be the recorded run's last."""
    state = load_checkpoint(ckpt)
    try:
        saved = RunConfig.model_validate_json(state["config"])
    except (KeyError, TypeError, ValueError):
        raise SSLBenchError(f"checkpoint {ckpt} holds no valid run config") from None
    epoch = int(state.get("epoch", -1))
    if saved.hash() != record.config_hash or epoch != record.epochs:
        raise SSLBenchError(
            f"checkpoint {ckpt} is not the final state of run {record.run_id} (epoch {epoch} "
            f"of {record.epochs}): the run folder was reused since; rerun the cell to export it")
    weights = {k[len(PREFIX):]: v.contiguous() for k, v in state["model"].items()
               if k.startswith(PREFIX)}
    if not weights:
        raise SSLBenchError(f"checkpoint {ckpt} holds no '{PREFIX}*' weights to export")
    return weights, epoch


def build_backbone(plugins: Plugins, name: str, image_size: int, options: dict,
                   weights: dict[str, torch.Tensor], source: Path) -> nn.Module:
    """The backbone from its factory, with ``weights`` loaded strictly, in eval mode."""
    backbone = plugins.catalog.get("backbones", name)(image_size, **options)
    try:
        backbone.load_state_dict(weights, strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise SSLBenchError(f"the weights in {source} do not fit backbone {name!r}: "
                            f"{first}") from None
    return backbone.eval()


def _metadata(record: RunRecord, ckpt: Path, epoch: int, image_size: int, options: dict,
              backbone: nn.Module, mean, std, torchvision: dict) -> dict[str, Any]:
    n_params = sum(p.numel() for p in backbone.parameters())
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "run_id": record.run_id, "method": record.method, "dataset": record.dataset,
        "seed": record.seed, "epochs": record.epochs,
        "backbone": {"name": record.backbone, "options": options,
                     "feature_dim": int(getattr(backbone, "feature_dim", 0)) or None,
                     "parameters": n_params},
        "input": {"image_size": image_size, "channels": 3, "range": [0.0, 1.0],
                  "resize": "bilinear, antialiased", "mean": list(mean), "std": list(std)},
        "torchvision": torchvision,
        "metrics": record.metrics.model_dump(mode="json"), "protocol": record.protocol,
        "config_hash": record.config_hash, "config": record.config,
        "cost": record.cost.model_dump(mode="json"),
        "provenance": record.provenance.model_dump(mode="json"),
        "checkpoint": {"path": str(ckpt), "epoch": epoch},
        "created": record.created.isoformat(),
        "exported": {"at": datetime.now(UTC).isoformat(), "sslbench": sslbench.__version__},
        "weights": {"file": WEIGHTS},
    }


def _write(out: Path, weights: dict[str, torch.Tensor], meta: dict) -> None:
    """Weights, then model.json (with their sha256), then the card; each file atomically."""
    from safetensors.torch import save_file

    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{WEIGHTS}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file(weights, tmp, metadata={"format": FORMAT, "run_id": meta["run_id"]})
            meta["weights"]["sha256"] = _sha256(Path(tmp))
            os.replace(tmp, out / WEIGHTS)
        finally:
            Path(tmp).unlink(missing_ok=True)
        atomic_write_text(out / META, json.dumps(meta, indent=2) + "\n")
        atomic_write_text(out / CARD, model_card(meta))
        for name in (WEIGHTS, META, CARD):  # temp files are private; an export is for sharing
            os.chmod(out / name, 0o644)
    except OSError as exc:
        raise SSLBenchError(f"cannot write the export to {out}: "
                            f"{exc.strerror or exc}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_backbone(path: str | Path, torchvision: bool = False,
                  plugins: Plugins | None = None) -> nn.Module:
    """The exported backbone in ``path`` (a folder from ``sslbench export``), in eval mode.

    ``torchvision=True`` returns the plain torchvision model (``torchvision.models.<name>``
    with the changes stated in ``model.json``) instead of the sslbench backbone; it is refused
    for backbones that are not one of sslbench's torchvision families.
    """
    folder = Path(path)
    folder = folder.parent if folder.name == META else folder
    meta = read_metadata(folder)
    weights = _load_weights(folder, meta)
    if torchvision:
        spec = meta.get("torchvision") or {}
        if not spec.get("model"):
            raise UsageError(f"{folder} has no torchvision equivalent: "
                             f"{spec.get('reason', 'not stated')}; use load_backbone(path)")
        return torchvision_export.build(spec, weights)
    plugins = plugins or load_plugins()
    b = meta["backbone"]
    return build_backbone(plugins, b["name"], meta["input"]["image_size"], b["options"],
                          weights, folder / WEIGHTS)


def read_metadata(folder: Path) -> dict[str, Any]:
    path = Path(folder) / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SSLBenchError(f"{folder} is not an sslbench export: it has no {META}") from None
    except (OSError, ValueError) as exc:
        raise SSLBenchError(f"cannot read {path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SSLBenchError(f"{path} is not an sslbench export ({FORMAT}) description")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise SSLBenchError(f"{path} is format version {meta['format_version']}; this sslbench "
                            f"reads up to {FORMAT_VERSION}: upgrade sslbench")
    return meta


def _load_weights(folder: Path, meta: dict) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / meta.get("weights", {}).get("file", WEIGHTS)
    if not path.is_file():
        raise SSLBenchError(f"{folder} has no {path.name}")
    expected = meta.get("weights", {}).get("sha256")
    if expected and _sha256(path) != expected:
        raise SSLBenchError(f"{path} does not match {META} (sha256 differs): the file was "
                            "changed or replaced since the export")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise SSLBenchError(f"cannot read {path}: {exc}") from None
