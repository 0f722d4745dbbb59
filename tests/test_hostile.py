"""Hostile input, tried as an attacker (or a bad day) would: wrong data in records, FIFOs and
loops in folders, alias bombs and deep nesting in config and matrix files, glob characters and
paths given as run ids, corrupt and torn ``metrics.csv`` files, full disks, SIGTERM.

Every case asserts the exit code, the one line a user sees (never a traceback, never a hang: a
watchdog fails any case that takes more than 30 s) and that nothing on disk was lost: every
regular file present before the command is there after it, byte for byte. ``table`` cases
also check that the good record beside the bad one is still rendered.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sslbench.bench import executors
from sslbench.bench import matrix as matrices
from sslbench.cli import app
from sslbench.core.records import recipe_hash
from sslbench.engine.checkpoint import load_checkpoint, save_checkpoint
from sslbench.errors import Preempted, SSLBenchError
from tests.test_bad_inputs import RUN as BAD_RUN
from tests.test_bad_inputs import TINY as BAD_TINY
from tests.test_bad_inputs import tiny_run_dir
from tests.test_records import make_record
from tests.test_reliability import Toy, install_toys, toy_run, toy_run_dir

runner = CliRunner()
DRY = ["run", "simclr", "resnet18", "digits", "--dry-run"]
GOOD_ROW = "SimCLR"  # the good record's row in the table


@pytest.fixture(autouse=True)
def watchdog():
    """A hang (a FIFO opened for reading, an alias bomb expanding) fails the case, in 30 s."""
    def on_alarm(signum, frame):
        raise TimeoutError("the command hung for 30 s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def snapshot(root: Path = Path(".")) -> dict[Path, bytes]:
    """Every regular file under ``root`` (not following links) and its bytes."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                files[path] = path.read_bytes()
    return files


def assert_intact(before: dict[Path, bytes]) -> None:
    for path, data in before.items():
        assert path.is_file(), f"{path} was lost"
        assert path.read_bytes() == data, f"{path} was changed"


def put(name: str, content: str | bytes) -> Path:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


# --- records ------------------------------------------------------------------------------------

def record(run_id: str = "bad", **changes) -> dict:
    """A valid record's JSON (its hash matches its config), then ``changes`` applied."""
    data = json.loads(make_record(run_id, config={"seed": 0, "data": {"name": "digits"}})
                      .model_dump_json())
    data.update(changes)
    return data


def rehashed(data: dict) -> dict:
    """``data`` with a config hash that matches its (edited) config: only the edit is wrong."""
    return {**data, "config_hash": recipe_hash(data["config"])}


def registry(name: str, content: dict | str | bytes | Callable[[Path], None]) -> Callable:
    """Set up ``results/`` with one good record and ``results/<name>`` as given."""
    def setup():
        put("results/good.json", json.dumps(record("good")))
        path = Path("results") / name
        if callable(content):
            content(path)
        else:
            put(str(path), content if isinstance(content, str | bytes) else json.dumps(content))
    return setup


def nested(depth: int, leaf=1):
    for _ in range(depth):
        leaf = {"x": leaf}
    return leaf


def symlink_loop(path: Path) -> None:
    path.symlink_to(path.name)


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    message: str
    setup: Callable[[], None] | None = None
    table: bool = False  # a ``table`` warning beside the rendered table, not an error line


def table_case(id: str, message: str, name: str, content) -> Case:
    return Case(id, ["table"], 0, message, registry(name, content), table=True)


