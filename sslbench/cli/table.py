"""``sslbench table``: the comparison table, regenerated from the results registry."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from sslbench.bench import table as tables
from sslbench.cli import app
from sslbench.cli.catalog import load
from sslbench.core.records import load_records
from sslbench.errors import UsageError

Format = Enum("Format", {"md": "md", "csv": "csv"}, type=str)


@app.command()
def table(
    results_dir: Path = typer.Option(Path("results"), help="Results registry folder."),
    fmt: Format = typer.Option(Format.md, "--format", help="md (README style) or csv."),
    readme: Path | None = typer.Option(None, help="Rewrite the table block in this file."),
    dataset: str | None = typer.Option(None, help="Only this dataset."),
    backbone: str | None = typer.Option(None, help="Only this backbone."),
    method: str | None = typer.Option(None, help="Only this method."),
) -> None:
    """Print the table (mean ± std over seeds) or rewrite it between the README markers."""
    records, warnings = load_records(results_dir)
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)
    records = [r for r in records if (dataset is None or r.dataset == dataset)
               and (backbone is None or r.backbone == backbone)
               and (method is None or r.method == method)]
    catalog = load().catalog

    def display(kind: str, name: str) -> str:
        if (kind, name) in catalog:
            return catalog.entry(kind, name).metadata.get("display", name)
        return name

    text = tables.render(tables.summarise(tables.records_frame(records), display), fmt.value)
    if readme is None:
        typer.echo(text, nl=False)
        return
    try:
        old = readme.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {readme}: {exc.strerror or exc}") from None
    from sslbench.core.records import atomic_write_text

    atomic_write_text(readme, tables.replace_block(old, text))
    typer.echo(f"updated the results table in {readme} ({len(records)} records)")
