"""The fan-out: every metrics row of a run goes to each of its loggers (``metrics.csv`` first).

The engine writes rows as it always did, ``metrics.write(phase=..., epoch=..., step=...,
**values)`` (the API of :class:`~sslbench.engine.monitor.MetricsLog`); :class:`LoggerFanout`
turns each into ``logger.log(phase, step, values)`` for every logger of the run.

A *required* logger (the ``csv`` one, whose file the plots and ``--resume`` read) fails the
run as any write error would. Any other logger is a guest: the first exception it raises, in
its factory or any call, becomes one ``warning:`` line on stderr and the logger is dropped for
the rest of the run, so that a tracker's outage never costs a run or its record.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sslbench.core.loggers import Logger
from sslbench.engine.monitor import MetricsLog


@dataclass
class LoggerSpec:
    """A logger to open for a run: its name, factory and options."""

    name: str
    factory: Callable[..., Logger]
    options: dict[str, Any]
    required: bool = False


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


class LoggerFanout:
    """Forwards ``start``, every row, ``finish`` and ``close`` to a run's loggers."""

    def __init__(self, loggers: list[tuple[LoggerSpec, Logger]] = (),
                 warn: Callable[[str], None] = _warn) -> None:
        self._loggers = list(loggers)
        self._warn = warn
        self._closed = False

    @classmethod
    def open(cls, specs: list[LoggerSpec], run_dir: Path, run_id: str,
             warn: Callable[[str], None] = _warn) -> LoggerFanout:
        """Build each logger from its spec; a guest whose factory raises is left out."""
        fanout = cls(warn=warn)
        for spec in specs:
            try:
                logger = spec.factory(Path(run_dir), run_id, dict(spec.options))
            except Exception as exc:
                if spec.required:
                    raise
                fanout._drop(spec, "could not start", exc)
                continue
            fanout._loggers.append((spec, logger))
        return fanout

    @property
    def names(self) -> list[str]:
        """The loggers still receiving rows."""
        return [spec.name for spec, _ in self._loggers]

    def start(self, config: dict[str, Any]) -> None:
        self._each("start", config)

    def write(self, *, phase: str, step: int, **values: Any) -> None:
        """One row (the ``MetricsLog.write`` call): ``None`` values are not logged."""
        numbers = {k: float(v) for k, v in values.items() if v is not None}
        self._each("log", phase, int(step), numbers)

    def finish(self, record: Any) -> None:
        """Hand over the final record (a :class:`RunRecord` or its dict), then close."""
        if self._closed:
            return
        data = record.model_dump(mode="json") if hasattr(record, "model_dump") else record
        self._each("finish", dict(data))
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._each("close")

    def _each(self, method: str, *args: Any) -> None:
        for spec, logger in list(self._loggers):
            try:
                getattr(logger, method)(*args)
            except Exception as exc:
                if spec.required:
                    raise
                self._loggers.remove((spec, logger))
                self._drop(spec, f"failed in {method}()", exc)
                if method != "close":  # let it release what it holds, quietly
                    _close_quietly(logger)

    def _drop(self, spec: LoggerSpec, what: str, exc: Exception) -> None:
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        self._warn(f"logger {spec.name!r} {what}: {type(exc).__name__}: {text}; it is off for "
                   "the rest of this run (the run, its metrics.csv and its record go on)")


def _close_quietly(logger: Logger) -> None:
    try:
        logger.close()
    except Exception:  # already reported once; a second line would say nothing new
        pass


class CsvLogger:
    """metrics.csv in the run folder (always on: the plots and --resume read it)."""

    def __init__(self, run_dir: Path, run_id: str, options: dict) -> None:
        self.path = Path(run_dir) / "metrics.csv"
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


def csv_only() -> list[LoggerSpec]:
    """What a run writes when it is given no logger list: ``metrics.csv`` alone."""
    return [LoggerSpec("csv", CsvLogger, {}, required=True)]