RECORD_CASES = [
    table_case("record-nan-metric", "not valid JSON: NaN is not a JSON number", "bad.json",
               json.dumps(record()).replace('"linear_acc1": 90.0', '"linear_acc1": NaN')),
    table_case("record-inf-metric", "not valid JSON: number '1e999' is out of range",
               "bad.json",
               json.dumps(record()).replace('"knn_acc1": 88.0', '"knn_acc1": 1e999')),
    table_case("record-accuracy-over-100", "metrics.linear_acc1: an accuracy is a percentage, "
               "between 0 and 100 (got 250.0)", "bad.json",
               record(metrics={"linear_acc1": 250.0})),
    table_case("record-negative-cost", "cost.pretrain_seconds: must not be negative",
               "bad.json", record(cost={"pretrain_seconds": -5.0})),
    table_case("record-future-schema", "written by a newer sslbench (schema version 99; this "
               "one reads up to 3): upgrade sslbench to read it", "bad.json",
               record(schema_version=99, new_field={"from": "the future"})),
    table_case("record-unknown-schema", "unknown schema version 'one'", "bad.json",
               record(schema_version="one")),
    table_case("record-of-another-cell", "it holds run 'other', not 'bad': a record is named "
               "after its run id", "bad.json", record("other")),
    table_case("record-config-edited", "is not the hash of its config", "bad.json",
               record(config={"seed": 0, "data": {"name": "digits", "image_size": 64}})),
    table_case("record-naive-timestamp", "created: the timestamp has no time zone", "bad.json",
               record(created="2025-01-31T12:00:00")),
    table_case("record-config-wrong-type", "config: config section 'data' must be a table, "
               "got 'digits'", "bad.json",
               rehashed(record(config={"seed": 0, "data": "digits"}))),
    table_case("record-huge-number", "epochs: must be between 0 and 2**53", "bad.json",
               record(epochs=10**30)),
    table_case("record-huge-integer-literal", "Exceeds the limit (4300 digits)", "bad.json",
               json.dumps(record()).replace('"epochs": 1', '"epochs": ' + "9" * 5000)),
    table_case("record-deeply-nested", "not valid JSON: it nests deeper than 32 levels",
               "bad.json", "[" * 100_000 + "]" * 100_000),
    table_case("record-nested-past-the-limit", "it nests deeper than 32 levels", "bad.json",
               rehashed(record(config={"seed": 0, "data": nested(40)}))),
    table_case("record-not-utf8", "UnicodeDecodeError: byte 0xff", "bad.json",
               b'{"run_id": "bad\xff"}'),
    table_case("record-too-large", "it is 17.0 MiB, more than the 16 MiB a record may have",
               "bad.json", b" " * (17 * 2**20)),
    table_case("record-is-a-fifo", "it is a FIFO, not a regular file", "bad.json", os.mkfifo),
    table_case("record-is-a-folder", "it is a folder, not a regular file", "bad.json",
               lambda path: path.mkdir()),
    table_case("record-symlink-loop", "Too many levels of symbolic links", "bad.json",
               symlink_loop),
    table_case("record-not-an-object", "not a JSON object", "bad.json", "[1, 2, 3]"),
]


def long_id_record():
    return registry("bad.json", record("x" * 100_000))


SHOW_CASES = [
    Case("show-fifo", ["show", "bad"], 2, "unreadable record results/bad.json: it is a FIFO",
         registry("bad.json", os.mkfifo)),
    Case("show-glob-star", ["show", "*"], 2, "no record '*' in results", registry("x.json", "{}")),
    Case("show-glob-class", ["show", "[gb]*"], 2, "no record '[gb]*' in results",
         registry("bad.json", json.dumps(record()))),
    Case("show-absolute-path", ["show", "/etc/passwd"], 2, "'/etc/passwd' is not a run id",
         registry("bad.json", json.dumps(record()))),
    Case("show-dot-dot", ["show", "../results/good"], 2, "'../results/good' is not a run id",
         registry("bad.json", json.dumps(record()))),
    Case("show-huge-id", ["show", "y" * 100_000], 2, "… (100000 characters) in results",
         registry("bad.json", json.dumps(record()))),
    Case("show-another-cells-record", ["show", "bad"], 2, "it holds run 'other', not 'bad'",
         registry("bad.json", json.dumps(record("other")))),
]


# --- config files and --set values ------------------------------------------------------------

ALIAS_BOMB = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["method: {name: simclr, x: *a9}"]) + "\n"  # 9**10 strings if expanded


def config(name: str, content: str | bytes | Callable[[Path], None]) -> Callable:
    def setup():
        if callable(content):
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            content(Path(name))
        else:
            put(name, content)
    return setup


