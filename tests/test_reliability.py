"""Failures are explicit and nothing finished is lost: non-finite loss, out of memory, Ctrl-C,
a full disk, a checkpoint crafted to run code, and many processes writing one registry.

A throwaway plugin (a toy method on a tiny conv net) keeps these runs to a second or two; the
toy's ``fault`` knob makes it misbehave at a chosen step.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import multiprocessing
import os
import signal
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from sslbench import hookimpl
from sslbench.bench.resolve import cell_from_config, resolve_config
from sslbench.cli import app
from sslbench.core.config import ViewSpec
from sslbench.core.plugins import load_plugins
from sslbench.core.records import Provenance, RunRecord, load_records, read_record, recipe_hash
from sslbench.core.store import RecordStore
from sslbench.engine.checkpoint import load_checkpoint, save_checkpoint
from sslbench.errors import SSLBenchError, TrainingError
from sslbench.testing import TinyConvNet

runner = CliRunner()

# digits at 8 px, 512 pretraining images in batches of 64: 8 steps an epoch
TOY = ["--batch-size", "64", "--set", "data.image_size=8", "--set", "data.train_subset=512",
       "--set", "eval.linear.epochs=1", "--set", "eval.train_subset=256",
       "--set", "pretrain.log_every=4", "--quiet", "--device", "cpu"]


class Toy(nn.Module):
    """Two views pulled together through a linear head, kept apart by a spread term."""

    views = [ViewSpec(count=2, scale=(0.5, 1.0))]
    # {"nan_at": n} | {"raise_at": n} | {"oom_at": n} | {"sigint_after": n} | {"poison_after": n}
    fault: dict = {}

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        # dropout draws from the global RNG, so the checkpoint's RNG states matter
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(backbone.feature_dim, 8))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))  # own checkpointed state

    def forward(self, views, labels=None):
        self.calls += 1
        step = int(self.calls)  # 1-based training step
        if step == self.fault.get("raise_at"):
            raise RuntimeError("toy exploded")
        if step == self.fault.get("oom_at"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        z1, z2 = (F.normalize(self.head(self.backbone(v)), dim=1) for v in views)
        align = (z1 - z2).pow(2).sum(1).mean()
        spread = z1.std(0).mean()
        loss = align - spread
        if step >= self.fault.get("nan_at", float("inf")):  # the spread term's value is lost
            spread = spread.detach() * float("nan")
            loss = loss + spread
        return loss, {"align": align.detach(), "spread": spread.detach()}

    def after_step(self, step: int, total_steps: int) -> None:
        if step + 1 == self.fault.get("sigint_after"):  # as if the user pressed Ctrl-C now
            signal.raise_signal(signal.SIGINT)
        if step + 1 == self.fault.get("poison_after"):  # diverged weights, the loss never saw it
            for p in self.backbone.parameters():
                p.fill_(float("nan"))


def broken_backbone(image_size: int) -> nn.Module:
    raise ValueError("broken backbone")


def broken_dataset(data_dir: Path, download: bool = False):
    raise KeyError("images")


class ToyPlugin:
    @hookimpl
    def sslbench_register_methods(self, register):
        register("toy", Toy)

    @hookimpl
    def sslbench_register_backbones(self, register):
        register("tinyconv", TinyConvNet)
        register("brokenconv", broken_backbone)

    @hookimpl
    def sslbench_register_datasets(self, register):
        register("brokendata", broken_dataset)


def install_toys(monkeypatch) -> None:
    """Every command of the app sees the toy plugin (as if it were installed)."""
    monkeypatch.setattr("sslbench.cli.catalog.load_plugins",
                        functools.partial(load_plugins, extra=[("toy-plugin", ToyPlugin())]))


@pytest.fixture
def toys(monkeypatch):
    install_toys(monkeypatch)
    monkeypatch.setattr(Toy, "fault", {})
    monkeypatch.setattr("sslbench.bench.plots.plot_run", lambda run_dir: {})  # not under test


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and a busy machine makes two spin)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def toy_run(*extra, epochs=2):
    return invoke("run", "toy", "tinyconv", "digits", "--epochs", epochs, *TOY, *extra)


def toy_run_dir(epochs=2) -> Path:
    """The run folder of :func:`toy_run`, relative to the working folder (as the CLI says it)."""
    plugins = load_plugins(autoload=False, extra=[("toy-plugin", ToyPlugin())])
    cfg = resolve_config(plugins.catalog, "toy", "tinyconv", "digits",
                         sets=[s for s in TOY if "=" in s],
                         overrides={"pretrain.epochs": epochs, "pretrain.batch_size": 64})
    return Path("runs") / cell_from_config(plugins.catalog, cfg).run_id


def one_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


# --- non-finite loss, out of memory, a plugin that raises ------------------------------------

def test_non_finite_loss_stops_within_one_log_interval_naming_the_term(toys, tmp_path):
    Toy.fault = {"nan_at": 6}  # logs every 4 steps: the interval of steps 5-8 holds the NaN
    result = toy_run()
    assert result.exit_code == 1
    line = one_line(result)
    # the first non-finite step (6), not the logging step (8)
    assert line.startswith("error: non-finite loss at step 6, epoch 1 (spread not finite at the "
                           "step logged last, 8); lower the learning rate")
    [record] = [read_record(p) for p in (tmp_path / "results").glob("*.json")]
    assert record.status == "failed" and "at step 6" in record.reason
    assert record.metrics.linear_acc1 is None
    csv = (toy_run_dir() / "metrics.csv").read_text().splitlines()
    # nothing logged after the NaN (the online kNN of the untrained backbone comes first)
    assert [row.split(",")[:3] for row in csv[1:]] == [["online_knn", "0", "0"],
                                                       ["pretrain", "1", "3"],
                                                       ["pretrain", "1", "4"]]


@pytest.mark.parametrize("precision, suggests_fp32", [("fp32", False), ("bf16", True)])
def test_the_non_finite_message_suggests_fp32_only_when_not_already_fp32(toys, precision,
                                                                        suggests_fp32):
    Toy.fault = {"nan_at": 1}
    result = toy_run("--set", f"runtime.precision={precision}", epochs=1)
    assert result.exit_code == 1
    assert ("--set runtime.precision=fp32" in one_line(result)) is suggests_fp32


def test_out_of_memory_suggests_a_smaller_batch(toys, tmp_path):
    Toy.fault = {"oom_at": 2}
    result = toy_run()
    assert result.exit_code == 1
    assert one_line(result) == ("error: CUDA out of memory: lower --batch-size (now 64), or "
                                "eval.linear.batch_size (now 256) if it ran out while evaluating")
    [record] = load_records(tmp_path / "results")[0]
    assert record.status == "failed" and "lower --batch-size" in record.reason


def test_a_plugin_that_raises_is_one_line_naming_it_and_where(toys, tmp_path):
    Toy.fault = {"raise_at": 3}
    result = toy_run()
    assert result.exit_code == 1
    line = one_line(result)
    assert line.startswith("error: run failed: RuntimeError: toy exploded (raised in forward at ")
    assert line.endswith(f"{Path(__file__).name}:{Toy.forward.__code__.co_firstlineno + 4})")
    [record] = load_records(tmp_path / "results")[0]
    assert record.status == "failed" and "toy exploded" in record.reason


# --- Ctrl-C, --resume auto --------------------------------------------------------------------

def test_ctrl_c_checkpoints_exits_130_and_the_resumed_run_matches(toys, tmp_path, monkeypatch):
    # mid-way through the last epoch (8 steps each), so its loss sums must survive the stop
    Toy.fault = {"sigint_after": 11}
    result = toy_run()
    assert result.exit_code == 130
    run_dir = tmp_path / toy_run_dir()
    assert one_line(result) == (f"error: interrupted at step 11 of 16: checkpoint saved to "
                                f"{toy_run_dir() / 'checkpoint.pt'}; continue with --resume")
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert (state["step"], state["epoch"], int(state["model"]["calls"])) == (11, 1, 11)

    Toy.fault = {}
    assert toy_run("--resume").exit_code == 0
    (tmp_path / "again").mkdir()
    monkeypatch.chdir(tmp_path / "again")  # an uninterrupted run of the same config, elsewhere
    assert toy_run().exit_code == 0
    resumed = load_checkpoint(run_dir / "checkpoint.pt")
    straight = load_checkpoint(tmp_path / "again" / toy_run_dir() / "checkpoint.pt")
    assert resumed["step"] == straight["step"] == 16
    assert resumed["model"].keys() == straight["model"].keys()
    for key, value in straight["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    [a], [b] = (load_records(d / "results")[0] for d in (tmp_path, tmp_path / "again"))
    assert a.metrics == b.metrics and a.metrics.final_loss is not None


def test_resume_auto_starts_afresh_without_a_checkpoint_and_bare_resume_refuses(toys, tmp_path):
    result = toy_run("--resume")
    assert result.exit_code == 2
    assert one_line(result) == (f"error: nothing to resume: no checkpoint at "
                                f"{toy_run_dir() / 'checkpoint.pt'}; drop --resume, or "
                                "use --resume auto to start afresh when there is none")
    result = toy_run("--resume", "auto", epochs=1)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(toy_run_dir(epochs=1) / "checkpoint.pt")["step"] == 8


def test_checkpoint_every_writes_mid_epoch_checkpoints(toys, tmp_path, monkeypatch):
    steps = []
    real = save_checkpoint

    def spy(state, path):
        steps.append((state["epoch"], state["step"]))
        real(state, path)

    monkeypatch.setattr("sslbench.engine.pretrain.save_checkpoint", spy)
    assert toy_run("--checkpoint-every", "3").exit_code == 0
    # every 3 steps within an epoch, and at every epoch's end (no duplicate at step 8 or 16)
    assert steps == [(0, 3), (0, 6), (1, 8), (1, 9), (1, 12), (1, 15), (2, 16)]


# --- a full disk ------------------------------------------------------------------------------

def failing_fsync(after: int):
    """``os.fsync`` that works ``after`` times, then fails as a full disk does."""
    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > after:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    return fsync


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}, "step": 1}, path)
    with mock.patch("os.fsync", failing_fsync(after=0)):
        with pytest.raises(SSLBenchError) as err:
            save_checkpoint({"model": {"w": torch.zeros(3)}, "step": 2}, path)
    assert str(err.value) == (f"cannot write checkpoint {path}: No space left on device; "
                              "the previous checkpoint is intact")
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left


def test_full_disk_during_a_run_is_one_line_and_loses_nothing(toys, tmp_path):
    with mock.patch("os.fsync", failing_fsync(after=1)):  # the 2nd checkpoint fails
        result = toy_run("--checkpoint-every", "3")
    assert result.exit_code == 1
    checkpoint = toy_run_dir() / "checkpoint.pt"
    assert one_line(result) == (f"error: cannot write checkpoint {checkpoint}: No space left "
                                "on device; the previous checkpoint is intact")
    assert load_checkpoint(checkpoint)["step"] == 3

    assert toy_run("--resume").exit_code == 0  # space freed: continue from step 3
    [record_path] = Path("results").glob("*.json")
    before = record_path.read_text()
    with mock.patch("os.fsync", failing_fsync(after=0)):  # evaluate again, record fails
        result = toy_run("--resume")
    assert result.exit_code == 1
    assert one_line(result).startswith(f"error: cannot write the record {record_path}: No "
                                       "space left on device; any previous record is intact")
    assert record_path.read_text() == before
    assert [p.name for p in Path("results").iterdir()] == [record_path.name]


# --- a checkpoint is data, never code ---------------------------------------------------------

class Payload:
    """Unpickling this calls ``open(marker, "w")``: code running on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def malicious_checkpoint(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.ones(2)}, "config": "{}", "payload": Payload(marker)},
               buffer)
    return buffer.getvalue()


