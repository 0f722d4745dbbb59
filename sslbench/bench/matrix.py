"""A benchmark matrix: method × backbone × dataset × seed, one ``run`` per cell, resumable.

A matrix is declared on the command line (``--methods simclr,byol --seeds 0,1``) or in a TOML
file::

    methods = ["simclr", "simsiam"]     # or "*": every registered method
    backbones = ["resnet18"]
    datasets = ["digits"]
    seeds = [0, 1, 2]
    epochs = 10                          # optional, for every cell

    [config]                             # settings for every cell (run's --config sections)
    pretrain.batch_size = 128

    [[cells]]                            # per-cell settings: the keys given must all match
    method = "simclr"
    dataset = "digits"
    config.method.temperature = 0.2

Each cell is resolved exactly as ``sslbench run`` resolves it (one
:class:`~sslbench.bench.cell.Cell`) and identified by its run id (recipe hash + seed), so a
matrix and single runs share the registry. A cell whose *completed* record exists is skipped
unless ``rerun``; a failed cell is recorded ``failed`` with its reason and the matrix goes on.
Layers, later wins: recipes < matrix ``[config]`` < matching ``[[cells]]`` < CLI ``--set`` <
CLI flags (``--epochs``...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from sslbench.bench.cell import Cell
from sslbench.bench.resolve import (
    IncompatibleBackbone,
    parse_sets,
    resolve_cell,
    validation_message,
)
from sslbench.core import safe_io
from sslbench.core.catalog import Catalog
from sslbench.core.config import flatten
from sslbench.core.store import RecordStore
from sslbench.errors import Stopped, Terminated, UsageError

AXES = {"methods": "methods", "backbones": "backbones", "datasets": "datasets"}


@dataclass
class MatrixSpec:
    """What to expand: names (or ``"*"``), seeds, and the settings layered onto every cell."""

    methods: list[str] | str = field(default_factory=list)
    backbones: list[str] | str = field(default_factory=list)
    datasets: list[str] | str = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)


def split_list(text: str | None) -> list[str] | str | None:
    """``"a, b"`` -> ``["a", "b"]``; ``"*"`` stays the wildcard; ``None`` stays unset."""
    if text is None:
        return None
    if text.strip() == "*":
        return "*"
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or a range ``"0-4"`` (inclusive) -> a list of seeds."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        low, sep, high = part.partition("-")
        try:
            seeds += list(range(int(low), int(high) + 1)) if sep else [int(part)]
        except ValueError:
            raise UsageError(f"--seeds expects integers like 0,1,2 or 0-4, got {part!r}") from None
    if not seeds or min(seeds) < 0:
        raise UsageError(f"--seeds expects non-negative integers, got {text!r}")
    return seeds


class _FileCell(BaseModel):
    """One ``[[cells]]`` table: the keys given must all match a cell for its settings to apply."""

    model_config = ConfigDict(extra="forbid", strict=True)
    method: str | None = None
    backbone: str | None = None
    dataset: str | None = None
    seed: int | None = Field(None, ge=0)
    config: dict[str, Any] = {}


def _listed(value: Any) -> Any:
    """One name (``"*"`` too) or one seed stands for a list of it."""
    return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value


class _MatrixFile(BaseModel):
    """The shape of a matrix file (strict: ``seeds = [true]`` or ``epochs = "2"`` are errors)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    methods: Annotated[list[str], BeforeValidator(_listed)] = []
    backbones: Annotated[list[str], BeforeValidator(_listed)] = []
    datasets: Annotated[list[str], BeforeValidator(_listed)] = []
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], BeforeValidator(_listed)] = [0]
    epochs: int | None = Field(None, ge=0)
    config: dict[str, Any] = {}
    cells: list[_FileCell] = []


def load_matrix_file(path: Path) -> MatrixSpec:
    """Read a matrix TOML file into a :class:`MatrixSpec`; any wrong key or shape is one line."""
    data = safe_io.load_document(path, "matrix file", fmt="TOML")
    unknown = sorted(set(data) - {*AXES, "seeds", "epochs", "config", "cells"})
    if unknown:
        raise UsageError(f"matrix file {path}: unknown key {safe_io.truncate(unknown[0])} "
                         "(expected methods, backbones, datasets, seeds, epochs, [config], "
                         "[[cells]])")
    try:
        spec = _MatrixFile.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"matrix file {path}: {validation_message(exc)}") from None
    return MatrixSpec(methods=spec.methods, backbones=spec.backbones, datasets=spec.datasets,
                      seeds=spec.seeds, epochs=spec.epochs, config=spec.config,
                      cells=[c.model_dump(exclude_none=True) for c in spec.cells])