CONFIG_CASES = [
    Case("yaml-alias-bomb", [*DRY, "--config", "c.yaml"], 2,
         "config file c.yaml is not valid YAML: aliases are not allowed (*a0); write the value "
         "out (line 2, column 10)", config("c.yaml", ALIAS_BOMB)),
    Case("yaml-deep", [*DRY, "--config", "c.yaml"], 2,
         "config file c.yaml is not valid YAML: it nests deeper than 32 levels",
         config("c.yaml", "a: " + "[" * 50_000 + "]" * 50_000)),
    Case("json-deep", [*DRY, "--config", "c.json"], 2,
         "config file c.json is not valid JSON: it nests deeper than 32 levels",
         config("c.json", "[" * 100_000 + "]" * 100_000)),
    Case("toml-deep", [*DRY, "--config", "c.toml"], 2,
         "config file c.toml is not valid TOML: it nests deeper than 32 levels",
         config("c.toml", "a = " + "[" * 50_000 + "]" * 50_000)),
    Case("toml-deep-tables", [*DRY, "--config", "c.toml"], 2,
         "config file c.toml is not valid TOML: it nests deeper than 32 levels",
         config("c.toml", "[" + ".".join(["x"] * 40) + "]\ny = 1\n")),
    Case("config-fifo", [*DRY, "--config", "c.yaml"], 2,
         "cannot read config file c.yaml: it is a FIFO, not a regular file",
         config("c.yaml", os.mkfifo)),
    Case("config-device", [*DRY, "--config", "/dev/zero"], 2,
         "cannot read config file /dev/zero: it is a device, not a regular file"),
    Case("config-too-large", [*DRY, "--config", "c.json"], 2,
         "cannot read config file c.json: it is 17.0 MiB, more than the 16 MiB",
         config("c.json", b" " * (17 * 2**20))),
    Case("config-json-nan", [*DRY, "--config", "c.json"], 2,
         "config file c.json is not valid JSON: NaN is not a JSON number",
         config("c.json", '{"pretrain": {"optimizer": {"lr": NaN}}}')),
    Case("config-huge-value-truncated", [*DRY, "--config", "c.yaml"], 2,
         "invalid pretrain.epochs: Input should be a valid integer, unable to parse string as "
         "an integer (got 'zzzz", config("c.yaml", "pretrain: {epochs: " + "z" * 10**6 + "}\n")),
    Case("config-not-utf8-yaml", [*DRY, "--config", "c.yaml"], 2,
         "cannot read config file c.yaml: UnicodeDecodeError: byte 0xe9 at offset 13 (line 2)",
         config("c.yaml", b"pretrain: {}\n\xe9poch: 1\n")),
    Case("set-alias-bomb", [*DRY, "--set", "pretrain.views=[&a [x, x, x], [*a, *a, *a]]"], 2,
         "invalid pretrain.views: Input should be a valid list (got '[&a [x, x, x], [*a, *a"),
    Case("set-deep", [*DRY, "--set", "method.x=" + "[" * 30_000 + "]" * 30_000], 2,
         "unknown setting 'method.x' (got '[[[["),
]


# --- matrix files ----------------------------------------------------------------------------

MATRIX = ["matrix", "m.toml", "--dry-run"]
AXES = 'methods = ["simclr"]\nbackbones = ["resnet18"]\ndatasets = ["digits"]\n'