def test_the_payload_would_run_code_with_an_unsafe_load(tmp_path):
    marker = tmp_path / "pwned"  # the control: the refusal below is the loader's doing
    torch.load(io.BytesIO(malicious_checkpoint(marker)), weights_only=False)
    assert marker.exists()


def test_checkpoint_that_would_run_code_is_refused_and_nothing_runs(toys, tmp_path):
    marker = tmp_path / "pwned"
    path = toy_run_dir() / "checkpoint.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(malicious_checkpoint(marker))
    with pytest.raises(SSLBenchError, match="which would run code on load"):
        load_checkpoint(path)
    result = toy_run("--resume")
    assert result.exit_code == 1
    assert one_line(result).startswith(f"error: refusing checkpoint {path}: it holds ")
    assert "only tensors and plain containers" in result.output
    assert not marker.exists()


# --- many writers, one registry ---------------------------------------------------------------

PROV = Provenance(sslbench="0", torch="2", torchvision="0", python="3.11", platform="x")


def make_record(rid: str, writer: int) -> RunRecord:
    return RunRecord(run_id=rid, status="completed", method="simclr", backbone="resnet18",
                     dataset="digits", seed=writer, epochs=1, config={"writer": writer},
                     config_hash=recipe_hash({"writer": writer}), provenance=PROV)


