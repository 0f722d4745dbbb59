"""The report in a real browser: Debian's Chromium, headless, driven by Playwright.

The registry is the committed one plus a real tiny digits run (so one run has a run folder
and curves). Without Chromium or Playwright the tests skip on a developer's machine, and fail
under CI (``CI`` set), whose .ci/run installs both.
"""

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from typer.testing import CliRunner

from sslbench.cli import app
from tests.conftest import TINY

pytestmark = pytest.mark.slow

COMMITTED = Path(__file__).resolve().parents[1] / "results"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No network here: nothing in the background may try to reach one.
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
runner = CliRunner()


def _playwright():
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright (pip install -e '.[dev]')"
    if not Path(CHROMIUM).is_file():
        missing = "chromium (apt-get install chromium)"
    if missing and os.environ.get("CI"):
        pytest.fail(f"the browser test needs {missing}; .ci/run installs it")
    if missing:
        pytest.skip(f"needs {missing}")
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    with _playwright()() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The committed registry + one tiny real run, reported into ``site/``."""
    root = tmp_path_factory.mktemp("report")
    shutil.copytree(COMMITTED, root / "results")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("SSLBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
        mp.setenv("SSLBENCH_DATA", str(root / "data"))
        run = runner.invoke(app, ["run", "simclr", "resnet18", "digits", *TINY,
                                  "--set", "data.train_subset=256"])
        assert run.exit_code == 0, run.output
        report = runner.invoke(app, ["report"])
        assert report.exit_code == 0, report.output
    [tiny] = (root / "runs").iterdir()
    ids = sorted(p.stem for p in (root / "results").glob("*.json"))
    return SimpleNamespace(index=root / "site/index.html", ids=ids, tiny=tiny.name, root=root)


def _open(browser, path: Path):
    """A page on ``path`` once its tables are drawn, with the errors it logged so far."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    if page.locator("#runs").count():
        page.wait_for_selector("#runs-table tbody tr")
    return page, errors


@pytest.fixture
def index(browser, site):
    page, errors = _open(browser, site.index)
    yield SimpleNamespace(page=page, errors=errors, runs=page.locator("#runs-table_wrapper"))
    page.close()


def _column(runs, name: str) -> list[str]:
    """The cells of one column of the runs table, top to bottom, as shown."""
    headers = runs.locator("div.dt-scroll:has(#runs-table) div.dt-scroll-head th")
    position = headers.all_inner_texts().index(name) + 1
    return runs.locator(f"#runs-table tbody tr td:nth-child({position})").all_inner_texts()


def test_page_loads_without_console_errors(index):
    index.page.wait_for_timeout(300)  # anything the tables' scripts log after drawing
    assert index.errors == []
    assert index.page.title() == "sslbench results"


def test_every_record_is_a_row(index, site):
    committed = len(list(COMMITTED.glob("*.json")))
    assert index.runs.locator("#runs-table tbody tr").count() == len(site.ids) == committed + 1
    assert sorted(_column(index.runs, "Run")) == site.ids


def test_header_click_sorts_rows(index):
    from playwright.sync_api import expect

    before = [float(v) for v in _column(index.runs, "kNN")]
    header = index.runs.locator("div.dt-scroll:has(#runs-table) div.dt-scroll-head th",
                                has_text="kNN")
    header.click()
    expect(header).to_have_attribute("aria-sort", "ascending")  # DataTables redraws async
    ascending = [float(v) for v in _column(index.runs, "kNN")]
    assert ascending == sorted(before) != before
    header.click()
    expect(header).to_have_attribute("aria-sort", "descending")
    assert [float(v) for v in _column(index.runs, "kNN")] == sorted(before, reverse=True)


def test_dataset_pane_filters_rows(index, site):
    from playwright.sync_api import expect

    digits = [i for i in site.ids if "-digits-" in i]
    pane = index.runs.locator("div.dtsp-searchPane").filter(
        has=index.page.locator("input[placeholder='Dataset']"))
    pane.locator("tr", has_text="Digits").click()
    expect(index.runs.locator("#runs-table tbody tr")).to_have_count(len(digits))
    committed = [p for p in COMMITTED.glob("*.json") if "-digits-" in p.name]
    assert sorted(_column(index.runs, "Run")) == digits and len(digits) == len(committed) + 1
    assert set(_column(index.runs, "Dataset")) == {"Digits"}
    assert index.runs.locator("div.dtsp-searchPane input[placeholder='Backbone']").count() == 1


def test_compute_chart_is_drawn(index):
    chart = index.page.locator("#compute figure svg")
    box = chart.bounding_box()
    assert box["width"] > 600 and box["height"] > 300
    assert "SimCLR" in chart.text_content() and "kNN Acc@1 (%)" in chart.text_content()


def test_a_run_is_one_click_from_the_table(index, browser, site):
    index.page.get_by_role("link", name=site.tiny).click()
    page = index.page
    page.wait_for_url(f"**/site/run/{site.tiny}.html")
    assert page.locator("#curves figure svg").count() == 3
    assert "torch" in page.locator("#provenance").inner_text()
    assert "pretrain.optimizer.lr" in page.locator("#config").inner_text()
    committed, errors = _open(browser, site.root / f"site/run/{site.ids[0]}.html")
    assert "Curves not available" in committed.locator("#curves").inner_text()
    committed.get_by_role("link", name="← all runs").click()
    committed.wait_for_selector("#runs-table tbody tr")
    assert index.errors == errors == []
    committed.close()


def test_screenshot(index, tmp_path):
    path = tmp_path / "report.png"
    index.page.screenshot(path=path, full_page=True)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width == 1400 and image.height > 1500
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 200  # not blank
    print(f"screenshot: {path}")


def test_empty_registry_page(browser, tmp_path):
    assert runner.invoke(app, ["report"]).exit_code == 0
    page, errors = _open(browser, tmp_path / "site/index.html")
    assert page.locator("#empty h2").inner_text() == "No records yet"
    assert errors == []
    page.close()
