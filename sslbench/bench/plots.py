"""PNG curves of a run, from its ``metrics.csv`` (the figures the original README showed).

``metrics.csv`` is read as untrusted input (:func:`read_metrics`): a torn last line, what a kill
during an append leaves, is dropped; anything else malformed is one line naming the file, the
line and the problem. PNGs are written atomically, so a full disk leaves the previous plot.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from sslbench.core import safe_io
from sslbench.engine.monitor import FIELDS

METRICS_LIMIT = 256 * 2**20  # a row is ~80 bytes: millions of logged steps
USED = ["phase", "epoch", "step", "loss", "lr", "test_loss", "test_acc1", "test_acc5"]
NUMERIC = [f for f in FIELDS if f != "phase"]


def _figure(panels: list[tuple[pd.DataFrame, str, str]], x: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for ax, (frame, column, label) in zip(axes[0], panels, strict=True):
        ax.plot(frame[x], frame[column], lw=1.5)
        ax.set_xlabel(x)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    """Render to memory, then write atomically (the old PNG stays if the disk is full)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    safe_io.atomic_write_bytes(path, buffer.getvalue(), "plot")


def read_metrics(path: Path) -> pd.DataFrame:
    """The rows of a ``metrics.csv``, numeric columns as numbers; one line if malformed."""
    text = safe_io.read_text(path, "metrics file", METRICS_LIMIT)
    if not text.endswith("\n"):  # a torn last row: the kill came mid-append
        text = text[:text.rfind("\n") + 1]
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _bad_metrics(path, safe_io.one_line(str(exc), 200)) from None
    missing = [c for c in USED if c not in frame.columns]
    if missing:
        raise _bad_metrics(path, f"not an sslbench metrics file (no column "
                                 f"{safe_io.truncate(missing[0])} in its header)")
    for column in (c for c in NUMERIC if c in frame.columns):
        raw = frame[column]
        values = pd.to_numeric(raw.where(raw != ""), errors="coerce")
        bad = values.isna() & ~raw.str.lower().isin(["", "nan", "inf", "-inf"])
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise _bad_metrics(path, f"line {row + 2}: {column} "
                                     f"{safe_io.truncate(raw.iloc[row], 40)} is not a number")
        frame[column] = values
    return frame


def _bad_metrics(path: Path, problem: str) -> safe_io.InputError:
    return safe_io.InputError(f"metrics file {path}: {problem}", path, problem)


def plot_run(run_dir: Path) -> dict[str, str]:
    """Write ``pretrain.png``, ``linear_train.png``, ``linear_eval.png``; return their paths."""
    csv = run_dir / "metrics.csv"
    if not csv.exists():
        return {}
    frame = read_metrics(csv)
    written: dict[str, str] = {}
    pre = frame[frame.phase == "pretrain"].dropna(subset=["loss"])
    lin = frame[frame.phase == "linear"].dropna(subset=["loss"])
    if len(pre):
        path = run_dir / "pretrain.png"
        _figure([(pre, "loss", "loss"), (pre, "lr", "learning rate")], "step",
                "Pretraining", path)
        written["plot_pretrain"] = str(path)
    if len(lin):
        path = run_dir / "linear_train.png"
        _figure([(lin, "loss", "train loss"), (lin, "lr", "learning rate")], "epoch",
                "Linear probe: training", path)
        written["plot_linear_train"] = str(path)
        path = run_dir / "linear_eval.png"
        _figure([(lin, "test_loss", "test loss"), (lin, "test_acc1", "Acc@1 (%)"),
                 (lin, "test_acc5", "Acc@5 (%)")], "epoch", "Linear probe: test split", path)
        written["plot_linear_eval"] = str(path)
    return written


def plot_compute(frame: pd.DataFrame, path: Path) -> Path:
    """Acc@1 against pretraining compute: one point per recipe, error bars over seeds.

    ``frame`` is :func:`sslbench.bench.table.records_frame`'s (one row per run); x is the mean
    pretraining device-hours, y the mean linear Acc@1 with ± one standard deviation over seeds
    (none for a single seed). One panel per dataset and backbone.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = frame.dropna(subset=["acc1"])
    panels = list(frame.groupby(["dataset", "backbone"], sort=True))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.5 * max(1, len(panels)), 4.2),
                             squeeze=False)
    for ax, ((dataset, backbone), panel) in zip(axes[0], panels, strict=False):
        for (method, _), runs in panel.groupby(["method", "config_hash"], sort=True):
            std = runs.acc1.std(ddof=1) if len(runs) > 1 else 0.0
            ax.errorbar(runs.hours.mean(), runs.acc1.mean(), yerr=std, fmt="o", capsize=4,
                        label=f"{method} (n={len(runs)})")
        ax.set_xlabel("pretraining device-hours")
        ax.set_ylabel("linear Acc@1 (%)")
        ax.set_title(f"{dataset} · {backbone}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    _save(fig, path)
    return path
