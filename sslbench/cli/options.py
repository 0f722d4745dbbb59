"""Options that several commands share (``run``, ``matrix``), declared once.

Each is an ``Annotated`` type; a command writes ``epochs: Epochs = None``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sslbench.core.paths import default_data_dir

Epochs = Annotated[int | None, typer.Option(min=0, help="Pretraining epochs.")]
BatchSize = Annotated[int | None, typer.Option(min=2, help="Pretraining batch size (global).")]
Lr = Annotated[float | None, typer.Option(help="Base learning rate.")]
ConfigFile = Annotated[Path | None, typer.Option("--config",
                                                  help="TOML/YAML/JSON config file.")]
Sets = Annotated[list[str], typer.Option("--set", help="Override: section.key=value (repeat).")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
DataDir = Annotated[Path, typer.Option(help="Dataset folder ($SSLBENCH_DATA).")]
OutputDir = Annotated[Path, typer.Option(help="Run folders (checkpoint, plots).")]
ResultsDir = Annotated[Path, typer.Option(help="Results registry folder.")]
Download = Annotated[bool, typer.Option(help="Download missing datasets when possible.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Log = Annotated[str | None, typer.Option(
    "--log", envvar="SSLBENCH_LOG", metavar="NAMES",
    help="Experiment trackers fed besides metrics.csv, comma-separated: tensorboard, wandb, "
         "mlflow (see `sslbench list loggers`).")]

DATA_DIR = default_data_dir()
OUTPUT_DIR = Path("runs")
RESULTS_DIR = Path("results")


def flag_overrides(epochs: int | None, batch_size: int | None, lr: float | None) -> dict:
    """The explicit flags as dotted config keys (``None`` means: not given)."""
    return {"pretrain.epochs": epochs, "pretrain.batch_size": batch_size,
            "pretrain.optimizer.lr": lr}
