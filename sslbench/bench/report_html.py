"""The report's pages: Jinja2 templates (``templates/``) around itables' DataTables.

itables renders a data frame as a DataTables table; ``connected=False`` embeds the data, and
the page embeds DataTables itself once (:func:`datatables_init`), so nothing is fetched from a
network. The tables' options are DataTables' own: SearchPanes for the dataset / backbone /
method filters, header clicks for sorting.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import jinja2
import pandas as pd

from sslbench.core.records import RunRecord

# Columns of each table that get a filter pane (names from report_data's column lists).
PANES = {"runs-table": ["Dataset", "Backbone", "Model", "Status"],
         "recipes-table": ["Dataset", "Backbone", "Model"]}


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("sslbench.bench", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)


def datatables_init() -> str:
    """DataTables (the bundle that itables ships), embedded once in a page for all its tables."""
    from itables import options
    from itables.javascript import generate_init_offline_itables_html

    return generate_init_offline_itables_html(options.dt_bundle)


def datatable(frame: pd.DataFrame, table_id: str) -> str:
    """``frame`` (cells already HTML) as a sortable table with filter panes, every row shown."""
    from itables import to_html_datatable

    panes = [frame.columns.get_loc(c) for c in PANES[table_id]]
    return to_html_datatable(
        frame, table_id=table_id, connected=False, allow_html=True, showIndex=False,
        maxBytes=0, paging=False, classes="display compact nowrap", order=[], scrollX=True,
        text_in_header_can_be_selected=False,  # a click anywhere on a header sorts
        layout={"top1": "searchPanes"},
        searchPanes={"columns": panes, "threshold": 1, "cascadePanes": True,
                     "layout": f"columns-{len(panes)}", "initCollapsed": table_id != "runs-table"},
        columnDefs=[{"searchPanes": {"show": True}, "targets": panes}],
    )


def index_page(*, runs: pd.DataFrame, recipes: pd.DataFrame, compute_svg: str | None,
               warnings: Sequence[str], results_dir: str) -> str:
    """The front page; with no record, an explicit empty state (and no table code at all)."""
    tables = {}
    if len(runs):
        tables = {"itables_init": datatables_init(), "runs_table": datatable(runs, "runs-table"),
                  "recipes_table": datatable(recipes, "recipes-table") if len(recipes) else
                  '<p class="empty">No completed run yet: every record failed.</p>'}
    return _templates().get_template("index.html").render(
        n_records=len(runs), warnings=warnings, results_dir=results_dir,
        compute_svg=compute_svg, **tables)


def run_page(record: RunRecord, *, headline: str, sections: list, curves: list[str],
             curves_note: str | None) -> str:
    """One run's page: its curves (or why there are none) and its record as tables."""
    return _templates().get_template("run.html").render(
        record=record, headline=headline, sections=sections, curves=curves,
        curves_note=curves_note)
