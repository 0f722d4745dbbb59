"""Loggers: metrics.csv always, and TensorBoard / W&B / MLflow with their real clients offline.

One tiny run feeds all three trackers; each test reads its tracker's files back with that
tracker's own reader (TensorBoard's EventAccumulator, W&B's protobuf records, MLflow's client)
and compares them with the run's metrics.csv and record. Other tests use a throwaway logger
plugin: one that fails mid-run, one that records what it was given.
"""

from __future__ import annotations

import csv
import functools
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sslbench import hookimpl
from sslbench.bench.loggers import logger_specs
from sslbench.bench.resolve import resolve_cell
from sslbench.bench.run import RunOptions, run_cell
from sslbench.cli import app
from sslbench.core.plugins import load_plugins
from sslbench.engine.loggers import LoggerFanout, LoggerSpec
from sslbench.errors import TrainingError
from sslbench.testing import TinyConvNet

pytest.importorskip("tensorboard")
pytest.importorskip("wandb")
pytest.importorskip("mlflow")

runner = CliRunner()
# digits at 8 px through a tiny conv net: 256 pretraining images, 4 steps, a few seconds
FAST = ["--epochs", "1", "--batch-size", "64", "--set", "data.image_size=8",
        "--set", "data.train_subset=256", "--set", "eval.train_subset=256",
        "--set", "eval.linear.epochs=2", "--set", "pretrain.log_every=2", "--quiet",
        "--device", "cpu"]


class Events:
    """What a logger was given, in order (the recorder plugin's log)."""

    calls: list = []


class Recorder:
    def __init__(self, run_dir, run_id, options):
        Events.calls.append(("init", run_id))

    def start(self, config):
        Events.calls.append(("start", config["method"]["name"]))

    def log(self, phase, step, values):
        Events.calls.append(("log", phase, step, values))

    def finish(self, record):
        Events.calls.append(("finish", record["status"], record.get("reason")))

    def close(self):
        Events.calls.append(("close",))


class Flaky(Recorder):
    """Works for one row, then its 'server' goes away."""

    def log(self, phase, step, values):
        if any(c[0] == "log" for c in Events.calls):
            raise ConnectionError("tracker unreachable")
        super().log(phase, step, values)


class TestPlugin:
    @hookimpl
    def sslbench_register_backbones(self, register):
        register("tinyconv", TinyConvNet)

    @hookimpl
    def sslbench_register_loggers(self, register):
        register("recorder", Recorder)
        register("flaky", Flaky)


def with_test_plugin(patch) -> None:
    patch.setattr("sslbench.cli.catalog.load_plugins",
                  functools.partial(load_plugins, extra=[("test-loggers", TestPlugin())]))


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def rows(run_dir: Path, phase: str) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r["phase"] == phase]


# --- one run, three real trackers ------------------------------------------------------------

