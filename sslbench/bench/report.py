"""``sslbench report``: the registry as a static HTML site that opens from disk, offline.

The site::

    index.html            the runs table (one row per record), the recipes table (the rows of
                          ``sslbench table``: mean ± std over seeds), accuracy against compute
    run/<run-id>.html     one run: its curves (from runs/<run-id>/metrics.csv, when the run
                          folder is here), then its record as tables: metrics, cost,
                          provenance, artifacts, the resolved config (``run/``, not
                          ``runs/``: that name is the run folders', which git ignores)
    .sslbench-report      marks the folder as a report: only such a folder, or an empty one,
                          is ever replaced

Decision (issue 18): the tables are DataTables through **itables** (``connected=False``: the
data and DataTables itself are embedded in the page, nothing is fetched), with SearchPanes for
filtering by dataset, backbone, method and status, and header clicks for sorting; the charts
are **matplotlib SVGs** inlined in the pages. Why: the page must work from ``file://`` on a
machine with no network, where ES modules and CDNs do not load; matplotlib is already a
dependency and an SVG needs no script; itables is small, pure Python, and embeds DataTables
once per page (about 1 MB, in index.html only). Vega-Lite through altair was the alternative
for interactive charts, at the price of a second ~0.9 MB runtime (and vl-convert, 100 MB
installed) for a few dozen points; plotly.js is 4.6 MB.

The site is built in a temporary folder beside ``out`` and swapped in at the end, so a failed
run leaves the previous report (or nothing), never half a site.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sslbench.bench import report_charts, report_data, report_html
from sslbench.bench.report_data import Display
from sslbench.core.records import RunRecord
from sslbench.errors import SSLBenchError, UsageError

MARKER = ".sslbench-report"


def build_site(records: Sequence[RunRecord], warnings: Sequence[str], *, results_dir: Path,
               runs_dir: Path, display: Display) -> dict[str, str]:
    """Every page of the report: relative path -> HTML text."""
    records = sorted(records, key=lambda r: (r.dataset, r.backbone, r.method, r.seed, r.run_id))
    pages = report_data.page_names(records)
    site = {"index.html": report_html.index_page(
        runs=report_data.runs_frame(records, pages, display),
        recipes=report_data.recipes_frame(records, display),
        compute_svg=report_charts.compute_svg(list(records), display),
        warnings=warnings, results_dir=str(results_dir))}
    for record, page in zip(records, pages, strict=True):
        curves, note = report_charts.run_curves(record, runs_dir)
        headline = " · ".join([report_data.display_name(record, kind, display) for kind in
                               ("methods", "backbones", "datasets")] +
                              [f"seed {record.seed}", f"{record.epochs} epochs"])
        site[f"run/{page}"] = report_html.run_page(
            record, headline=headline, sections=report_data.run_sections(record, display),
            curves=curves, curves_note=note)
    return site


def check_out(out: Path) -> None:
    """Refuse an ``out`` that is a file, or a folder holding something other than a report."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder for the report")
    if out.is_dir() and not (out / MARKER).is_file() and any(out.iterdir()):
        raise UsageError(f"--out {out} is a folder that does not hold an sslbench report: "
                         "name a new or empty folder (the report replaces it as a whole)")


def write_site(site: dict[str, str], out: Path) -> Path:
    """Write the pages into a temporary folder beside ``out``, then put it in ``out``'s place;
    return the index page's path."""
    check_out(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as exc:
        raise SSLBenchError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    try:
        for relative, text in {**site, MARKER: "written by sslbench report; the whole folder "
                               "is replaced when the report is written again\n"}.items():
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp / relative).write_text(text, encoding="utf-8")
        _make_readable(tmp)
        _swap(tmp, out)
    except OSError as exc:
        raise SSLBenchError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "index.html"


def _make_readable(folder: Path) -> None:
    """mkdtemp's folder is private (0700); a site is for others to read too (umask applies)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def _swap(tmp: Path, out: Path) -> None:
    """Replace ``out`` by ``tmp``; if that fails, put the old report back."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
    os.replace(out, old / "site")
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(old / "site", out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
