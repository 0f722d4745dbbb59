"""``sslbench report``: a static HTML report of the results registry (no server needed)."""

from __future__ import annotations

from pathlib import Path

import typer

from sslbench.cli import app
from sslbench.errors import UsageError


@app.command()
def report(
    results_dir: Path = typer.Option(Path("results"), help="Results registry folder."),
    runs_dir: Path = typer.Option(Path("runs"), help="Run folders, for each run's curves."),
    out: Path = typer.Option(Path("site"), "--out", help="Folder to write the site into "
                             "(replaced as a whole; index.html is the front page)."),
) -> None:
    """Write the registry as a static HTML site that opens offline, from disk.

    Sortable, filterable tables (one row per record; mean ± std per recipe), accuracy against
    pretraining compute, and a page per run with its curves, config, cost and provenance.
    """
    if results_dir.exists() and not results_dir.is_dir():
        raise UsageError(f"--results-dir {results_dir} is a file, not a results folder")
    # Heavy imports here, not at module level: `sslbench --help` stays fast.
    from sslbench.bench import report as reports
    from sslbench.cli.catalog import load
    from sslbench.core.records import load_records

    reports.check_out(out)
    records, warnings = load_records(results_dir)
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)
    catalog = load().catalog

    def display(kind: str, name: str) -> str:
        if (kind, name) in catalog:
            return catalog.entry(kind, name).metadata.get("display", name)
        return name

    site = reports.build_site(records, warnings, results_dir=results_dir, runs_dir=runs_dir,
                              display=display)
    index = reports.write_site(site, out)
    if not records:
        typer.echo(f"note: no records in {results_dir}: wrote an empty report, {index}")
        return
    typer.echo(f"wrote {index} ({len(records)} records, {len(site) - 1} run pages)")