MATRIX_CASES = [
    Case("matrix-not-utf8", MATRIX, 2, "cannot read matrix file m.toml: UnicodeDecodeError",
         config("m.toml", b'methods = ["simclr\xff"]\n')),
    Case("matrix-axis-not-a-list", MATRIX, 2, "matrix file m.toml: invalid methods",
         config("m.toml", 'methods = 5\nbackbones = ["resnet18"]\ndatasets = ["digits"]\n')),
    Case("matrix-cells-not-an-array", MATRIX, 2, "matrix file m.toml: invalid cells",
         config("m.toml", AXES + '[cells]\nmethod = "simclr"\n')),
    Case("matrix-seed-bool", MATRIX, 2, "matrix file m.toml: invalid seeds",
         config("m.toml", AXES + "seeds = [true]\n")),
    Case("matrix-config-not-a-table", MATRIX, 2, "matrix file m.toml: invalid config",
         config("m.toml", AXES + "config = 5\n")),
    Case("matrix-cell-unknown-key", MATRIX, 2,
         "matrix file m.toml: unknown setting 'cells.0.metod' (got 'simclr')",
         config("m.toml", AXES + '[[cells]]\nmetod = "simclr"\n')),
    Case("matrix-epochs-string", MATRIX, 2, "matrix file m.toml: invalid epochs",
         config("m.toml", AXES + 'epochs = "2"\n')),
    Case("matrix-deep", MATRIX, 2, "matrix file m.toml is not valid TOML: it nests deeper",
         config("m.toml", AXES + "x = " + "[" * 50_000 + "]" * 50_000)),
    Case("matrix-fifo", MATRIX, 2, "cannot read matrix file m.toml: it is a FIFO",
         config("m.toml", os.mkfifo)),
    Case("matrix-huge-key-truncated", MATRIX, 2,
         "matrix file m.toml: unknown key 'kkkkkkkk", config("m.toml", "k" * 10**6 + " = 1\n")),
]


# --- metrics.csv given to plot ---------------------------------------------------------------

HEADER = "phase,epoch,step,loss,lr,images_per_second,test_loss,test_acc1,test_acc5\n"


def metrics(content: str | bytes | Callable[[Path], None]) -> Callable:
    return config("runs/r/metrics.csv", content)


PLOT_CASES = [
    Case("metrics-not-utf8", ["plot", "runs/r"], 2,
         "cannot read metrics file runs/r/metrics.csv: UnicodeDecodeError",
         metrics(HEADER.encode() + b"pretrain,1,\xff\xfe,1,1,,,,\n")),
    Case("metrics-foreign-header", ["plot", "runs/r"], 2,
         "metrics file runs/r/metrics.csv: not an sslbench metrics file (no column 'phase'",
         metrics("a,b,c\n1,2,3\n")),
    Case("metrics-not-a-number", ["plot", "runs/r"], 2,
         "metrics file runs/r/metrics.csv: line 3: loss 'abc' is not a number",
         metrics(HEADER + "pretrain,1,1,0.5,0.1,10,,,\npretrain,1,2,abc,0.1,10,,,\n")),
    Case("metrics-ragged-rows", ["plot", "runs/r"], 2,
         "metrics file runs/r/metrics.csv: Error tokenizing data",
         metrics(HEADER + "pretrain,1,1,0.5,0.1,10,,,\n" + "1," * 40 + "1\n")),
    Case("metrics-empty", ["plot", "runs/r"], 2,
         "metrics file runs/r/metrics.csv: No columns to parse from file", metrics("")),
    Case("metrics-fifo", ["plot", "runs/r"], 2,
         "cannot read metrics file runs/r/metrics.csv: it is a FIFO", metrics(os.mkfifo)),
]

# --- run folders: checkpoints and config.json ---------------------------------------------------

def fifo_checkpoint():
    path = tiny_run_dir() / "checkpoint.pt"
    path.parent.mkdir(parents=True)
    os.mkfifo(path)


RUN_DIR_CASES = [
    Case("resume-from-a-fifo-checkpoint", [*BAD_RUN, *BAD_TINY, "--resume"], 1,
         "refusing checkpoint runs/simclr-resnet18-digits-s0-", fifo_checkpoint),
    Case("eval-a-fifo-checkpoint", ["eval", "c.pt"], 1,
         "refusing checkpoint c.pt: it is not a regular file", config("c.pt", os.mkfifo)),
    Case("eval-run-config-not-utf8", ["eval", "runs/r"], 2,
         "cannot read run config runs/r/config.json: UnicodeDecodeError: byte 0xff",
         config("runs/r/config.json", b'{"method": "\xff"}')),
    Case("eval-run-config-is-a-fifo", ["eval", "runs/r"], 2,
         "runs/r is not a run folder: it has no config.json",
         config("runs/r/config.json", os.mkfifo)),
]

