"""``sslbench show RUN_ID``: one record of the registry, readably."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sslbench.cli import app
from sslbench.errors import UsageError

if TYPE_CHECKING:
    from sslbench.core.records import RunRecord


def find_record(ref: str, results_dir: Path) -> Path:
    """A record file from a path, a run id, or an unambiguous prefix of one.

    A run id is a name, matched literally inside ``results_dir``: glob characters match only
    themselves, and an id with a path separator is refused rather than looked up elsewhere.
    """
    from sslbench.core.safe_io import truncate
    from sslbench.core.store import RecordStore

    if ref.endswith(".json") and os.path.lexists(ref):  # a record file named by its path
        return Path(ref)
    if not ref or "/" in ref or os.sep in ref or ref in (".", ".."):
        raise UsageError(f"{truncate(ref)} is not a run id (a run id is a file name in "
                         f"{results_dir}; give a record's path ending in .json)")
    exact = RecordStore(results_dir).path(ref)
    if os.path.lexists(exact):
        return exact
    matches = sorted(p for p in _entries(results_dir)
                     if p.name.startswith(ref) and p.name.endswith(".json"))
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(p.stem for p in matches[:4])
        raise UsageError(f"{truncate(ref)} matches {len(matches)} records ({names}...): be "
                         "more precise")
    raise UsageError(f"no record {truncate(ref)} in {results_dir} (see `sslbench table` or "
                     f"ls {results_dir})")


def _entries(folder: Path) -> list[Path]:
    try:
        return [folder / name for name in os.listdir(folder) if not name.startswith(".")]
    except OSError:  # missing, or not a folder
        return []


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}%"


def describe(record: RunRecord) -> str:
    """The record as sections of ``key: value`` lines, the config as YAML at the end."""
    m, c, p = record.metrics, record.cost, record.provenance
    status = record.status + (f" ({record.reason})" if record.reason else "")
    loss = "–" if m.final_loss is None else f"{m.final_loss:.4f}"
    ips = "–" if c.images_per_second is None else f"{c.images_per_second:.0f}"
    mem = "–" if c.peak_memory_mb is None else f"{c.peak_memory_mb:.0f} MB"
    dirty = {True: " (dirty)", False: "", None: ""}[p.git_dirty]
    plugins = ", ".join(f"{k} {v}" for k, v in p.plugins.items()) or "none (built-ins only)"
    lines = [
        f"run       {record.run_id}",
        f"status    {status}",
        f"created   {record.created:%Y-%m-%d %H:%M:%S %Z}",
        f"cell      {record.method} · {record.backbone} · {record.dataset} · seed "
        f"{record.seed} · {record.epochs} epochs",
        f"recipe    {record.config_hash}",
        "",
        "metrics",
        f"  linear Acc@1 {_pct(m.linear_acc1)}   Acc@5 {_pct(m.linear_acc5)}   "
        f"kNN Acc@1 {_pct(m.knn_acc1)}   final loss {loss}",
        "cost",
        f"  pretrain {c.pretrain_seconds:.1f} s, eval {c.eval_seconds:.1f} s, {ips} img/s, "
        f"peak memory {mem}",
        f"  {c.num_devices} × {c.device}" + (f" ({c.backend})" if c.backend else ""),
        "provenance",
        f"  sslbench {p.sslbench}, torch {p.torch}, torchvision {p.torchvision}, "
        f"python {p.python}",
        f"  {p.platform}" + (f", {p.device_name}" if p.device_name else ""),
        f"  git {p.git_commit or 'unknown'}{dirty}",
        f"  plugins: {plugins}",
        f"protocol  {record.protocol}",
    ]
    if record.artifacts:
        lines += ["artifacts", *(f"  {k}: {v}" for k, v in record.artifacts.items())]
    import yaml

    config = yaml.safe_dump(record.config, sort_keys=False).rstrip()
    lines += ["config", *(f"  {line}" for line in config.splitlines())]
    return "\n".join(lines)


@app.command()
def show(
    run: str = typer.Argument(..., help="Run id (or a unique prefix), or a record file."),
    results_dir: Path = typer.Option(Path("results"), help="Results registry folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the record's JSON as stored."),
) -> None:
    """Print one record of the registry: metrics, cost, provenance, artifacts, config."""
    from sslbench.core.records import read_record
    from sslbench.core.safe_io import InputError, read_text

    path = find_record(run, results_dir)
    try:
        record = read_record(path)
    except InputError as exc:
        raise UsageError(f"unreadable record {path}: {exc.problem}") from None
    typer.echo(read_text(path, "record").rstrip() if as_json else describe(record))
