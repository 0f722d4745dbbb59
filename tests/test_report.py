"""``sslbench report``: the site's pages, its empty state, and its refusals (no browser here;
tests/test_report_browser.py drives Chromium over a real run)."""

import shutil
from pathlib import Path

from typer.testing import CliRunner

from sslbench.bench import report, report_charts, report_data
from sslbench.cli import app
from sslbench.core.records import Cost, Metrics
from sslbench.core.store import write_record
from tests.test_records import make_record
from tests.test_table import display, records

runner = CliRunner()
COMMITTED = Path(__file__).resolve().parents[1] / "results"
METRICS_CSV = """\
phase,epoch,step,loss,lr,images_per_second,test_loss,test_acc1,test_acc5
pretrain,1,10,4.68,0.04,59.0,,,
pretrain,1,20,4.41,0.08,44.4,,,
linear,1,6,1.35,0.08,,36.2,70.2,95.2
linear,2,12,0.81,0.03,,35.3,73.0,97.7
"""


def invoke(*args):
    return runner.invoke(app, ["report", *map(str, args)])


def registry(tmp_path):
    """The committed registry plus one record whose run folder has a metrics.csv."""
    results = tmp_path / "results"
    shutil.copytree(COMMITTED, results)
    run_dir = tmp_path / "runs" / "with-curves"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.csv").write_text(METRICS_CSV)
    write_record(make_record("with-curves", artifacts={"run_dir": str(run_dir)}), results)
    return results


def test_every_record_gets_a_row_and_a_page(tmp_path):
    results = registry(tmp_path)
    ids = sorted(p.stem for p in results.glob("*.json"))
    result = invoke()
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote site/index.html ({len(ids)} records, {len(ids)} run pages)\n"
    assert sorted(p.stem for p in (tmp_path / "site/run").glob("*.html")) == ids
    index = (tmp_path / "site/index.html").read_text()
    for run_id in ids:
        assert f"run/{run_id}.html" in index  # rows: see test_report_browser
    compute = index.split('<section id="compute">')[1]
    assert compute.count("<svg") == 1 and "kNN Acc@1 (%)" in compute
    assert "https://" not in index.split("<noscript>")[0]  # nothing fetched from a network
    page = (tmp_path / "site/run/with-curves.html").read_text()
    assert page.count("<svg") == 3 and "Curves not available" not in page
    [simclr] = [i for i in ids if i.startswith("simclr-resnet18-digits-s0-")]  # committed
    committed = (tmp_path / f"site/run/{simclr}.html").read_text()
    assert f"Curves not available: the run folder (runs/{simclr})" in committed
    assert "<th>pretrain.optimizer.lr</th><td>0.1</td>" in committed
    assert "<th>torch</th><td>2.14.1+cu130</td>" in committed


def test_empty_registry_is_an_explicit_empty_page(tmp_path):
    result = invoke("--results-dir", tmp_path / "nothing", "--out", tmp_path / "site")
    assert result.exit_code == 0, result.output
    assert result.output == (f"note: no records in {tmp_path / 'nothing'}: wrote an empty "
                             f"report, {tmp_path / 'site/index.html'}\n")
    index = (tmp_path / "site/index.html").read_text()
    assert "<h2>No records yet</h2>" in index and "DataTable" not in index
    assert not (tmp_path / "site/run").exists()


def test_unreadable_record_is_a_warning_and_the_rest_is_rendered(tmp_path):
    results = tmp_path / "results"
    write_record(make_record("good"), results)
    (results / "broken.json").write_text("{not json")
    result = invoke()
    assert result.exit_code == 0
    assert result.stderr == ("warning: skipping unreadable record results/broken.json: not valid "
                             "JSON: Expecting property name enclosed in double quotes: line 1 "
                             "column 2 (char 1)\n")
    assert result.stdout == "wrote site/index.html (1 records, 1 run pages)\n"
    assert "Skipped 1 unreadable record file:" in (tmp_path / "site/index.html").read_text()


def test_out_that_is_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "site").write_text("mine")
    result = invoke()
    assert result.exit_code == 2
    assert result.output == "error: --out site is a file, not a folder for the report\n"
    assert (tmp_path / "site").read_text() == "mine"


