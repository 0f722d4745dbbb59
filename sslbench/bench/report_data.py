"""What the report shows, as plain data: table frames and a run's sections of (key, value) rows.

Cells of the two tables are strings ready for HTML (escaped here, since the run column holds a
link): numbers are formatted, a missing number is an empty cell, so that DataTables still
detects the column as numeric and sorts it by value.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import pandas as pd

from sslbench.bench import table as tables
from sslbench.core.config import flatten
from sslbench.core.records import RunRecord

Display = Callable[[str, str], str]  # (kind, name) -> display name, as in sslbench table

RUN_COLUMNS = ["Run", "Status", "Model", "Backbone", "Dataset", "Seed", "Epochs", "Acc@1",
               "Acc@5", "kNN", "Pretrain h", "img/s", "Precision", "Device", "Created"]
RECIPE_COLUMNS = ["Model", "Backbone", "Dataset", "Epochs", "Acc@1", "Acc@1 std", "Acc@5",
                  "Acc@5 std", "kNN", "kNN std", "n", "Recipe", "Pretrain h", "img/s"]


def display_name(record: RunRecord, kind: str, display: Display) -> str:
    """The record's own display name (``method_display`` ...) where it has one, else the
    catalog's for its name."""
    field = {"methods": "method", "backbones": "backbone", "datasets": "dataset"}[kind]
    return getattr(record, f"{field}_display", None) or display(kind, getattr(record, field))


def page_names(records: Sequence[RunRecord]) -> list[str]:
    """One file name per record, ``<run-id>.html``: safe characters only, and unique even
    where two record files carry the same run id."""
    names: list[str] = []
    for record in records:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", record.run_id).lstrip(".") or "run"
        name, k = f"{stem}.html", 1
        while name in names:
            k += 1
            name = f"{stem}-{k}.html"
        names.append(name)
    return names


def _number(value: float | None, digits: int) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def runs_frame(records: Sequence[RunRecord], pages: Sequence[str], display: Display,
               ) -> pd.DataFrame:
    """One row per record, failed ones included, each linking to its run page."""
    rows = []
    for record, page in zip(records, pages, strict=True):
        m, c = record.metrics, record.cost
        status = record.status + (f": {record.reason}" if record.reason else "")
        rows.append([
            f'<a href="run/{quote(page)}">{html.escape(record.run_id)}</a>', status,
            display_name(record, "methods", display), display_name(record, "backbones", display),
            display_name(record, "datasets", display), str(record.seed), str(record.epochs),
            _number(m.linear_acc1, 2), _number(m.linear_acc5, 2), _number(m.knn_acc1, 2),
            _number(c.pretrain_seconds / 3600 * c.num_devices, 3),
            _number(c.images_per_second, 0), c.precision or "", c.device,
            f"{record.created:%Y-%m-%d}",
        ])
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return _escape(frame, skip={"Run"})


def recipes_frame(records: Sequence[RunRecord], display: Display) -> pd.DataFrame:
    """One row per recipe, mean and std over seeds: the rows of ``sslbench table``."""
    frame = tables.records_frame(records)
    if frame.empty:
        return pd.DataFrame(columns=RECIPE_COLUMNS)
    agg = tables.aggregate(frame)
    out = pd.DataFrame({
        "Model": [display("methods", m) for m in agg.method],
        "Backbone": [display("backbones", b) for b in agg.backbone],
        "Dataset": [display("datasets", d) for d in agg.dataset],
        "Epochs": agg.epochs.astype(int).astype(str).to_numpy(),
        "n": agg.n.astype(str).to_numpy(), "Recipe": agg.recipe.to_numpy(),
        "Pretrain h": [_number(h, 3) for h in agg.hours],
        "img/s": [_number(v, 0) for v in agg.ips],
    })
    for label, c in (("Acc@1", "acc1"), ("Acc@5", "acc5"), ("kNN", "knn")):
        out[label] = [_number(v, 2) for v in agg[f"{c}_mean"]]
        out[f"{label} std"] = [_number(s, 2) if n > 1 else "" for s, n in
                               zip(agg[f"{c}_std"], agg[f"{c}_count"], strict=True)]
    return _escape(out[RECIPE_COLUMNS])


def _escape(frame: pd.DataFrame, skip: set[str] = frozenset()) -> pd.DataFrame:
    return frame.apply(lambda col: col if col.name in skip else col.map(html.escape))


Section = tuple[str, list[tuple[str, str]]]  # a titled table of (key, value) rows


def run_sections(record: RunRecord, display: Display) -> list[Section]:
    """A run's record as readable tables: the cell, metrics, cost, provenance, artifacts and the
    flattened config. Every field of the models is listed, so new fields appear by themselves."""
    cost = record.cost
    cell = [("run id", record.run_id), ("status", record.status),
            *([("reason", record.reason)] if record.reason else []),
            ("created", f"{record.created:%Y-%m-%d %H:%M:%S %Z}"),
            ("method", _named(record, "methods", display)),
            ("backbone", _named(record, "backbones", display)),
            ("dataset", _named(record, "datasets", display)),
            ("seed", str(record.seed)), ("epochs", str(record.epochs)),
            ("recipe", f"{tables.recipe_summary(record)} (config hash {record.config_hash})"),
            ("protocol", record.protocol), ("schema version", str(record.schema_version))]
    hours = cost.pretrain_seconds / 3600 * cost.num_devices
    return [
        ("Run", cell),
        ("Metrics", _fields(record.metrics.model_dump())),
        ("Cost", [*_fields(cost.model_dump()), ("pretrain device-hours", f"{hours:.4f}")]),
        ("Provenance", _fields(record.provenance.model_dump())),
        ("Artifacts", _fields(record.artifacts)),
        ("Config", _fields(flatten(record.config))),
    ]


def _named(record: RunRecord, kind: str, display: Display) -> str:
    name = display_name(record, kind, display)
    raw = getattr(record, {"methods": "method", "backbones": "backbone",
                           "datasets": "dataset"}[kind])
    return name if name == raw else f"{name} ({raw})"




def _fields(values: dict[str, Any]) -> list[tuple[str, str]]:
    return [(key, _value(value)) for key, value in values.items()]


def _value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)
