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

from sslbench.core.records import RunRecord, atomic_write_text, read_record

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

    def _append_attempt(self, record: RunRecord) -> None:
        line = json.dumps(json.loads(record.model_dump_json()), separators=(",", ":")) + "\n"
        with open(self.attempts_path(record.run_id), "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def write_record(record: RunRecord, results_dir: Path) -> Path:
    """Save ``record`` into ``results_dir`` under the rules above; return the record's path."""
    return RecordStore(results_dir).save(record).path
