"""``metrics.csv`` in the run folder: the log every run keeps (plots and ``--resume`` read it).

Always on, whatever ``--log`` selects. Rows are appended, so a resumed run continues the file
of the run it resumes (a fresh run's file is removed before it starts).
"""

from __future__ import annotations

from pathlib import Path

from sslbench import hookimpl
from sslbench.engine.monitor import MetricsLog

FILE = "metrics.csv"


class CsvLogger:
    """metrics.csv in the run folder (always on: the plots and --resume read it)."""

    def __init__(self, run_dir: Path, run_id: str, options: dict) -> None:
        self.path = Path(run_dir) / FILE
        self._log: MetricsLog | None = None  # the header is written with the first row

    def start(self, config: dict) -> None:
        pass

    def log(self, phase: str, step: int, values: dict[str, float]) -> None:
        if self._log is None:
            self._log = MetricsLog(self.path)
        row = dict(values)
        if "epoch" in row:
            row["epoch"] = int(row["epoch"])
        self._log.write(phase=phase, step=step, **row)

    def finish(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass


@hookimpl
def sslbench_register_loggers(register):
    register("csv", CsvLogger, display="CSV (metrics.csv)")