CASES = RECORD_CASES + SHOW_CASES + CONFIG_CASES + MATRIX_CASES + PLOT_CASES + RUN_DIR_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_loses_nothing(case: Case):
    if case.setup:
        case.setup()
    before = snapshot()
    started = time.monotonic()
    result = runner.invoke(app, case.args)
    assert time.monotonic() - started < 10, "far too slow for what it refuses"
    assert result.exit_code == case.code, result.output[-2000:]
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    lines = result.output.strip().splitlines()
    if case.table:
        warnings = [line for line in lines if line.startswith("warning: ")]
        assert len(warnings) == 1, result.output[-2000:]
        assert warnings[0].startswith("warning: skipping unreadable record results/bad.json: ")
        assert case.message in warnings[0], warnings[0]
        assert sum(GOOD_ROW in line for line in lines) == 1, result.output  # still rendered
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output[-2000:]
        assert case.message in lines[0], lines[0][:2000]
    assert all(len(line) < 700 for line in lines), "a message repeats a value at full length"
    assert_intact(before)


def test_there_are_at_least_thirty_distinct_cases():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


def test_alias_bomb_fails_fast_and_small():
    put("c.yaml", ALIAS_BOMB)
    started = time.monotonic()
    result = runner.invoke(app, [*DRY, "--config", "c.yaml"])
    assert result.exit_code == 2 and "aliases are not allowed" in result.output
    assert time.monotonic() - started < 2  # refused at the first alias, never expanded


def test_table_readme_skips_the_bad_record_and_writes_the_rest():
    registry("bad.json", record(created="2025-01-31T12:00:00"))()
    put("README.md", "# Results\n")
    result = runner.invoke(app, ["table", "--readme", "README.md"])
    assert result.exit_code == 0, result.output
    assert "warning: skipping unreadable record results/bad.json: created:" in result.output
    assert "updated the results table in README.md (1 records)" in result.output
    assert GOOD_ROW in Path("README.md").read_text()


