"""Curves of a run, from its ``metrics.csv`` (the figures the original README showed): PNG
files in the run folder, or SVG text for the report.

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

Panels = list[tuple[pd.DataFrame, str, str]]  # (rows, column on the y axis, its label)
METRICS_LIMIT = 256 * 2**20  # a row is ~80 bytes: millions of logged steps
USED = ["phase", "epoch", "step", "loss", "lr", "test_loss", "test_acc1", "test_acc5"]
NUMERIC = [f for f in FIELDS if f != "phase"]


def _figure(panels: Panels, x: str, title: str, path: Path) -> None:
    """The panels side by side, written to ``path`` as a PNG (atomically)."""
    _save(_draw(panels, x, title), path)


def _draw(panels: Panels, x: str, title: str):
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
    return fig


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


def figure_svg(panels: Panels, x: str, title: str) -> str:
    """The same figure as SVG text for a web page: text kept as text (small, selectable), and
    no date or random ids, so the same data gives the same bytes."""
    import matplotlib
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "sslbench"}):
        fig = _draw(panels, x, title)
        try:
            fig.savefig(buffer, format="svg", dpi=110, metadata={"Date": None})
        finally:
            plt.close(fig)
    return buffer.getvalue()


def run_figures(frame: pd.DataFrame) -> dict[str, tuple[Panels, str, str]]:
    """The curves of one run's ``metrics.csv`` rows: name -> (panels, x column, title)."""
    pre = frame[frame.phase == "pretrain"].dropna(subset=["loss"])
    lin = frame[frame.phase == "linear"].dropna(subset=["loss"])
    figures: dict[str, tuple[Panels, str, str]] = {}
    knn = frame[frame.phase == "online_knn"].dropna(subset=["test_acc1"])
    probe = frame[frame.phase == "online_linear"].dropna(subset=["test_acc1"])
    if len(pre):
        online = [(rows, "test_acc1", label) for rows, label in (
            (knn, "online kNN Acc@1 (%)"), (probe, "online probe Acc@1 (%)")) if len(rows)]
        figures["pretrain"] = ([(pre, "loss", "loss"), (pre, "lr", "learning rate"), *online],
                               "step", "Pretraining (online figures: held-out train slice)")
    if len(lin):
        figures["linear_train"] = ([(lin, "loss", "train loss"), (lin, "lr", "learning rate")],
                                   "epoch", "Linear probe: training")
        figures["linear_eval"] = ([(lin, "test_loss", "test loss"), (lin, "test_acc1", "Acc@1 (%)"),
                                   (lin, "test_acc5", "Acc@5 (%)")], "epoch",
                                  "Linear probe: test split")
    return figures


def plot_run(run_dir: Path) -> dict[str, str]:
    """Write ``pretrain.png``, ``linear_train.png``, ``linear_eval.png``; return their paths."""
    csv = run_dir / "metrics.csv"
    if not csv.exists():
        return {}
    frame = read_metrics(csv)
    written: dict[str, str] = {}
    for name, (panels, x, title) in run_figures(frame).items():
        path = run_dir / f"{name}.png"
        _figure(panels, x, title, path)
        written[f"plot_{name}"] = str(path)
    return written


def plot_online(runs: list[tuple[str, Path]], path: Path) -> Path:
    """Online kNN Acc@1 over pretraining epochs of several runs (``(label, run folder)``), on
    their held-out pretraining slice; epoch 0 is each run's untrained backbone, and the dashed
    line their mean there: the random floor of that slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    floors = []
    for label, run_dir in runs:
        frame = read_metrics(Path(run_dir) / "metrics.csv")
        knn = frame[frame.phase == "online_knn"].dropna(subset=["test_acc1"])
        if knn.empty:
            raise ValueError(f"{run_dir} has no online kNN rows (was eval.online.knn_every 0?)")
        ax.plot(knn.epoch, knn.test_acc1, marker="o", ms=3, lw=1.5, label=label)
        floors += list(knn[knn.epoch == 0].test_acc1)
    if floors:
        ax.axhline(sum(floors) / len(floors), color="grey", ls="--", lw=1,
                   label="untrained backbone (epoch 0)")
    ax.set_xlabel("pretraining epoch")
    ax.set_ylabel("online kNN Acc@1 (%), held-out train slice")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    _save(fig, path)
    return path


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
