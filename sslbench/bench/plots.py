"""Curves of a run, from its ``metrics.csv`` (the figures the original README showed): PNG
files in the run folder, or SVG text for the report."""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO, Any

import pandas as pd

Panels = list[tuple[pd.DataFrame, str, str]]  # (rows, column on the y axis, its label)


def _figure(panels: Panels, x: str, title: str, path: Path | IO[str], **save: Any) -> None:
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
    fig.savefig(path, dpi=110, **save)
    plt.close(fig)


def figure_svg(panels: Panels, x: str, title: str) -> str:
    """The same figure as SVG text for a web page: text kept as text (small, selectable), and
    no date or random ids, so the same data gives the same bytes."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "sslbench"}):
        _figure(panels, x, title, buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def run_figures(frame: pd.DataFrame) -> dict[str, tuple[Panels, str, str]]:
    """The curves of one run's ``metrics.csv`` rows: name -> (panels, x column, title)."""
    pre = frame[frame.phase == "pretrain"].dropna(subset=["loss"])
    lin = frame[frame.phase == "linear"].dropna(subset=["loss"])
    figures: dict[str, tuple[Panels, str, str]] = {}
    if len(pre):
        figures["pretrain"] = ([(pre, "loss", "loss"), (pre, "lr", "learning rate")], "step",
                               "Pretraining")
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
    written: dict[str, str] = {}
    for name, (panels, x, title) in run_figures(pd.read_csv(csv)).items():
        path = run_dir / f"{name}.png"
        _figure(panels, x, title, path)
        written[f"plot_{name}"] = str(path)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