@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A run with ``--log tensorboard,wandb,mlflow``: (record, run folder, MLflow store)."""
    root = tmp_path_factory.mktemp("tracked")
    store = root / "mlruns"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        with_test_plugin(patch)
        for key, value in {"SSLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1", "WANDB_MODE": "offline",
                           "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(root / "wbconf"),
                           "WANDB_CACHE_DIR": str(root / "wbcache"),
                           "WANDB_DATA_DIR": str(root / "wbdata"),
                           "MLFLOW_TRACKING_URI": store.as_uri(),
                           "MLFLOW_ALLOW_FILE_STORE": "true"}.items():
            patch.setenv(key, value)
        patch.delenv("WANDB_DIR", raising=False)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            result = invoke("run", "simclr", "tinyconv", "digits", *FAST,
                            "--log", "tensorboard, wandb,mlflow")
        finally:
            torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    [path] = (root / "results").glob("*.json")
    record = json.loads(path.read_text())
    return record, root / "runs" / record["run_id"], store


def test_tensorboard_event_file_holds_every_row_and_the_final_figures(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    record, run_dir, _ = tracked
    [events] = (run_dir / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    pretrain = rows(run_dir, "pretrain")
    loss = acc.Scalars("pretrain/loss")
    assert len(pretrain) >= 2 and [e.step for e in loss] == [int(r["step"]) for r in pretrain]
    assert [e.value for e in loss] == pytest.approx([float(r["loss"]) for r in pretrain],
                                                    rel=1e-5)
    acc1 = acc.Scalars("linear/test_acc1")
    assert [e.step for e in acc1] == [int(r["step"]) for r in rows(run_dir, "linear")]
    assert acc1[-1].value == pytest.approx(record["metrics"]["linear_acc1"], rel=1e-6)
    [knn] = acc.Scalars("final/knn_acc1")
    assert knn.value == pytest.approx(record["metrics"]["knn_acc1"], rel=1e-6)
    [config] = acc.Tensors("config/text_summary")
    assert '"name": "simclr"' in config.tensor_proto.string_val[0].decode()


def wandb_records(run_file: Path) -> list:
    """The records of a W&B transaction log, parsed with W&B's own protobuf messages.

    The file is a LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then 32 KiB
    blocks of chunks, each ``crc32 (4) | length (2) | type (1) | data`` (type 1: a whole
    record; 2, 3, 4: its first, middle and last pieces).
    """
    from wandb.proto import wandb_internal_pb2

    raw = run_file.read_bytes()
    assert raw[:4] == b":W&B"
    block, pos, pieces, records = 32768, 7, [], []
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # the rest of a block too short for a header: padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        if kind == 0:  # zero fill up to the block's end
            pos += block - pos % block
            continue
        pieces.append(raw[pos + 7:pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(pieces))
            records.append(record)
            pieces = []
    return records


def test_wandb_offline_run_holds_config_history_and_summary(tracked):
    record, run_dir, _ = tracked
    [run_file] = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(run_file)
    [run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == record["run_id"]
    assert sorted(run.tags) == ["digits", "simclr", "tinyconv"]
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["pretrain"]["epochs"] == 1 and config["method"]["name"] == "simclr"

    history = [{i.nested_key[0] if i.nested_key else i.key: json.loads(i.value_json)
                for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    pretrain = [h for h in history if "pretrain/loss" in h]
    assert [h["pretrain/step"] for h in pretrain] == [int(r["step"])
                                                      for r in rows(run_dir, "pretrain")]
    assert [h["pretrain/loss"] for h in pretrain] == pytest.approx(
        [float(r["loss"]) for r in rows(run_dir, "pretrain")], rel=1e-5)
    linear = [h for h in history if "linear/test_acc1" in h]
    assert linear[-1]["linear/test_acc1"] == pytest.approx(record["metrics"]["linear_acc1"])

    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            for u in r.summary.update:
                summary[u.nested_key[0] if u.nested_key else u.key] = json.loads(u.value_json)
    assert summary["final/knn_acc1"] == pytest.approx(record["metrics"]["knn_acc1"])
    assert summary["status"] == "completed"
    [exit_record] = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    assert exit_record.exit_code == 0


def test_mlflow_file_store_run_read_back_with_mlflow_client(tracked):
    from mlflow.tracking import MlflowClient

    record, run_dir, store = tracked
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("sslbench")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == record["run_id"]
    assert run.data.params["pretrain.epochs"] == "1"
    assert run.data.params["method.name"] == "simclr"
    assert run.data.tags["sslbench.run_id"] == record["run_id"]
    history = client.get_metric_history(run.info.run_id, "linear/test_acc1")
    linear = rows(run_dir, "linear")
    assert sorted(m.step for m in history) == [int(r["step"]) for r in linear]
    assert run.data.metrics["final/knn_acc1"] == pytest.approx(record["metrics"]["knn_acc1"])
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert artifacts == ["record.json"]


def test_trackers_change_nothing_in_the_record(tracked):
    record, run_dir, _ = tracked
    plugins = load_plugins(autoload=False, extra=[("test-loggers", TestPlugin())])
    cell = resolve_cell(plugins.catalog, "simclr", "tinyconv", "digits",
                        sets=[s for s in FAST if "=" in s],
                        overrides={"pretrain.epochs": 1, "pretrain.batch_size": 64})
    assert record["config"] == cell.config.model_dump(mode="json")  # no logger in config or id
    assert record["config_hash"] == cell.config_hash
    assert len(rows(run_dir, "pretrain")) >= 2 and len(rows(run_dir, "linear")) == 2


# --- a logger that fails, and what loggers receive -------------------------------------------

def tiny_cell(plugins, names, tmp_path, **sets):
    extra = [f"{k}={v}" for k, v in sets.items()]
    cell = resolve_cell(plugins.catalog, "simclr", "tinyconv", "digits",
                        sets=[s for s in FAST if "=" in s] + extra,
                        overrides={"pretrain.epochs": 1, "pretrain.batch_size": 64})
    opts = RunOptions(device="cpu", quiet=True, output_dir=tmp_path / "runs",
                      results_dir=tmp_path / "results", log=tuple(names))
    return cell, opts, logger_specs(plugins.catalog, names)


@pytest.fixture
def events(monkeypatch):
    monkeypatch.setattr(Events, "calls", [])
    monkeypatch.setattr("sslbench.bench.plots.plot_run", lambda run_dir: {})  # not under test
    return Events.calls


def test_a_logger_failing_mid_run_is_one_warning_and_the_run_completes(tmp_path, capsys,
                                                                        events):
    plugins = load_plugins(autoload=False, extra=[("test-loggers", TestPlugin())])
    cell, opts, loggers = tiny_cell(plugins, ["flaky"], tmp_path)
    record = run_cell(cell, opts, loggers)
    assert record.status == "completed" and record.metrics.knn_acc1 is not None
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == ["warning: logger 'flaky' failed in log(): ConnectionError: tracker "
                        "unreachable; it is off for the rest of this run (the run, its "
                        "metrics.csv and its record go on)"]
    kinds = [c[0] for c in events]
    assert kinds == ["init", "start", "log", "close"]  # dropped: no more rows, no finish
    run_dir = tmp_path / "runs" / record.run_id
    assert len(rows(run_dir, "pretrain")) >= 2 and len(rows(run_dir, "linear")) == 2
    assert (tmp_path / "results" / f"{record.run_id}.json").is_file()


def test_loggers_get_config_every_row_and_the_failed_record(tmp_path, events):
    plugins = load_plugins(autoload=False, extra=[("test-loggers", TestPlugin())])
    cell, opts, loggers = tiny_cell(plugins, ["recorder"], tmp_path,
                                    **{"pretrain.optimizer.lr": 1e30})
    with pytest.raises(TrainingError, match="non-finite loss"):
        run_cell(cell, opts, loggers)
    assert events[:2] == [("init", cell.run_id), ("start", "simclr")]
    assert events[-2][:2] == ("finish", "failed") and "non-finite loss" in events[-2][2]
    assert events[-1] == ("close",)
    logged = [c for c in events if c[0] == "log"]  # the rows before the loss blew up
    assert logged[0][1] == "online_knn"  # the untrained backbone's online kNN, at epoch 0
    assert all(c[1] == "pretrain" and set(c[3]) >= {"epoch", "loss", "lr"} for c in logged[1:])


def test_fanout_drops_a_guest_whose_factory_raises_but_not_the_csv_log(tmp_path):
    lines = []

    def broken(run_dir, run_id, options):
        raise RuntimeError("no credentials")

    fanout = LoggerFanout.open([LoggerSpec("csv-like", Recorder, {}, required=True),
                                LoggerSpec("broken", broken, {})], tmp_path, "r", lines.append)
    assert fanout.names == ["csv-like"]
    assert lines == ["logger 'broken' could not start: RuntimeError: no credentials; it is off "
                     "for the rest of this run (the run, its metrics.csv and its record go on)"]

    class Failing(Recorder):
        def log(self, phase, step, values):
            raise OSError("disk full")

    required = LoggerFanout.open([LoggerSpec("csv", Failing, {}, required=True)], tmp_path, "r")
    with pytest.raises(OSError, match="disk full"):  # metrics.csv failing fails the run
        required.write(phase="pretrain", epoch=1, step=1, loss=1.0)


# --- bad input -------------------------------------------------------------------------------

def one_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_unknown_logger_name_suggests_the_right_one(tmp_path):
    result = invoke("run", "simclr", "resnet18", "digits", "--log", "tensorbord", "--dry-run")
    assert result.exit_code == 2
    assert one_line(result) == "error: unknown logger 'tensorbord'; did you mean 'tensorboard'?"
    matrix = invoke("matrix", "--methods", "simclr", "--backbones", "resnet18", "--datasets",
                    "digits", "--log", "wandb,mlfow", "--dry-run")
    assert matrix.exit_code == 2
    assert one_line(matrix) == "error: unknown logger 'mlfow'; did you mean 'mlflow'?"
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


def test_log_selection_from_the_environment(monkeypatch):
    monkeypatch.setenv("SSLBENCH_LOG", "tensorboard,wandbb")
    result = invoke("run", "simclr", "resnet18", "digits", "--dry-run")
    assert result.exit_code == 2
    assert one_line(result) == "error: unknown logger 'wandbb'; did you mean 'wandb'?"


@pytest.mark.parametrize("name, module", [("wandb", "wandb"), ("mlflow", "mlflow"),
                                          ("tensorboard", "tensorboard")])
def test_missing_tracker_package_is_one_line_naming_the_extra(monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    result = invoke("run", "simclr", "resnet18", "digits", "--log", name)
    assert result.exit_code == 2
    assert one_line(result) == (f"error: logger {name!r} needs the {module} package, which is "
                                f"not installed: pip install 'sslbench[{name}]'")


def test_logger_plugins_load_without_their_packages():
    code = ("import sys; sys.modules.update(wandb=None, mlflow=None, tensorboard=None)\n"
            "from sslbench.core.plugins import load_plugins\n"
            "p = load_plugins(autoload=False)\n"
            "print(p.catalog.names('loggers'), [str(f) for f in p.failures])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['csv', 'mlflow', 'tensorboard', 'wandb'] []"
