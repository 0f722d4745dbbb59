"""The comparison table, always regenerated from the registry (never typed by hand).

Records of one recipe (same ``config_hash``) with different seeds form one row: mean ± std over
seeds, with n. Only completed records count; the latest record of a run id wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from sslbench.core.records import RunRecord

START = "<!-- sslbench:results:start -->"
END = "<!-- sslbench:results:end -->"
COLUMNS = ["Model", "Backbone", "Dataset", "Epochs", "Acc@1", "Acc@5", "kNN", "n", "Recipe",
           "Pretrain h", "img/s"]
TEXT_COLUMNS = {"Model", "Backbone", "Dataset", "Recipe"}


def records_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    rows = [{
        "run_id": r.run_id, "created": r.created, "config_hash": r.config_hash,
        "method": r.method, "backbone": r.backbone, "dataset": r.dataset, "seed": r.seed,
        "epochs": r.epochs, "acc1": r.metrics.linear_acc1, "acc5": r.metrics.linear_acc5,
        "knn": r.metrics.knn_acc1, "hours": r.cost.pretrain_seconds / 3600 * r.cost.num_devices,
        "ips": r.cost.images_per_second, "device": r.cost.device, "recipe": recipe_summary(r),
    } for r in records if r.status == "completed"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("created").drop_duplicates("run_id", keep="last")


def recipe_summary(record: RunRecord) -> str:
    """What differs from a paper-scale run, visible in the table: size, subset, batch."""
    data, pre = record.config.get("data", {}), record.config.get("pretrain", {})
    parts = []
    if data.get("image_size"):
        parts.append(f"{data['image_size']}px")
    if data.get("train_subset"):
        n = data["train_subset"]
        parts.append(f"{n // 1000}k imgs" if n % 1000 == 0 else f"{n} imgs")
    parts.append(f"bs {pre.get('batch_size', '?')}")
    return ", ".join(parts)


def mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def summarise(frame: pd.DataFrame, display: Callable[[str, str], str] = lambda k, n: n,
              sort: str = "acc1") -> pd.DataFrame:
    """One row per recipe: mean ± std over seeds."""
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    keys = ["dataset", "backbone", "method", "config_hash"]
    rows = []
    for (dataset, backbone, method, _), group in frame.groupby(keys, sort=False):
        rows.append({
            "Model": display("methods", method), "Backbone": display("backbones", backbone),
            "Dataset": display("datasets", dataset), "Epochs": int(group.epochs.iloc[0]),
            "Acc@1": mean_std(group.acc1), "Acc@5": mean_std(group.acc5),
            "kNN": mean_std(group.knn), "n": len(group), "Recipe": group.recipe.iloc[0],
            "Pretrain h": f"{group.hours.mean():.3f}",
            "img/s": f"{group.ips.mean():.0f}" if group.ips.notna().any() else "–",
            "_sort": (dataset, backbone, -_score(group[sort])),
        })
    rows.sort(key=lambda row: row.pop("_sort"))
    return pd.DataFrame(rows, columns=COLUMNS)


def _score(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else float("-inf")


def render(summary: pd.DataFrame, fmt: str = "md") -> str:
    if fmt == "csv":
        return summary.to_csv(index=False)
    if summary.empty:
        return "_No completed runs in the registry yet._\n"
    align = ["left" if c in TEXT_COLUMNS else "right" for c in summary.columns]
    return summary.to_markdown(index=False, tablefmt="pipe", colalign=align,
                               disable_numparse=True) + "\n"


def replace_block(text: str, table: str) -> str:
    """Put ``table`` between the README markers (appending the markers if absent)."""
    block = f"{START}\n{table.rstrip()}\n{END}"
    if START in text and END in text and text.index(START) < text.index(END):
        head, rest = text.split(START, 1)
        return head + block + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"
