"""Bad input through the CLI, one table: each case's exit code (2 usage, 1 runtime) and the one
line a user sees, never a traceback. Complements the cases of ``test_cli.py``.

Each case may prepare the working folder first (a config file, a fake data folder, a corrupt
checkpoint or record); every test runs in its own empty folder (see ``conftest.py``).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sslbench.bench.resolve import cell_from_config, resolve_config
from sslbench.cli import app
from sslbench.core.plugins import load_plugins
from sslbench.core.store import RecordStore
from tests.test_reliability import install_toys, make_record

runner = CliRunner()
RUN = ["run", "simclr", "resnet18", "digits"]
TINY = ["--epochs", "1", "--batch-size", "64", "--set", "data.image_size=8", "--quiet",
        "--device", "cpu"]


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    message: str
    setup: Callable[[pytest.MonkeyPatch], None] | None = None
    one_line: bool = True  # False: the message is a warning among other output


def write(name: str, content: str | bytes) -> Callable:
    def setup(monkeypatch):
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def tiny_run_dir() -> Path:
    """The run folder of ``RUN + TINY`` (a checkpoint put there is what --resume reads)."""
    catalog = load_plugins(autoload=False).catalog
    return Path("runs") / cell_from_config(catalog, tiny_config()).run_id


def tiny_config(**overrides):
    catalog = load_plugins(autoload=False).catalog
    return resolve_config(catalog, "simclr", "resnet18", "digits", sets=["data.image_size=8"],
                          overrides={"pretrain.epochs": 1, "pretrain.batch_size": 64,
                                     **overrides})


def checkpoint(make_state: Callable[[], object]) -> Callable:
    """Put a checkpoint in the run folder: ``torch.save`` of the state, or raw bytes."""
    def setup(monkeypatch):
        path = tiny_run_dir() / "checkpoint.pt"
        path.parent.mkdir(parents=True)
        state = make_state()
        if isinstance(state, bytes):
            path.write_bytes(state)
        else:
            torch.save(state, path)
    return setup


def fake_fashion_mnist(images: bytes) -> Callable:
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"]

    def setup(monkeypatch):
        raw = Path("fake/FashionMNIST/raw")
        raw.mkdir(parents=True)
        for name in names:
            (raw / name).write_bytes(images if "images" in name else idx(1, [10], b"\0" * 10))
    return setup


def idx(kind: int, dims: list[int], data: bytes) -> bytes:
    """An IDX file (the MNIST format): magic, dimensions, then the bytes (maybe too few)."""
    return struct.pack(">HBB", 0, 8, kind) + struct.pack(f">{len(dims)}I", *dims) + data


def system_gz(monkeypatch):
    """Debian's system folder holding Fashion-MNIST .gz files that are not gzip."""
    folder = Path("system")
    folder.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (folder / f"{name}.gz").write_bytes(b"this is not gzip")
    monkeypatch.setattr("sslbench.builtin.data.fashion_mnist.SYSTEM_DIRS", [folder.resolve()])


