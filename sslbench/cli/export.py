"""``sslbench export RUN_ID``: the run's pretrained backbone as safetensors + a model card."""

from __future__ import annotations

from pathlib import Path

import typer

from sslbench.cli import app
from sslbench.cli import options as opt


@app.command("export")
def export_command(
    run: str = typer.Argument(..., help="Run id (or an unambiguous prefix, or a record file)."),
    out: Path | None = typer.Option(None, help="Folder to write (default exports/<run-id>)."),
    results_dir: opt.ResultsDir = opt.RESULTS_DIR,
    data_dir: opt.DataDir = opt.DATA_DIR,
    download: opt.Download = True,
) -> None:
    """Write a completed run's backbone: backbone.safetensors, model.json and a README.md model
    card (method, recipe, metrics, provenance). `sslbench.load_backbone(folder)` loads it; for
    torchvision backbones the card shows how to load it into the plain torchvision model.

    The dataset is loaded once to state the input size and normalisation in the card.
    """
    from sslbench.bench.export import export_run  # torch: only when a command needs it
    from sslbench.bench.run import RunOptions
    from sslbench.cli.catalog import load
    from sslbench.cli.show import find_record

    path = find_record(run, results_dir)
    folder = export_run(path, load(), RunOptions(data_dir=data_dir, download=download), out)
    typer.echo(f"exported {path.stem} to {folder}/ (backbone.safetensors, model.json, "
               "README.md)")
