"""Run records: one validated JSON file per run in the registry folder, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 2  # 2: display names; provenance.plugins lists only the plugins a cell uses
SCHEMA_VERSIONS = (1, 2)  # what this sslbench reads
PROTOCOL = (
    "final epoch, no selection on the test split; linear probe and kNN fit on the train split "
    "(or its fixed subset), reported on the test split"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metrics(_Model):
    """Percentages for accuracies; ``None`` where not measured (e.g. a failed run)."""

    linear_acc1: float | None = None
    linear_acc5: float | None = None
    knn_acc1: float | None = None
    final_loss: float | None = None


class Cost(_Model):
    pretrain_seconds: float = 0.0
    eval_seconds: float = 0.0
    images_per_second: float | None = None  # steady state, per view, warm-up steps excluded
    peak_memory_mb: float | None = None
    device: str = "cpu"
    num_devices: int = 1
    backend: str | None = None
    precision: str | None = None  # what the run computed in: "bf16", "fp16" or "fp32"


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
    seed: int
    epochs: int
    config: dict[str, Any]
    config_hash: str  # the recipe, seeds excluded: records sharing it are grouped in tables
    metrics: Metrics = Metrics()
    cost: Cost = Cost()
    provenance: Provenance
    protocol: str = PROTOCOL
    artifacts: dict[str, str] = {}


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


def read_record(path: Path) -> RunRecord:
    return RunRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))


def load_records(results_dir: Path) -> tuple[list[RunRecord], list[str]]:
    """All readable records, and one warning line per unreadable file (which is skipped)."""
    records: list[RunRecord] = []
    warnings: list[str] = []
    if not results_dir.is_dir():
        return records, warnings
    for path in sorted(results_dir.glob("*.json")):
        try:
            records.append(read_record(path))
        except (OSError, ValueError, ValidationError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.append(f"skipping unreadable record {path}: {first}")
    return records, warnings
