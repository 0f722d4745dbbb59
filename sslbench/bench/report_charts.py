"""The report's figures as SVG text (matplotlib): accuracy against compute, and a run's curves."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from sslbench.bench import plots
from sslbench.bench import table as tables
from sslbench.bench.report_data import Display
from sslbench.core.records import RunRecord

# (aggregate column, axis label): one row of panels each
METRICS = [("acc1", "linear Acc@1 (%)"), ("knn", "kNN Acc@1 (%)")]


def compute_svg(records: list[RunRecord], display: Display) -> str | None:
    """Accuracy against pretraining device-hours, one series per method, one point per recipe
    (mean over seeds, error bar ± one std where n > 1); a column of panels per dataset and
    backbone, linear Acc@1 above kNN Acc@1. ``None`` when no completed run has an accuracy."""
    frame = tables.records_frame(records)
    if frame.empty or frame[["acc1", "knn"]].isna().all().all():
        return None
    agg = tables.aggregate(frame, sort="method")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(agg.groupby(["dataset", "backbone"], sort=True))
    methods = sorted(agg.method.unique())
    palette = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    colours = {m: palette(i % palette.N) for i, m in enumerate(methods)}
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "sslbench"}):
        fig, axes = plt.subplots(len(METRICS), len(panels), squeeze=False, layout="constrained",
                                 figsize=(4.8 * len(panels) + 1.6, 3.3 * len(METRICS)))
        for col, ((dataset, backbone), panel) in enumerate(panels):
            for row, (metric, label) in enumerate(METRICS):
                _scatter(axes[row][col], panel, metric, colours, display)
                axes[row][col].set_ylabel(label)
            axes[0][col].set_title(f"{display('datasets', dataset)} · "
                                   f"{display('backbones', backbone)}")
            axes[-1][col].set_xlabel("pretraining device-hours")
        handles = [plt.Line2D([], [], color=colours[m], marker="o", ls="",
                              label=display("methods", m)) for m in methods]
        fig.legend(handles=handles, loc="outside right upper", fontsize=9)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        plt.close(fig)
    return _inline(buffer.getvalue())


def _scatter(ax, panel: pd.DataFrame, metric: str, colours: dict, display: Display) -> None:
    for method, rows in panel.groupby("method", sort=True):
        rows = rows.dropna(subset=[f"{metric}_mean"])
        std = rows[f"{metric}_std"].where(rows[f"{metric}_count"] > 1, 0.0).fillna(0.0)
        ax.errorbar(rows.hours, rows[f"{metric}_mean"], yerr=std, fmt="o", capsize=3,
                    color=colours[method], label=display("methods", method))
    ax.grid(alpha=0.3)


def run_dir(record: RunRecord, runs_dir: Path) -> Path | None:
    """The run's folder when it is here: ``<runs_dir>/<run-id>``, else where the record says."""
    candidates = [runs_dir / record.run_id]
    if record.artifacts.get("run_dir"):
        candidates.append(Path(record.artifacts["run_dir"]))
    return next((c for c in candidates if (c / "metrics.csv").is_file()), None)


def run_curves(record: RunRecord, runs_dir: Path) -> tuple[list[str], str | None]:
    """The run's curves as inline SVGs from its ``metrics.csv``, or a note saying why none."""
    folder = run_dir(record, runs_dir)
    if folder is None:
        return [], (f"Curves not available: the run folder ({runs_dir / record.run_id}) is "
                    "not here. Run folders are not committed; the record keeps the final "
                    "metrics below.")
    csv = folder / "metrics.csv"
    try:
        figures = plots.run_figures(pd.read_csv(csv))
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [], f"Curves not available: {csv} is unreadable ({first})."
    if not figures:
        return [], f"Curves not available: {csv} has no logged steps."
    return [_inline(plots.figure_svg(*figure)) for figure in figures.values()], None


def _inline(svg: str) -> str:
    """An SVG document as an element for an HTML page (no XML prolog or doctype)."""
    return svg[svg.index("<svg"):]
