"""What a run shows and keeps while it trains: a rich progress bar and ``metrics.csv``."""

from __future__ import annotations

import csv
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

FIELDS = ["phase", "epoch", "step", "loss", "lr", "images_per_second", "test_loss",
          "test_acc1", "test_acc5"]


class MetricsLog:
    """Appends rows to ``metrics.csv`` (per logged step, and per linear-probe epoch)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="") as f:
                csv.DictWriter(f, FIELDS).writeheader()

    def write(self, **row) -> None:
        if self.path is None:
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, FIELDS).writerow({k: _fmt(v) for k, v in row.items()})


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
