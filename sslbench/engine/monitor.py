"""What a run shows and keeps while it trains: a rich progress bar and ``metrics.csv``."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sslbench.core.safe_io import write_failure
from sslbench.errors import SSLBenchError

FIELDS = ["phase", "epoch", "step", "loss", "lr", "images_per_second", "test_loss",
          "test_acc1", "test_acc5"]


class MetricsLog:
    """Appends rows to ``metrics.csv`` (per logged step, and per linear-probe epoch).

    A resumed run appends to the file its killed predecessor left. A kill during an append can
    leave a torn last row (no newline); it is cut off first, so the next row starts on a line of
    its own (the rows since the last checkpoint are logged again anyway). A full disk is one
    line naming the file.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is None:
            return
        try:
            if os.path.lexists(path):
                _cut_torn_row(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.stat().st_size == 0:
                with open(path, "w", newline="") as f:
                    csv.DictWriter(f, FIELDS).writeheader()
        except OSError as exc:
            raise SSLBenchError(write_failure("metrics file", path, exc)) from None

    def write(self, **row) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, FIELDS).writerow({k: _fmt(v) for k, v in row.items()})
        except OSError as exc:
            raise SSLBenchError(write_failure("metrics file", self.path, exc)) from None


def _cut_torn_row(path: Path) -> None:
    """Truncate ``path`` after its last newline; refuse anything but a regular file (a FIFO
    opened for appending would block the run)."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise SSLBenchError(f"cannot append to the metrics file {path}: it is not a regular "
                            "file; remove it")
    if info.st_size == 0:
        return
    with open(path, "rb+") as f:
        tail = min(info.st_size, 1 << 16)
        f.seek(info.st_size - tail)
        chunk = f.read(tail)
        cut = chunk.rfind(b"\n")
        if chunk.endswith(b"\n"):
            return
        if cut >= 0 or tail == info.st_size:  # drop the torn row (a torn header: all)
            f.truncate(info.st_size - tail + cut + 1)
        else:  # no row ends in the last 64 KiB: not ours to cut; end it where it is
            f.write(b"\n")


def _fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else value


class Reporter:
    """A progress bar per phase (epoch, step, loss, lr, images/s, ETA); silent when quiet."""

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task = None

    def start(self, description: str, total: int) -> None:
        if self.quiet:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=self.console, transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, info="")

    def update(self, completed: int, description: str | None = None, **info) -> None:
        if self._progress is None:
            return
        text = "  ".join(f"{k} {_fmt(v)}" for k, v in info.items())
        kwargs = {"description": description} if description else {}
        self._progress.update(self._task, completed=completed, info=text, **kwargs)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def print(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)