def names(catalog: Catalog, kind: str, wanted: list[str] | str) -> list[str]:
    """The registered names for ``"*"``; otherwise each name checked (did-you-mean on a typo)."""
    if wanted == "*" or wanted == ["*"]:
        return [entry.name for entry in catalog.entries(kind)]
    if isinstance(wanted, str):
        wanted = [wanted]
    if not wanted:
        raise UsageError(f"the matrix names no {kind}: give --{kind} or '{kind}' in the file")
    for name in wanted:
        catalog.entry(kind, name)
    return list(dict.fromkeys(wanted))


def expand(spec: MatrixSpec, catalog: Catalog, *, config_file: Path | None = None,
           sets: list[str] = (), overrides: dict[str, Any] | None = None) -> list[Cell]:
    """Every cell of the matrix, resolved; in method, backbone, dataset, seed order. With
    ``methods = "*"``, a method that cannot use a backbone (MAE on a CNN) skips it."""
    axes = [names(catalog, kind, getattr(spec, attr)) for attr, kind in AXES.items()]
    every_method = spec.methods in ("*", ["*"])
    cli = flatten(parse_sets(list(sets)))
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    cells = []
    for method in axes[0]:
        for backbone in axes[1]:
            for dataset in axes[2]:
                for seed in spec.seeds:
                    layered = {**flatten(spec.config), **_epochs(spec.epochs),
                               **_cell_settings(spec.cells, method, backbone, dataset, seed),
                               **cli, **flags, "seed": seed}
                    try:
                        cells.append(resolve_cell(catalog, method, backbone, dataset,
                                                  config_file=config_file, overrides=layered))
                    except IncompatibleBackbone:
                        if not every_method:  # named explicitly: the user wants to know
                            raise
                        break  # "*" means every method that can use this backbone (MAE: ViTs)
    return cells


def _epochs(epochs: int | None) -> dict[str, int]:
    return {} if epochs is None else {"pretrain.epochs": epochs}


def _cell_settings(cells: list[dict], method: str, backbone: str, dataset: str,
                   seed: int) -> dict[str, Any]:
    here = {"method": method, "backbone": backbone, "dataset": dataset, "seed": seed}
    merged: dict[str, Any] = {}
    for cell in cells:
        if all(cell[key] == value for key, value in here.items() if key in cell):
            merged.update(flatten(cell.get("config", {})))
    return merged




def completed(cell: Cell, results_dir: Path) -> bool:
    """Whether the registry already holds a completed record of this very cell.

    The record must be valid (see :func:`~sslbench.core.records.read_record`) and of this
    cell's recipe and seed: a record of another cell copied under this one's name does not
    count, and a missing or unreadable one neither (the cell runs again and its new record
    replaces it).
    """
    record = RecordStore(results_dir).read(cell.run_id)
    return (record is not None and record.status == "completed"
            and record.config_hash == cell.config_hash and record.seed == cell.config.seed)


def plan(cells: list[Cell], results_dir: Path, rerun: bool = False) -> list[tuple[Cell, bool]]:
    """``(cell, skip)`` for every cell, duplicates (same run id) dropped."""
    unique = {cell.run_id: cell for cell in cells}.values()
    return [(cell, not rerun and completed(cell, results_dir)) for cell in unique]


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run id, reason)

    def line(self) -> str:
        return (f"matrix: {len(self.done)} done, {len(self.skipped)} skipped, "
                f"{len(self.failed)} failed")


def run_matrix(cells: list[Cell], executor, opts, *, rerun: bool = False,
               report=lambda line: None) -> Summary:
    """Skip completed cells, run the others on ``executor``, and report each as it ends.

    ``executor`` has ``run(cells, opts)`` yielding one outcome per cell (see
    :mod:`sslbench.bench.executors`); ``report`` receives one line per cell.
    """
    summary = Summary()
    todo = []
    for cell, skip in plan(cells, opts.results_dir, rerun):
        if skip:
            summary.skipped.append(cell.run_id)
            report(f"skip    {cell.run_id} (completed record in {opts.results_dir})")
        else:
            todo.append(cell)
    try:
        for outcome in executor.run(todo, opts) if todo else ():
            if outcome.status == "done":
                summary.done.append(outcome.run_id)
                report(f"done    {outcome.run_id}")
            else:
                summary.failed.append((outcome.run_id, outcome.reason or "unknown"))
                report(f"failed  {outcome.run_id}: {outcome.reason}")
    except (KeyboardInterrupt, Stopped, Terminated):  # what finished is in the registry
        report(f"{summary.line()}, {len(todo) - len(summary.done) - len(summary.failed)} "
               "not run (interrupted)")
        raise
    return summary
