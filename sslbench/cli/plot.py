"""``sslbench plot``: re-render a run's curves, or a matrix's accuracy against compute."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from sslbench.cli import app
from sslbench.cli.show import find_record
from sslbench.errors import UsageError


@app.command()
def plot(
    run: str | None = typer.Argument(None, help="Run id or run folder (omit with --matrix)."),
    matrix: Path | None = typer.Option(None, "--matrix", help="Write Acc@1 against "
                                       "pretraining hours (all matching records) to this PNG."),
    results_dir: Path = typer.Option(Path("results"), help="Results registry folder."),
    output_dir: Path = typer.Option(Path("runs"), help="Run folders."),
    dataset: str | None = typer.Option(None, help="--matrix: only this dataset."),
    backbone: str | None = typer.Option(None, help="--matrix: only this backbone."),
    method: str | None = typer.Option(None, help="--matrix: only this method."),
    online: Path | None = typer.Option(None, "--online", help="Write the online kNN of the "
                                       "--runs over pretraining epochs to this PNG."),
    runs: str | None = typer.Option(None, help="--online: run ids or run folders, "
                                    "comma-separated."),
) -> None:
    """PNG curves of one run (from its metrics.csv), or a matrix's accuracy against cost."""
    from sslbench.bench import plots
    from sslbench.bench import table as tables
    from sslbench.core.records import load_records

    if matrix is not None:
        records, warnings = load_records(results_dir)
        for line in warnings:
            typer.echo(f"warning: {line}", err=True)
        frame = tables.filter_frame(tables.records_frame(records), dataset=dataset,
                                    backbone=backbone, method=method)
        if frame.empty:
            raise UsageError(f"no completed records to plot in {results_dir}")
        typer.echo(f"wrote {plots.plot_compute(frame, matrix)}")
        return
    if online is not None:
        refs = [r.strip() for r in (runs or "").split(",") if r.strip()]
        if not refs:
            raise UsageError("--online needs --runs RUN[,RUN...]")
        dirs = [(_label(ref), _run_dir(ref, results_dir, output_dir)) for ref in refs]
        try:
            typer.echo(f"wrote {plots.plot_online(dirs, online)}")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return
    if run is None:
        raise UsageError("give a run id or run folder, or --matrix OUT.png")
    written = plots.plot_run(_run_dir(run, results_dir, output_dir))
    if not written:
        raise UsageError(f"nothing to plot for {run!r}: its run folder has no metrics.csv")
    for path in written.values():
        typer.echo(f"wrote {path}")


def _label(ref: str) -> str:
    """``simclr-resnet18-fashion-mnist-s0-397d84b8`` -> ``simclr s0``."""
    parts = Path(ref).name.split("-")
    seed = next((p for p in parts if p[:1] == "s" and p[1:].isdigit()), "")
    return f"{parts[0]} {seed}".strip()


def _run_dir(ref: str, results_dir: Path, output_dir: Path) -> Path:
    """A run folder given directly, under ``output_dir``, or named by its record."""
    for candidate in (Path(ref), output_dir / ref):
        if os.path.lexists(candidate / "metrics.csv"):  # read (or refused) by plot_run
            return candidate
    from sslbench.core.records import read_record

    record = read_record(find_record(ref, results_dir))
    return Path(record.artifacts.get("run_dir", output_dir / record.run_id))