def write_many(args) -> None:
    folder, writer = args
    for i in range(50):
        RecordStore(Path(folder)).save(make_record(f"w{writer}-r{i}", writer))
        RecordStore(Path(folder)).save(make_record("shared", writer))  # all fight over one file


def test_eight_processes_writing_fifty_records_each_lose_nothing(tmp_path):
    with multiprocessing.get_context("fork").Pool(8) as pool:
        pool.map(write_many, [(str(tmp_path), w) for w in range(8)])
    records, warnings = load_records(tmp_path)
    assert warnings == []
    own = [r for r in records if r.run_id != "shared"]
    assert len(own) == 400
    assert {(r.run_id, r.seed) for r in own} == {(f"w{w}-r{i}", w) for w in range(8)
                                                 for i in range(50)}
    shared = json.loads((tmp_path / "shared.json").read_text())
    assert shared["seed"] in range(8)  # one writer's whole record, not a mix
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".json")) == []


# --- records are never lost ------------------------------------------------------------------

def test_a_failed_rerun_of_a_completed_cell_keeps_its_record_and_logs_the_attempt(toys,
                                                                               tmp_path):
    assert toy_run(epochs=1).exit_code == 0
    [path] = (tmp_path / "results").glob("*.json")
    before = path.read_bytes()
    Toy.fault = {"raise_at": 3}
    again = toy_run(epochs=1)
    assert again.exit_code == 1
    line = one_line(again)
    assert "toy exploded" in line
    assert line.endswith(f"the completed record {Path('results') / path.name} is kept; this "
                         f"attempt's failure was added to results/{path.stem}.attempts.jsonl")
    assert path.read_bytes() == before  # byte for byte
    [attempt] = (tmp_path / "results" / f"{path.stem}.attempts.jsonl").read_text().splitlines()
    logged = json.loads(attempt)
    assert logged["status"] == "failed" and "toy exploded" in logged["reason"]
    assert load_records(tmp_path / "results") == ([read_record(path)], [])  # still one record


