"""The comparison table, always regenerated from the registry (never typed by hand).

Records of one recipe (same ``config_hash``) with different seeds form one row: mean ± std over
seeds, with n. Only completed records count; the latest record of a run id wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas (~0.7 s to import) loads when a table is built, not for --help
    import pandas as pd

    from sslbench.core.records import RunRecord

START = "<!-- sslbench:results:start -->"
END = "<!-- sslbench:results:end -->"
COLUMNS = ["Model", "Backbone", "Dataset", "Epochs", "Acc@1", "Acc@5", "kNN", "n", "Recipe",
           "Pretrain h", "img/s"]
TEXT_COLUMNS = {"Model", "Backbone", "Dataset", "Recipe"}

# --metrics names -> (column label, records_frame column, decimals) of each column they show;
# "<p>pct" and "ft<p>pct" name any few-label percentage (linear / fine-tune Acc@1 on p% labels)
METRICS = {
    "linear": [("Acc@1", "acc1", 2), ("Acc@5", "acc5", 2)],
    "knn": [("kNN", "knn", 2)],
    "finetune": [("FT Acc@1", "ft1", 2), ("FT Acc@5", "ft5", 2)],
    "rankme": [("RankMe", "rankme", 1)],
    "std": [("Feat. std", "fstd", 4)],
}
DEFAULT_METRICS = ("linear", "knn")  # the README's columns
_FEW = re.compile(r"^(ft)?(\d+(?:\.\d+)?)pct$")


def metric_columns(name: str) -> list[tuple[str, str, int]]:
    """The columns ``--metrics`` name ``name`` shows; a one-line usage error if unknown."""
    if name in METRICS:
        return METRICS[name]
    match = _FEW.match(name)
    if match:
        percent = f"{float(match[2]):g}"
        if match[1]:
            return [(f"{percent}% FT Acc@1", f"ft{percent}pct", 2)]
        return [(f"{percent}% Acc@1", f"lin{percent}pct", 2)]
    from sslbench.errors import UsageError

    raise UsageError(f"unknown metric {name!r} for --metrics; known: {', '.join(METRICS)}, "
                     "1pct, 10pct (linear on 1% / 10% labels), ft1pct, ft10pct (fine-tune)")


def _few_label_columns(record: RunRecord) -> dict[str, float | None]:
    out = {}
    for few in record.metrics.few_label:
        out[f"lin{few.percent:g}pct"] = few.linear_acc1
        out[f"ft{few.percent:g}pct"] = few.finetune_acc1
    return out


def records_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    import pandas as pd

    rows = [{
        "run_id": r.run_id, "created": r.created, "config_hash": r.config_hash,
        # a transfer record is a row of the dataset it was evaluated on
        "method": r.method, "backbone": r.backbone, "dataset": r.eval_dataset or r.dataset,
        "pretrain_dataset": r.dataset, "seed": r.seed,
        "epochs": r.epochs, "acc1": r.metrics.linear_acc1, "acc5": r.metrics.linear_acc5,
        "knn": r.metrics.knn_acc1, "hours": r.cost.pretrain_seconds / 3600 * r.cost.num_devices,
        "ips": r.cost.images_per_second, "device": r.cost.device, "recipe": recipe_summary(r),
        "ft1": r.metrics.finetune_acc1, "ft5": r.metrics.finetune_acc5,
        "rankme": r.metrics.rankme, "fstd": r.metrics.feature_std, **_few_label_columns(r),
    } for r in records if r.status == "completed"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("created").drop_duplicates("run_id", keep="last")


def recipe_summary(record: RunRecord) -> str:
    """What differs from a paper-scale run, visible in the table: size, subset, batch, and any
    backbone option (``width 0.5``)."""
    data, pre, backbone = (_section(record.config, name)
                           for name in ("data", "pretrain", "backbone"))
    parts = [f"{key.replace('_', ' ')} {str(value).lower()}"
             for key, value in sorted(backbone.items()) if key != "name"]
    if data.get("image_size"):
        parts.append(f"{data['image_size']}px")
    n = data.get("train_subset")
    if isinstance(n, int) and n:
        parts.append(f"{n // 1000}k imgs" if n % 1000 == 0 else f"{n} imgs")
    parts.append(f"bs {pre.get('batch_size', '?')}")
    if record.eval_dataset:
        parts.append(f"pretrained on {record.dataset}")
    return ", ".join(parts)


def _section(config: dict, name: str) -> dict:
    """A config section, or nothing where a record has none (a foreign or older record)."""
    section = config.get(name)
    return section if isinstance(section, dict) else {}


def mean_std(values: pd.Series) -> str:
    values = values.dropna()
    return _mean_std(values.mean(), values.std(ddof=1), len(values))


def _mean_std(mean: float, std: float, n: int, digits: int = 2) -> str:
    """``"m ± s"`` over seeds (sample std), ``"m"`` for one seed, ``"–"`` for none."""
    if n == 0:
        return "–"
    if n == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


# Sort keys: the records_frame column, and whether larger is better (listed first).
SORTS = {"acc1": ("acc1", True), "acc5": ("acc5", True), "knn": ("knn", True),
         "finetune": ("ft1", True), "rankme": ("rankme", True),
         "hours": ("hours", False), "ips": ("ips", True), "epochs": ("epochs", True),
         "method": ("method", False)}


def filter_frame(frame: pd.DataFrame, *, dataset: str | None = None,
                 backbone: str | None = None, method: str | None = None) -> pd.DataFrame:
    """Only the rows of the named dataset / backbone / method (``None``: any)."""
    import pandas as pd

    if frame.empty:
        return frame
    keep = pd.Series(True, index=frame.index)
    for column, value in (("dataset", dataset), ("backbone", backbone), ("method", method)):
        if value is not None:
            keep &= frame[column] == value
    return frame[keep]


def aggregate(frame: pd.DataFrame, sort: str = "acc1", reverse: bool = False,
              columns: Sequence[str] = ("acc1", "acc5", "knn")) -> pd.DataFrame:
    """The numbers behind :func:`summarise`: one row per recipe (dataset, backbone, method,
    config_hash) with ``epochs``, ``n``, ``recipe``, mean ``hours`` and ``ips``, and
    ``<metric>_mean/_std/_count`` for each of ``columns`` (records_frame columns; one no
    record has is all missing); ordered as the table is."""

    column, larger_first = SORTS[sort]
    keys = ["dataset", "backbone", "method", "config_hash"]
    columns = list(dict.fromkeys([*columns, *([] if column in (
        "hours", "ips", "epochs", "method") else [column])]))
    frame = frame.assign(**{c: float("nan") for c in columns if c not in frame})
    stats = {f"{c}_{f}": (c, f) for c in columns for f in ("mean", "std", "count")}
    agg = frame.groupby(keys, sort=False).agg(
        epochs=("epochs", "first"), n=("run_id", "size"), recipe=("recipe", "first"),
        hours=("hours", "mean"), ips=("ips", "mean"), **stats).reset_index()
    value = agg["method"] if column == "method" else agg[column if column in (
        "hours", "ips", "epochs") else f"{column}_mean"]
    agg = agg.assign(_value=value).sort_values(
        "_value", ascending=larger_first == reverse, na_position="last", kind="stable")
    return agg.sort_values(["dataset", "backbone"], kind="stable").drop(columns="_value")


def summarise(frame: pd.DataFrame, display: Callable[[str, str], str] = lambda k, n: n,
              sort: str = "acc1", reverse: bool = False,
              metrics: Sequence[str] = DEFAULT_METRICS) -> pd.DataFrame:
    """One row per recipe: mean ± std over seeds; grouped by dataset and backbone, and within
    each group ordered by ``sort`` (best first: highest accuracy, fewest hours), or the other
    way round with ``reverse``; ``metrics`` (names of :data:`METRICS`, or ``1pct``...) pick the
    figure columns. Vectorised: 10,000 records summarise in well under a second."""
    import pandas as pd

    shown = [col for name in metrics for col in metric_columns(name)]
    labels = ["Model", "Backbone", "Dataset", "Epochs", *(label for label, _, _ in shown),
              "n", "Recipe", "Pretrain h", "img/s"]
    if frame.empty:
        return pd.DataFrame(columns=labels)
    agg = aggregate(frame, sort, reverse, [c for _, c, _ in shown])
    out = pd.DataFrame({
        "Model": [display("methods", m) for m in agg.method],
        "Backbone": [display("backbones", b) for b in agg.backbone],
        "Dataset": [display("datasets", d) for d in agg.dataset],
        "Epochs": agg.epochs.astype(int).to_numpy(),
        **{label: [_mean_std(*row, digits) for row in zip(
            agg[f"{c}_mean"], agg[f"{c}_std"], agg[f"{c}_count"], strict=True)]
           for label, c, digits in shown},
        "n": agg.n.to_numpy(), "Recipe": agg.recipe.to_numpy(),
        "Pretrain h": [f"{h:.3f}" for h in agg.hours],
        "img/s": ["–" if pd.isna(v) else f"{v:.0f}" for v in agg.ips],
    })
    return out[labels]


FORMATS = ("md", "csv", "html", "latex")


def render(summary: pd.DataFrame, fmt: str = "md") -> str:
    """Markdown (README style), CSV, HTML or LaTeX (booktabs, ``\\pm``) of a summary."""
    if fmt == "csv":
        return summary.to_csv(index=False)
    if fmt == "html":
        return summary.to_html(index=False, border=0, classes="sslbench-results",
                               na_rep="–") + "\n"
    if fmt == "latex":
        latex = summary.to_latex(index=False, escape=True, column_format=_latex_columns(summary))
        return latex.replace("±", r"$\pm$").replace("–", "--")
    if summary.empty:
        return "_No completed runs in the registry yet._\n"
    align = ["left" if c in TEXT_COLUMNS else "right" for c in summary.columns]
    return summary.to_markdown(index=False, tablefmt="pipe", colalign=align,
                               disable_numparse=True) + "\n"


def _latex_columns(summary: pd.DataFrame) -> str:
    return "".join("l" if c in TEXT_COLUMNS else "r" for c in summary.columns)


def is_fresh(text: str, table: str) -> bool:
    """Whether ``text`` already holds ``table`` between the README markers."""
    return START in text and replace_block(text, table) == text


def replace_block(text: str, table: str) -> str:
    """Put ``table`` between the README markers (appending the markers if absent)."""
    block = f"{START}\n{table.rstrip()}\n{END}"
    if START in text and END in text and text.index(START) < text.index(END):
        head, rest = text.split(START, 1)
        return head + block + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"
