"""The results registry on disk: record paths, and the rules for writing records.

One module owns where a record lives (``<results>/<run_id>.json``) and when a record may replace
another:

* a ``completed`` record replaces whatever was there (a re-run of the same cell);
* a ``failed`` record never replaces a ``completed`` one: the completed record stays, and the
  failed attempt is appended to ``<results>/<run_id>.attempts.jsonl`` beside it (one JSON line
  per attempt, newest last), so nothing finished is ever lost and no failure goes unrecorded;
* a ``failed`` record replaces an earlier ``failed`` one (the newest reason is the one to fix).

Every write is atomic (temp file, fsync, rename): a reader sees the old file or the new one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sslbench.core.records import (
    LATER_FIGURES,
    SCHEMA_VERSION,
    RunRecord,
    atomic_write_text,
    read_record,
)
from sslbench.errors import SSLBenchError

ATTEMPTS_SUFFIX = ".attempts.jsonl"


@dataclass(frozen=True)
class Saved:
    """Where a record went: ``written`` (the registry's record of the cell), or ``kept`` (a
    failed attempt logged beside the completed record, which was left as it was)."""

    outcome: Literal["written", "kept"]
    path: Path

    def note(self) -> str:
        if self.outcome == "written":
            return f"record: {self.path}"
        return (f"the completed record {self.path} is kept; this attempt's failure was "
                f"added to {self.path.with_suffix('').with_suffix(ATTEMPTS_SUFFIX)}")


class RecordStore:
    """The records of one results folder."""

    def __init__(self, results_dir: Path) -> None:
        self.root = Path(results_dir)

    def path(self, run_id: str) -> Path:
        return self.root / f"{run_id}.json"

    def attempts_path(self, run_id: str) -> Path:
        return self.root / f"{run_id}{ATTEMPTS_SUFFIX}"

    def read(self, run_id: str) -> RunRecord | None:
        """The cell's record, or None when there is none or it cannot be read."""
        path = self.path(run_id)
        if not path.is_file():
            return None
        try:
            record = read_record(path)
        except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
            return None
        return record if record.run_id == run_id else None

    def is_completed(self, run_id: str) -> bool:
        record = self.read(run_id)
        return record is not None and record.status == "completed"

    def save(self, record: RunRecord) -> Saved:
        """Write ``record`` under the rules above; return where it went."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(record.run_id)
        if record.status == "failed" and self.is_completed(record.run_id):
            self._append_attempt(record)
            return Saved("kept", path)
        atomic_write_text(path, record.model_dump_json(indent=2) + "\n")
        return Saved("written", path)

    def add_evaluations(self, run_id: str, figures: dict, protocols: dict[str, str]) -> Path:
        """Add figures measured later on a completed run's checkpoint (``LATER_FIGURES``:
        fine-tune, few-label, diagnostics) to its record, with their protocols; return its path.

        The record's pretraining figures, cost and config are never touched; a figure measured
        again replaces the old one (few-label figures per percentage, the others kept), ``None``
        leaves a figure as it was. The new record is validated before it is written, and the
        write is atomic: on any failure the file is byte-identical to what it was.
        """
        unknown = sorted(set(figures) - set(LATER_FIGURES))
        if unknown:
            raise ValueError(f"not figures measured after a run: {unknown}")
        path = self.path(run_id)
        record = read_record(path)
        if record.status != "completed":
            raise SSLBenchError(f"the record {path} is of a failed run: there is nothing to add "
                                "evaluations to")
        data = record.model_dump(mode="json")
        metrics = data["metrics"]
        for name, value in figures.items():
            if name == "few_label":
                merged = {f["percent"]: f for f in metrics.get("few_label", [])}
                merged.update({f["percent"]: f for f in _plain(value)})
                metrics["few_label"] = [merged[p] for p in sorted(merged)]
            elif value is not None:
                metrics[name] = value
        data["protocols"] = {**data.get("protocols", {}), **protocols}
        if record.schema_version >= 2:  # schema 1's hash rule differs: it keeps its version
            data["schema_version"] = SCHEMA_VERSION
        updated = RunRecord.model_validate(data)
        atomic_write_text(path, updated.model_dump_json(indent=2) + "\n")
        return path

    def _append_attempt(self, record: RunRecord) -> None:
        line = json.dumps(json.loads(record.model_dump_json()), separators=(",", ":")) + "\n"
        with open(self.attempts_path(record.run_id), "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def _plain(few: list) -> list[dict]:
    return [f.model_dump(mode="json") if hasattr(f, "model_dump") else dict(f) for f in few]


def write_record(record: RunRecord, results_dir: Path) -> Path:
    """Save ``record`` into ``results_dir`` under the rules above; return the record's path."""
    return RecordStore(results_dir).save(record).path