def test_matrix_runs_a_cell_whose_file_holds_another_cells_record(plugins):
    put("m.toml", 'methods = ["simclr"]\nbackbones = ["resnet18"]\ndatasets = ["digits"]\n'
                  "seeds = [0, 1]\n")
    cells = matrices.expand(matrices.load_matrix_file(Path("m.toml")), plugins.catalog)
    done, victim = cells
    other = make_record(done.run_id, config=done.config.model_dump(mode="json"),
                        config_hash=done.config_hash, seed=0)
    put(f"results/{done.run_id}.json", other.model_dump_json())  # done, for real
    copied = put(f"results/{victim.run_id}.json", other.model_dump_json())  # someone's copy
    before = snapshot()
    result = runner.invoke(app, ["matrix", "m.toml", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"skip  {done.run_id}" in result.output
    assert f"run   {victim.run_id}" in result.output  # not skipped on another cell's record
    assert_intact(before)
    assert copied.read_bytes() == before[copied]


# --- torn metrics.csv on resume and in plot ---------------------------------------------------

def test_plot_drops_a_torn_last_row():
    put("runs/r/metrics.csv", HEADER + "pretrain,1,1,0.5,0.1,10,,,\npretrain,1,2,0.4,0.1,1")
    result = runner.invoke(app, ["plot", "runs/r"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "wrote runs/r/pretrain.png"
    assert Path("runs/r/pretrain.png").read_bytes().startswith(b"\x89PNG")


def sigterm_after(step: int) -> Callable:
    """``Toy.after_step`` that sends this process SIGTERM after ``step`` (as Slurm would)."""
    def after_step(self, i, total_steps):
        if i + 1 == step:
            signal.raise_signal(signal.SIGTERM)
    return after_step


@pytest.fixture
def toys(monkeypatch):
    install_toys(monkeypatch)
    monkeypatch.setattr(Toy, "fault", {})
    monkeypatch.setattr("sslbench.bench.plots.plot_run", lambda run_dir: {})  # not under test


def test_resume_after_a_torn_metrics_row_appends_whole_rows(toys, monkeypatch):
    monkeypatch.setattr(Toy, "after_step", sigterm_after(6), raising=False)
    assert toy_run("--set", "pretrain.log_every=1").exit_code == 143
    [csv] = Path("runs").glob("*/metrics.csv")
    csv.write_bytes(csv.read_bytes() + b"pretrain,1,7,0.12")  # the kill came mid-append
    monkeypatch.delattr(Toy, "after_step")
    assert toy_run("--set", "pretrain.log_every=1", "--resume").exit_code == 0
    rows = csv.read_text().splitlines()
    assert all(row.count(",") == HEADER.count(",") for row in rows), rows
    assert "pretrain,1,7,0.12" not in rows
    steps = [int(row.split(",")[2]) for row in rows[1:] if row.startswith("pretrain")]
    assert steps == list(range(1, 17))  # stopped after 6, resumed from 6: nothing lost


def test_resume_refuses_a_metrics_file_that_is_a_fifo(toys, monkeypatch):
    monkeypatch.setattr(Toy, "after_step", sigterm_after(3), raising=False)
    assert toy_run().exit_code == 143
    monkeypatch.delattr(Toy, "after_step")
    checkpoint = toy_run_dir() / "checkpoint.pt"
    before = snapshot()
    csv = toy_run_dir() / "metrics.csv"
    csv.unlink()
    os.mkfifo(csv)
    result = toy_run("--resume")
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: cannot append to the metrics file {csv}: it is "
                                     "not a regular file; remove it")
    assert load_checkpoint(checkpoint)["step"] == 3
    assert_intact({p: b for p, b in before.items() if p != csv})


# --- SIGTERM ----------------------------------------------------------------------------------

def test_sigterm_checkpoints_exits_143_and_the_resumed_run_matches(toys, monkeypatch, tmp_path):
    monkeypatch.setattr(Toy, "after_step", sigterm_after(11), raising=False)
    result = toy_run()
    assert result.exit_code == 143
    checkpoint = toy_run_dir() / "checkpoint.pt"
    assert result.output.strip() == (f"error: terminated by SIGTERM at step 11 of 16: "
                                     f"checkpoint saved to {checkpoint}; continue with --resume")
    assert load_checkpoint(checkpoint)["step"] == 11
    assert not Path("results").exists() or not list(Path("results").iterdir())
    monkeypatch.delattr(Toy, "after_step")
    assert toy_run("--resume").exit_code == 0
    resumed = json.loads(next(Path("results").glob("*.json")).read_text())
    (tmp_path / "again").mkdir()
    monkeypatch.chdir(tmp_path / "again")
    assert toy_run().exit_code == 0
    straight = json.loads(next(Path("results").glob("*.json")).read_text())
    assert resumed["metrics"] == straight["metrics"]
    assert resumed["metrics"]["final_loss"] is not None


def test_sigterm_stops_the_matrix_and_records_no_failure(monkeypatch):
    calls = []

    def run_cell(cell, opts, loggers=None):
        calls.append(cell.config.seed)
        if len(calls) == 2:
            raise Preempted("terminated by SIGTERM at step 3 of 8: checkpoint saved to "
                            "runs/x/checkpoint.pt; continue with --resume")

    monkeypatch.setattr(executors, "run_cell", run_cell)
    result = runner.invoke(app, ["matrix", "--methods", "simclr", "--backbones", "resnet18",
                                 "--datasets", "digits", "--seeds", "0-3", "--device", "cpu"])
    assert result.exit_code == 143, result.output
    lines = result.output.strip().splitlines()
    assert lines[-2] == "matrix: 1 done, 0 skipped, 0 failed, 3 not run (interrupted)"
    assert lines[-1].startswith("error: terminated by SIGTERM at step 3 of 8: ")
    assert calls == [0, 1]  # it did not go on to the next cell
    assert not Path("results").exists() or not list(Path("results").iterdir())


def test_sigterm_outside_training_is_one_line_and_exit_143(monkeypatch):
    registry("bad.json", json.dumps(record()))()
    put("README.md", "# Results\n")
    before = snapshot()

    def load_records(folder):
        signal.raise_signal(signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr("sslbench.core.records.load_records", load_records)
    result = runner.invoke(app, ["table", "--readme", "README.md"])
    assert result.exit_code == 143
    assert result.output.strip().startswith("error: terminated by SIGTERM: what was written "
                                            "before is intact")
    assert_intact(before)


# --- full disk --------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB file system (tmpfs), where a write past the end fails with ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` up to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_full_disk_during_a_run_keeps_the_checkpoint_and_resume_finishes(toys, small_disk,
                                                                         monkeypatch):
    real, saved = save_checkpoint, []

    def save_then_fill(state, path):  # the disk fills up right after the first checkpoint
        real(state, path)
        saved.append(state["step"])
        if len(saved) == 1:
            fill(small_disk)

    monkeypatch.setattr("sslbench.engine.pretrain.save_checkpoint", save_then_fill)
    result = toy_run("--checkpoint-every", "3", "--output-dir", small_disk)
    checkpoint = small_disk / toy_run_dir().name / "checkpoint.pt"
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: cannot write checkpoint {checkpoint}: No space "
                                     "left on device; the previous checkpoint is intact")
    assert load_checkpoint(checkpoint)["step"] == 3
    assert not [p for p in checkpoint.parent.iterdir() if p.name.endswith(".tmp")]
    (small_disk / "filler").unlink()  # space freed: the run goes on from step 3
    monkeypatch.setattr("sslbench.engine.pretrain.save_checkpoint", real)
    assert toy_run("--resume", "--output-dir", small_disk).exit_code == 0
    assert load_checkpoint(checkpoint)["step"] == 16


def test_full_disk_writing_a_plot_keeps_the_previous_plot(small_disk):
    run = small_disk / "r"
    put(str(run / "metrics.csv"), HEADER + "pretrain,1,1,0.5,0.1,10,,,\n")
    assert runner.invoke(app, ["plot", str(run)]).exit_code == 0
    put(str(run / "metrics.csv"), HEADER + "pretrain,1,1,0.5,0.1,10,,,\npretrain,1,2,.4,.1,9,,,\n")
    fill(small_disk)
    before = snapshot(small_disk)
    result = runner.invoke(app, ["plot", str(run)])
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: cannot write plot {run / 'pretrain.png'}: No space "
                                     "left on device; the previous plot is intact")
    assert_intact(before)
    assert sorted(p.name for p in run.iterdir()) == ["metrics.csv", "pretrain.png"]


def test_full_disk_rewriting_the_readme_leaves_it_as_it_was(small_disk):
    registry("bad.json", json.dumps(record()))()
    readme = put(str(small_disk / "README.md"), "# Results\n\n" + "x" * 100_000 + "\n")
    fill(small_disk)
    result = runner.invoke(app, ["table", "--readme", str(readme)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"error: cannot write {readme}: No space left on device; {readme} is unchanged")
    assert readme.read_text().endswith("x" * 100_000 + "\n")
    assert sorted(p.name for p in small_disk.iterdir()) == ["README.md", "filler"]


def test_full_disk_inside_torch_save_is_named_as_such(tmp_path, monkeypatch):
    """PyTorch reports a full disk met by its zip writer as ``RuntimeError: [enforce fail at
    inline_container.cc] unexpected pos``, the ``OSError`` only as its context (seen on a real
    full tmpfs): the line must still say what happened."""
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}, "step": 1}, path)

    def torch_save(state, f):
        f.write(b"PK\x03\x04 partial")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos "
                               "768 vs 662") from None

    monkeypatch.setattr("sslbench.engine.checkpoint.torch.save", torch_save)
    with pytest.raises(SSLBenchError) as err:
        save_checkpoint({"model": {"w": torch.zeros(3)}, "step": 2}, path)
    assert str(err.value) == (f"cannot write checkpoint {path}: No space left on device; the "
                              "previous checkpoint is intact")
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