def truncated_cifar(monkeypatch):
    folder = Path("fake/cifar-10-batches-py")
    folder.mkdir(parents=True)
    batch = pickle.dumps({b"data": bytes(3072 * 10), b"labels": [0] * 10})
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(batch[: len(batch) // 2])


def corrupt_record(monkeypatch):
    Path("results").mkdir()
    Path("results/half-written.json").write_text('{"schema_version": 1, "run_id": "x", ')


def toys(monkeypatch):
    install_toys(monkeypatch)


CASES = [
    # --- unknown names and invalid values (usage, exit 2) ---
    Case("unknown-command", ["runn"], 2, "No such command 'runn'"),
    Case("missing-argument", ["run", "simclr"], 2, "Missing argument 'backbone'"),
    Case("extra-argument", [*RUN, "cifar10"], 2, "unexpected extra argument(s) (cifar10)"),
    Case("unknown-scheduler", [*RUN, "--set", "pretrain.schedule.name=cosin"], 2,
         "unknown scheduler 'cosin'; did you mean 'cosine'"),
    Case("unknown-linear-optimizer", [*RUN, "--set", "eval.linear.optimizer.name=lasr"], 2,
         "unknown optimizer 'lasr'; did you mean 'lars'"),
    Case("backbone-option", [*RUN, "--set", "backbone.depth=3"], 2,
         "backbone 'resnet18': got an unexpected keyword argument 'depth'"),
    Case("vit-patch", ["run", "simclr", "vit_tiny", "digits", "--set",
                       "backbone.patch_size=3"], 2,
         "backbone 'vit_tiny': patch_size 3 does not divide the image size 8"),
    Case("vit-image-size", ["run", "dino", "vit_tiny", "fashion-mnist", "--set",
                            "data.image_size=30"], 2,
         "backbone 'vit_tiny': patch_size 4 does not divide the image size 30"),
    Case("mae-cnn", ["run", "mae", "resnet18", "digits"], 2,
         "method 'mae' needs a backbone with 'encode_visible' (a ViT: vit_tiny, vit_small); "
         "'resnet18' has none"),
    Case("timm-unknown", ["run", "simclr", "timm:resnet1t", "digits"], 2,
         "unknown timm model 'resnet1t'; did you mean"),
    Case("timm-no-model", ["run", "simclr", "timm:", "digits"], 2,
         "backbone 'timm:': expected <backbone>:<model>, e.g. timm:resnet18"),
    Case("method-option-type", [*RUN, "--set", "method.temperature=hot"], 2,
         "invalid method.temperature: Input should be a valid number"),
    Case("negative-seed-set", [*RUN, "--set", "seed=-1"], 2, "invalid seed"),
    Case("huge-seed", [*RUN, "--seed", "4294967296"], 2, "invalid seed"),
    Case("small-image", [*RUN, "--set", "data.image_size=4"], 2, "invalid data.image_size"),
    Case("precision", [*RUN, "--set", "runtime.precision=fp8"], 2,
         "invalid runtime.precision: Input should be 'auto', 'bf16', 'fp16' or 'fp32'"),
    Case("infinite-lr", [*RUN, "--lr", "inf"], 2,
         "invalid pretrain.optimizer.lr: Input should be a finite number"),
    Case("view-ranges", [*RUN, "--set", "pretrain.views=[{scale: [0.9, 0.1]}]"], 2,
         "scale must be (low, high) with 0 < low <= high"),
    Case("epochs-not-int", [*RUN, "--epochs", "1.5"], 2,
         "Invalid value for '--epochs': Input should be a valid integer"),
    Case("checkpoint-every-zero", [*RUN, "--checkpoint-every", "0"], 2, "--checkpoint-every"),
    Case("resume-mode", [*RUN, "--resume=sometimes"], 2, "'sometimes' is not one of"),
    Case("missing-cuda-device", [*RUN, "--device", "cuda:99"], 2, "--device cuda:99"),
    Case("table-format", ["table", "--format", "xml"], 2, "'xml' is not one of"),
    # --- conflicting options (usage, exit 2) ---
    Case("set-value-and-section", [*RUN, "--set", "pretrain.epochs=2", "--set",
                                   "pretrain.epochs.warmup=1"], 2,
         "invalid pretrain.epochs: Input should be a valid integer"),
    Case("batch-larger-than-subset", [*RUN, *TINY, "--set", "data.train_subset=32"], 2,
         "pretrain.batch_size 64 is larger than the 32 pretraining images; lower --batch-size"),
    Case("resume-without-checkpoint", [*RUN, *TINY, "--resume"], 2,
         "nothing to resume: no checkpoint at runs/"),
    Case("resume-other-config", [*RUN, *TINY, "--resume"], 2,
         "the config differs in pretrain.optimizer.lr, pretrain.optimizer.momentum",
         checkpoint(lambda: {"model": {}, "config": tiny_config(**{
             "pretrain.optimizer.lr": 0.5, "pretrain.optimizer.momentum": 0.8})
             .model_dump_json()})),
    # --- config files: unreadable, wrong format, wrong shape (usage, exit 2) ---
    Case("yaml-syntax", [*RUN, "--config", "c.yaml"], 2, "config file c.yaml is not valid YAML",
         write("c.yaml", "pretrain: [1, 2")),
    Case("json-syntax", [*RUN, "--config", "c.json"], 2, "config file c.json is not valid JSON",
         write("c.json", '{"pretrain": ')),
    Case("yaml-list", [*RUN, "--config", "c.yaml"], 2,
         "config file c.yaml: expected a table of sections at the top level",
         write("c.yaml", "- 1\n- 2\n")),
    Case("json-number", [*RUN, "--config", "c.json"], 2,
         "config file c.json: expected a table of sections at the top level",
         write("c.json", "42")),
    Case("unknown-extension", [*RUN, "--config", "c.ini"], 2,
         "config file c.ini: unknown format '.ini'; use .toml, .yaml or .json",
         write("c.ini", "[pretrain]\n")),
    Case("config-is-folder", [*RUN, "--config", "conf"], 2, "cannot read config file conf",
         lambda mp: Path("conf").mkdir()),
    Case("config-not-utf8", [*RUN, "--config", "c.toml"], 2,
         "cannot read config file c.toml: UnicodeDecodeError", write("c.toml", b"\xff\xfe\x00")),
    Case("toml-unknown-section", [*RUN, "--config", "c.toml"], 2,
         "unknown setting 'pretrian'", write("c.toml", "[pretrian]\nepochs = 1\n")),
    Case("toml-wrong-type", [*RUN, "--config", "c.toml"], 2,
         "invalid pretrain.epochs: Input should be a valid integer",
         write("c.toml", '[pretrain]\nepochs = "many"\n')),
    Case("yaml-section-not-table", [*RUN, "--config", "c.yaml"], 2, "invalid pretrain",
         write("c.yaml", "pretrain: 3\n")),
    # --- missing or corrupt data (runtime, exit 1) ---
    Case("fashion-mnist-wrong-size", ["run", "simclr", "resnet18", "fashion-mnist",
                                      "--data-dir", "fake", "--no-download", "--quiet"], 1,
         "Fashion-MNIST files in fake/FashionMNIST/raw are unreadable or corrupt",
         fake_fashion_mnist(idx(3, [10, 28, 28], bytes(100)))),
    Case("fashion-mnist-garbage", ["run", "simclr", "resnet18", "fashion-mnist",
                                   "--data-dir", "fake", "--no-download", "--quiet"], 1,
         "Fashion-MNIST files in fake/FashionMNIST/raw are unreadable or corrupt",
         fake_fashion_mnist(b"garbage")),
    Case("fashion-mnist-bad-gzip", ["run", "simclr", "resnet18", "fashion-mnist",
                                    "--data-dir", "fake", "--no-download", "--quiet"], 1,
         "Fashion-MNIST files in fake/FashionMNIST/raw are unreadable or corrupt", system_gz),
    Case("cifar10-truncated-batch", ["run", "simclr", "resnet18", "cifar10", "--data-dir",
                                     "fake", "--no-download", "--quiet"], 1,
         "CIFAR-10 files in fake/cifar-10-batches-py are unreadable or corrupt",
         truncated_cifar),
    # --- corrupt or foreign checkpoints (runtime, exit 1) ---
    Case("garbage-checkpoint", [*RUN, *TINY, "--resume"], 1,
         "not a valid sslbench checkpoint", checkpoint(lambda: b"\x80\x04 garbage")),
    Case("truncated-checkpoint", [*RUN, *TINY, "--resume"], 1,
         "not a valid sslbench checkpoint (RuntimeError: PytorchStreamReader failed",
         checkpoint(lambda: torch_bytes({"model": {"w": torch.ones(1000)}})[:300])),
    Case("checkpoint-of-a-tensor", [*RUN, *TINY, "--resume"], 1,
         "not an sslbench checkpoint", checkpoint(lambda: torch.ones(3))),
    Case("foreign-checkpoint", [*RUN, *TINY, "--resume"], 1,
         "not an sslbench checkpoint", checkpoint(lambda: {"state_dict": {"w": torch.ones(1)}})),
    Case("checkpoint-without-config", [*RUN, *TINY, "--resume"], 1,
         "it holds no valid run config", checkpoint(lambda: {"model": {}})),
    Case("checkpoint-of-other-model", [*RUN, *TINY, "--resume"], 1,
         "the checkpoint does not fit this run (RuntimeError: Error(s) in loading state_dict",
         checkpoint(lambda: {"model": {"w": torch.ones(1)},
                             "config": tiny_config().model_dump_json()})),
    # --- folders that cannot take the results (runtime, exit 1) ---
    Case("results-dir-is-a-file", [*RUN, *TINY, "--results-dir", "results.txt"], 1,
         "cannot write to the results folder results.txt: it is a file",
         write("results.txt", "a file")),
    Case("results-dir-under-a-file", [*RUN, *TINY, "--results-dir", "results.txt/sub"], 1,
         "cannot write to the results folder results.txt/sub: Not a directory",
         write("results.txt", "a file")),
    Case("output-dir-is-a-file", [*RUN, *TINY, "--output-dir", "runs.txt"], 1,
         "cannot write to the run folder runs.txt/", write("runs.txt", "a file")),
    Case("corrupt-record-in-table", ["table"], 0,
         "warning: skipping unreadable record results/half-written.json", corrupt_record,
         one_line=False),
    # --- plugins that raise (runtime, exit 1) ---
    Case("backbone-plugin-raises", ["run", "toy", "brokenconv", "digits", *TINY], 1,
         "run failed: ValueError: broken backbone (raised in broken_backbone at ", toys),
    Case("dataset-plugin-raises", ["run", "toy", "tinyconv", "brokendata", *TINY], 1,
         "dataset 'brokendata' could not be loaded: KeyError: 'images'", toys),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_exit_code_and_one_line(case: Case, monkeypatch):
    if case.setup:
        case.setup(monkeypatch)
    result = runner.invoke(app, case.args)
    assert result.exit_code == case.code, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    if case.one_line:
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith("error: "), result.output
    assert case.message in result.output, result.output


def test_the_table_has_enough_distinct_cases():
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


def torch_bytes(state) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def test_a_corrupt_record_does_not_hide_the_good_ones(monkeypatch):
    corrupt_record(monkeypatch)
    RecordStore(Path("results")).save(make_record("good-one", 0))
    Path("results/alien.json").write_text(json.dumps({"run_id": "alien"}))
    result = runner.invoke(app, ["table", "--format", "csv"])
    assert result.exit_code == 0
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert {"half-written.json", "alien.json"} == {w.split()[4].rsplit("/")[-1].rstrip(":")
                                                   for w in warnings}
    rows = [line for line in result.output.splitlines() if "SimCLR" in line]
    assert len(rows) == 1  # the good record is still in the table