def test_out_folder_of_other_files_is_refused_and_kept(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/notes.md").write_text("mine")
    result = invoke("--out", "docs")
    assert result.exit_code == 2
    assert result.output.startswith("error: --out docs is a folder that does not hold an "
                                    "sslbench report")
    assert (tmp_path / "docs/notes.md").read_text() == "mine"


def test_results_dir_that_is_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "results").write_text("x")
    result = invoke()
    assert (result.exit_code, result.output) == (
        2, "error: --results-dir results is a file, not a results folder\n")


def test_second_report_replaces_the_first_whole(tmp_path):
    results = tmp_path / "results"
    write_record(make_record("old"), results)
    assert invoke().exit_code == 0
    (results / "old.json").unlink()
    write_record(make_record("new"), results)
    assert invoke().exit_code == 0
    assert sorted(p.name for p in (tmp_path / "site/run").iterdir()) == ["new.html"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_failed_write_leaves_the_previous_report(tmp_path, monkeypatch):
    write_record(make_record("kept"), tmp_path / "results")
    assert invoke().exit_code == 0
    before = (tmp_path / "site/index.html").read_text()
    write_record(make_record("other"), tmp_path / "results")

    def full_disk(folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "_make_readable", full_disk)
    result = invoke()
    assert (result.exit_code, result.output) == (
        1, "error: cannot write the report to site: No space left on device\n")
    assert (tmp_path / "site/index.html").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "site"]


def test_recipe_rows_are_the_tables_mean_and_std():
    rows = report_data.recipes_frame(records(), display)
    simclr = rows[rows.Model == "SimCLR"].iloc[0]
    assert (simclr["Acc@1"], simclr["Acc@1 std"], simclr["n"]) == ("91.00", "1.41", "2")
    assert (simclr["kNN"], simclr["kNN std"], simclr["Pretrain h"]) == ("82.00", "2.83", "0.100")
    floor = rows[rows.Model == "random"].iloc[0]
    assert (floor["Acc@1"], floor["Acc@1 std"], floor["img/s"]) == ("70.00", "", "")
    assert len(rows) == 2  # the failed record has no recipe row


def test_run_rows_keep_failed_records_and_escape_text():
    recs = [*records(), make_record("x<y", method="<b>m</b>", metrics=Metrics(),
                                    cost=Cost(pretrain_seconds=7200.0, num_devices=2))]
    pages = report_data.page_names(recs)
    rows = report_data.runs_frame(recs, pages, display)
    assert len(rows) == 5
    assert rows.Status.tolist()[3] == "failed: nan"
    assert rows.iloc[4].Run == '<a href="run/x_y.html">x&lt;y</a>'
    assert (rows.iloc[4].Model, rows.iloc[4]["Acc@1"], rows.iloc[4]["Pretrain h"]) == (
        "&lt;b&gt;m&lt;/b&gt;", "", "4.000")


def test_page_names_are_safe_and_unique():
    recs = [make_record("a/b"), make_record("a/b"), make_record("..x")]
    assert report_data.page_names(recs) == ["a_b.html", "a_b-2.html", "x.html"]


def test_compute_chart_needs_a_completed_accuracy():
    assert report_charts.compute_svg([make_record(status="failed")], display) is None
    svg = report_charts.compute_svg(records(), display)
    assert svg.startswith("<svg") and "SimCLR" in svg and "pretraining device-hours" in svg


def test_unreadable_metrics_csv_is_a_note_not_a_crash(tmp_path):
    (tmp_path / "runs/r1").mkdir(parents=True)
    (tmp_path / "runs/r1/metrics.csv").write_text("step,loss\n1,2\n")  # no phase column
    curves, note = report_charts.run_curves(make_record("r1"), tmp_path / "runs")
    assert curves == [] and note.startswith(f"Curves not available: {tmp_path}/runs/r1/"
                                            "metrics.csv is unreadable")


def test_committed_report_has_a_page_per_committed_record():
    """The report the README links is regenerated with the registry (sslbench report --out
    docs/report); its pages are compared by name, not bytes, which vary with library versions."""
    docs = COMMITTED.parent / "docs/report"
    assert sorted(p.stem for p in (docs / "run").glob("*.html")) == \
        sorted(p.stem for p in COMMITTED.glob("*.json"))
    count = len(list(COMMITTED.glob("*.json")))
    assert f"{count} records from" in (docs / "index.html").read_text()
