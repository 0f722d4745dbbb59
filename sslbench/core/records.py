"""Run records: one validated JSON file per run in the registry folder, written atomically."""

from __future__ import annotations

import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sslbench.core import safe_io
from sslbench.core.config import identity_hash

# 2: display names; provenance.plugins lists only the plugins a cell uses
# 3: fine-tune, few-label, collapse diagnostics and a protocol per figure (all optional)
SCHEMA_VERSION = 3
KNOWN_SCHEMAS = range(1, SCHEMA_VERSION + 1)  # the schema versions this sslbench reads
MAX_INT = 2**53  # larger JSON integers are not exact in every reader (pandas, JavaScript)
SECTIONS = ("method", "backbone", "data", "pretrain", "eval", "runtime")  # tables in a config
PROTOCOL = (
    "final epoch, no selection on the test split; linear probe and kNN fit on the train split "
    "(or its fixed subset), reported on the test split"
)


class _Model(BaseModel):
    # no inf/nan: a record's numbers are measurements, and JSON has no spelling for them
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _percentage(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 100.0:
        raise ValueError("an accuracy is a percentage, between 0 and 100")
    return value


class FewLabel(_Model):
    """The figures of one few-label subset (``percent`` of the train split, class-balanced)."""

    percent: float = Field(gt=0.0, le=100.0)
    images: int = Field(ge=1)
    linear_acc1: float | None = None
    linear_acc5: float | None = None
    finetune_acc1: float | None = None
    finetune_acc5: float | None = None

    _accuracies = field_validator("linear_acc1", "linear_acc5", "finetune_acc1",
                                  "finetune_acc5")(_percentage)


# figures that may be measured after the run, on its checkpoint (``sslbench eval``), and added
# to its record; the others (linear, kNN, final loss) describe the run as it was run
LATER_FIGURES = ("finetune_acc1", "finetune_acc5", "few_label", "rankme", "feature_std")


class Metrics(_Model):
    """Percentages for accuracies; ``None`` where not measured (e.g. a failed run)."""

    linear_acc1: float | None = None
    linear_acc5: float | None = None
    knn_acc1: float | None = None
    final_loss: float | None = None
    finetune_acc1: float | None = None
    finetune_acc5: float | None = None
    few_label: list[FewLabel] = []
    rankme: float | None = Field(None, ge=1.0)  # effective rank of the train features
    feature_std: float | None = Field(None, ge=0.0)  # of L2-normalised features
    online_knn_acc1: float | None = None  # last online kNN on the held-out pretraining slice
    online_linear_acc1: float | None = None  # the online probe on that slice, last epoch

    _accuracies = field_validator("linear_acc1", "linear_acc5", "knn_acc1", "finetune_acc1",
                                  "finetune_acc5", "online_knn_acc1",
                                  "online_linear_acc1")(_percentage)


class Cost(_Model):
    pretrain_seconds: float = 0.0
    eval_seconds: float = 0.0
    images_per_second: float | None = None  # steady state, per view, warm-up steps excluded
    peak_memory_mb: float | None = None
    device: str = "cpu"
    num_devices: int = 1
    backend: str | None = None
    precision: str | None = None  # what the run computed in: "bf16", "fp16" or "fp32"

    @field_validator("pretrain_seconds", "eval_seconds", "images_per_second", "peak_memory_mb")
    @classmethod
    def _not_negative(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("num_devices")
    @classmethod
    def _devices(cls, value: int) -> int:
        return _bounded(value, 1)


class Provenance(_Model):
    sslbench: str
    torch: str
    torchvision: str
    python: str
    platform: str
    device_name: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    plugins: dict[str, str] = {}  # third-party distributions the cell uses -> version


class RunRecord(_Model):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    status: Literal["completed", "failed"]
    reason: str | None = None
    attempt: str | None = None  # token of the attempt (a run, a matrix job) that wrote it
    method: str
    backbone: str
    dataset: str
    # what tables print, kept in the record so that a table reads the same whether or not the
    # plugins that registered these components are installed
    method_display: str | None = None
    backbone_display: str | None = None
    dataset_display: str | None = None
    eval_dataset: str | None = None  # transfer: the dataset every figure was evaluated on
    seed: int
    epochs: int
    config: dict[str, Any]
    config_hash: str  # the recipe, seeds excluded: records sharing it are grouped in tables
    metrics: Metrics = Metrics()
    cost: Cost = Cost()
    provenance: Provenance
    protocol: str = PROTOCOL
    protocols: dict[str, str] = {}  # figure (linear, knn, finetune, few_label, ...) -> protocol
    artifacts: dict[str, str] = {}

    # --- checks of what is read back (a hand-edited or foreign record is refused) ---
    @field_validator("created")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("the timestamp has no time zone (write it like "
                             "2025-01-31T12:00:00+00:00)")
        return value

    @field_validator("seed", "epochs")
    @classmethod
    def _count(cls, value: int) -> int:
        return _bounded(value, 0)

    @field_validator("config")
    @classmethod
    def _sections(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in SECTIONS:
            if name in value and not isinstance(value[name], dict):
                raise ValueError(f"config section {name!r} must be a table, got "
                                 f"{safe_io.truncate(value[name], 40)}")
        return value


def _bounded(value: int, low: int) -> int:
    if not low <= value <= MAX_INT:
        raise ValueError(f"must be between {low} and 2**53")
    return value


def atomic_write_text(path: Path, text: str) -> None:
    """Temp file in the same folder, fsync, rename: never a half-written file under ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def recipe_hash(config: dict[str, Any], plugins: dict[str, str] | None = None) -> str:
    """:meth:`RunConfig.hash` of a config as stored (its ``model_dump(mode="json")``), with the
    third-party plugins the cell used (part of its identity since schema 2).

    Computed from the dict itself, not by validating it into a ``RunConfig``, so that records of
    plugins not installed here, or of older sslbench versions, can be checked too.
    """
    return identity_hash({k: v for k, v in config.items() if k != "seed"}, plugins)


def read_record(path: Path) -> RunRecord:
    """The record in ``path``, validated; else :class:`~sslbench.core.safe_io.InputError`.

    Beyond the schema (finite numbers, accuracies in [0, 100], a time zone on the timestamp):
    a schema version this sslbench knows, the run id equal to the file's name (another cell's
    record copied here is not this cell's), and the config hash equal to the stored config's.
    """
    path = Path(path)
    data = safe_io.load_document(path, "record", fmt="JSON")
    if not isinstance(data, dict):
        raise _invalid(path, "not a JSON object")
    _check_schema_version(path, data.get("schema_version", SCHEMA_VERSION))
    try:
        record = RunRecord.model_validate(data)
    except ValidationError as exc:
        raise _invalid(path, _first_error(exc)) from None
    if record.run_id != path.stem:
        raise _invalid(path, f"it holds run {safe_io.truncate(record.run_id)}, not "
                             f"{path.stem!r}: a record is named after its run id")
    # schema 1 listed every installed plugin in provenance, and none was part of the identity
    used = record.provenance.plugins if record.schema_version >= 2 else None
    expected = recipe_hash(record.config, used)
    if record.config_hash != expected:
        raise _invalid(path, f"config_hash {safe_io.truncate(record.config_hash, 20)} is not "
                             f"the hash of its config ({expected}): one of them was edited")
    return record


def _check_schema_version(path: Path, version: Any) -> None:
    if isinstance(version, int) and not isinstance(version, bool) and version in KNOWN_SCHEMAS:
        return
    if isinstance(version, int | float) and not isinstance(version, bool) and math.isfinite(
            version) and version > SCHEMA_VERSION:
        raise _invalid(path, f"written by a newer sslbench (schema version {version:g}; this "
                             f"one reads up to {SCHEMA_VERSION}): upgrade sslbench to read it")
    raise _invalid(path, f"unknown schema version {safe_io.truncate(version, 40)}")


def _first_error(exc: ValidationError) -> str:
    """``metrics.linear_acc1: an accuracy is a percentage, ... (got 250.0)``."""
    errors = exc.errors()
    err = errors[0]
    loc = ".".join(str(part) for part in err["loc"]) or "record"
    got = (f" (got {safe_io.truncate(err['input'], 60)})"
           if err["type"] != "missing" and "input" in err and err["loc"] else "")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {err['msg'].removeprefix('Value error, ')}{got}{more}"


def _invalid(path: Path, problem: str) -> safe_io.InputError:
    return safe_io.InputError(f"invalid record {path}: {problem}", path, problem)


def load_records(results_dir: Path) -> tuple[list[RunRecord], list[str]]:
    """All valid records, and one warning line per file that is not one (it is skipped).

    Never blocks or fails on what else a folder may hold: FIFOs, folders named ``x.json``,
    symbolic-link loops, unreadable or malformed files are each one warning.
    """
    records: list[RunRecord] = []
    warnings: list[str] = []
    if not results_dir.is_dir():
        return records, warnings
    for path in sorted(results_dir.glob("*.json")):
        try:
            records.append(read_record(path))
        except safe_io.InputError as exc:
            warnings.append(f"skipping unreadable record {path}: {exc.problem}")
        except OSError as exc:
            warnings.append(f"skipping unreadable record {path}: {exc.strerror or exc}")
    return records, warnings