def test_the_store_replaces_failed_with_completed_and_never_completed_with_failed(tmp_path):
    from sslbench.core.store import RecordStore

    store = RecordStore(tmp_path)
    done = make_record("cell", 0)
    failed = done.model_copy(update={"status": "failed", "reason": "disk on fire"})
    assert store.save(failed).outcome == "written" and store.read("cell").status == "failed"
    assert store.save(done).outcome == "written" and store.read("cell").status == "completed"
    kept = store.save(failed)
    assert kept.outcome == "kept" and store.read("cell") == done
    assert store.attempts_path("cell").read_text().count("disk on fire") == 1
    assert not store.is_completed("other") and store.read("other") is None


def test_the_record_is_written_before_the_plots_and_a_plot_failure_is_a_warning(toys, tmp_path,
                                                                                monkeypatch):
    def broken(run_dir):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sslbench.bench.plots.plot_run", broken)
    result = toy_run(epochs=1)
    assert result.exit_code == 0, result.output
    warnings = [w for w in result.stderr.splitlines() if w.startswith("warning: plots of ")]
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    [record] = load_records(tmp_path / "results")[0]
    assert record.status == "completed" and not any(k.startswith("plot_")
                                                    for k in record.artifacts)


def test_diverged_weights_with_a_bounded_loss_fail_the_run_instead_of_completing(toys,
                                                                              tmp_path):
    Toy.fault = {"poison_after": 8}  # the last step of the only epoch: no loss ever saw it
    result = toy_run(epochs=1)
    assert result.exit_code == 1
    assert one_line(result).startswith("error: evaluation: ")
    assert "feature values are not finite (the backbone's weights diverged" in one_line(result)
    [record] = load_records(tmp_path / "results")[0]
    assert record.status == "failed" and "not finite" in record.reason
    assert record.metrics.knn_acc1 is None  # no chance-level figure reaches the table


@pytest.mark.parametrize("figures, message", [
    ({"linear_acc1": 101.0}, "evaluation reported linear_acc1 = 101.0, which is outside [0, 100]"),
    ({"knn_acc1": float("nan")}, "evaluation reported knn_acc1 = nan, which is not finite"),
    ({"final_loss": float("inf")}, "pretraining reported final_loss = inf, which is not finite"),
])
def test_a_figure_out_of_range_is_a_failure_naming_phase_and_value(figures, message):
    from sslbench.bench.run import check_metrics

    with pytest.raises(TrainingError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_metrics({"linear_acc1": 50.0, "knn_acc1": 40.0, "final_loss": 1.0, **figures})
    check_metrics({"linear_acc1": 0.0, "knn_acc1": 100.0, "final_loss": -3.0})  # in range
