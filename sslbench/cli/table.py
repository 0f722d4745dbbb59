"""``sslbench table``: the comparison table, regenerated from the results registry.

It reads records only: display names come from the records' own ``*_display`` fields, else
from the catalog index (cached, see :mod:`sslbench.core.index`), so no plugin and no torch is
imported. The grouping and the csv/html/latex renderers are pandas' (about 0.7 s to import):
kept, because the table is what this command computes; ``--help`` does not import it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path

import typer

from sslbench.bench import table as tables
from sslbench.cli import app
from sslbench.cli.catalog import index
from sslbench.errors import SSLBenchError, UsageError

Format = Enum("Format", {f: f for f in tables.FORMATS}, type=str)
Sort = Enum("Sort", {s: s for s in tables.SORTS}, type=str)


@app.command()
def table(
    results_dir: Path = typer.Option(Path("results"), help="Results registry folder."),
    fmt: Format = typer.Option(Format.md, "--format", help="md (README style), csv, html "
                               "or latex."),
    readme: Path | None = typer.Option(None, help="Rewrite the table block in this file."),
    check: bool = typer.Option(False, help="Exit 1 if the README block (--readme, default "
                               "README.md) differs from the registry; write nothing."),
    dataset: str | None = typer.Option(None, help="Only this dataset."),
    backbone: str | None = typer.Option(None, help="Only this backbone."),
    method: str | None = typer.Option(None, help="Only this method."),
    sort: Sort = typer.Option(Sort.acc1, help="Order within a dataset and backbone: best "
                              "first (accuracies, img/s high; hours low) or by method name."),
    reverse: bool = typer.Option(False, help="Reverse the --sort order."),
    metrics: str = typer.Option(
        ",".join(tables.DEFAULT_METRICS), help="Figure columns, comma-separated: linear "
        "(Acc@1, Acc@5), knn, finetune (Acc@1, Acc@5), 1pct / 10pct (linear on 1% / 10% "
        "labels), ft1pct / ft10pct (fine-tune on them), rankme, std (feature std)."),
) -> None:
    """Print the table (mean ± std over seeds) or rewrite it between the README markers."""
    from sslbench.core.records import atomic_write_text, load_records
    from sslbench.core.safe_io import write_failure

    if results_dir.exists() and not results_dir.is_dir():
        raise UsageError(f"--results-dir {results_dir} is a file, not a results folder")
    records, warnings = load_records(results_dir)
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)
    frame = tables.filter_frame(tables.records_frame(records), dataset=dataset,
                                backbone=backbone, method=method)
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    for name in names:
        tables.metric_columns(name)  # an unknown name is a usage error before any reading
    summary = tables.summarise(frame, display_names(records), sort=sort.value, reverse=reverse,
                               metrics=names)
    text = tables.render(summary, fmt.value)
    if check:
        _check(readme or Path("README.md"), text)
        return
    if readme is None:
        typer.echo(text, nl=False)
        return
    try:
        atomic_write_text(readme, tables.replace_block(_read(readme), text))
    except OSError as exc:  # a full disk: the write is atomic, the file is as it was
        raise SSLBenchError(write_failure("", readme, exc, f"; {readme} is unchanged")) from None
    typer.echo(f"updated the results table in {readme} ({len(frame)} records)")


# record field holding the display name of each kind (RunRecord.method_display, ...)
DISPLAY_FIELDS = {"methods": ("method", "method_display"),
                  "backbones": ("backbone", "backbone_display"),
                  "datasets": ("dataset", "dataset_display")}


def display_names(records: list) -> Callable[[str, str], str]:
    """``display(kind, name)``: the name a record gives it, else the catalog index's, else the
    name itself. The index (a plugin load when its cache is stale) is read only on a miss."""
    known: dict[tuple[str, str], str] = {}
    for record in records:
        for kind, (attr, display_attr) in DISPLAY_FIELDS.items():
            shown = getattr(record, display_attr, None)
            if shown:
                known[(kind, getattr(record, attr))] = shown
    listing = []  # the index, loaded at most once

    def display(kind: str, name: str) -> str:
        if (kind, name) not in known:
            if not listing:
                listing.append(index())
            known[(kind, name)] = listing[0].display(kind, name) or name
        return known[(kind, name)]

    return display


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _check(readme: Path, text: str) -> None:
    if not tables.is_fresh(_read(readme), text):
        raise SSLBenchError(f"the results table in {readme} is stale: run `sslbench table "
                            f"--readme {readme}` (with the same filters) and commit it")
    typer.echo(f"the results table in {readme} is up to date")
