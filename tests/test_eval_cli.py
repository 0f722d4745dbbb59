"""`sslbench eval`: the linear-evaluation protocol on a finished run, both probe variants."""

import csv
import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from sslbench.bench.resolve import optimization, resolve_config
from sslbench.cli import app
from sslbench.core.components import Split
from sslbench.core.config import EvalConfig, LinearConfig
from sslbench.engine.evaluate import (
    EvalData,
    EvalPlan,
    FrozenEncoder,
    linear_probe,
    linear_probe_augmented,
)
from sslbench.engine.monitor import MetricsLog, Reporter

runner = CliRunner()
CPU = ["--quiet", "--device", "cpu"]
SMALL = ["--set", "data.train_subset=128", "--set", "eval.train_subset=256"]  # a few seconds


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_record(tmp_path):
    [path] = (tmp_path / "results").glob("*.json")
    return json.loads(path.read_text())


def test_eval_of_a_run_folder_both_variants(tiny, tmp_path):
    run = invoke("run", "simclr", "resnet18", "digits", *tiny, *SMALL)
    assert run.exit_code == 0, run.output
    record = one_record(tmp_path)
    run_dir = tmp_path / "runs" / record["run_id"]

    cached = invoke("eval", run_dir, *CPU)
    assert cached.exit_code == 0, cached.output
    [path] = run_dir.glob("eval-*.json")
    ev = json.loads(path.read_text())
    # same checkpoint, same eval settings, same seed: exactly the run's own figures
    assert ev["metrics"]["linear_acc1"] == record["metrics"]["linear_acc1"]
    assert ev["metrics"]["linear_acc5"] == record["metrics"]["linear_acc5"]
    assert ev["metrics"]["knn_acc1"] == record["metrics"]["knn_acc1"]
    assert ev["variant"] == "cached" and ev["checkpoint_epoch"] == 1
    assert f"Acc@1 {record['metrics']['linear_acc1']:.2f}%" in cached.output

    augmented = invoke("eval", run_dir, "--no-cached", "--epochs", "1", "--lr", "0.05",
                       "--optimizer", "sgd_nesterov", "--set", "eval.train_subset=128", *CPU)
    assert augmented.exit_code == 0, augmented.output
    [path2] = set(run_dir.glob("eval-*.json")) - {path}
    ev2 = json.loads(path2.read_text())
    lin = ev2["eval"]["linear"]
    assert ev2["variant"] == "augmented" and lin["cached"] is False and lin["epochs"] == 1
    assert lin["optimizer"]["name"] == "sgd_nesterov" and lin["optimizer"]["lr"] == 0.05
    # one augmented epoch on 128 images of a one-epoch quarter-width net is no result, but it
    # is a trained probe: Acc@1 at or above chance (10%; seen 12-23), Acc@5 above its chance (50)
    m2 = ev2["metrics"]
    assert 10 <= m2["linear_acc1"] <= m2["linear_acc5"] <= 100 and m2["linear_acc5"] > 50
    with open(path2.with_suffix(".csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["phase"] == "linear"]
    assert len(rows) == 1 and float(rows[0]["test_acc1"]) == pytest.approx(
        ev2["metrics"]["linear_acc1"], abs=1e-3)
    assert "linear (augmented, sgd_nesterov lr 0.05, 1 epochs" in augmented.output
    assert one_record(tmp_path) == record  # the run's own record is left as it was

    typo = invoke("eval", run_dir, "--optimizer", "sgd_nesterv", *CPU)
    assert typo.exit_code == 2 and "did you mean 'sgd_nesterov'" in typo.output
    other = invoke("eval", run_dir, "--set", "pretrain.epochs=3", *CPU)
    assert other.exit_code == 2 and "only changes eval.* settings" in other.output


def test_eval_of_the_random_floor_rebuilds_it_from_its_seed(tiny, tmp_path):
    assert invoke("run", "random", "resnet18", "digits", *tiny, *SMALL).exit_code == 0
    record = one_record(tmp_path)
    result = invoke("eval", tmp_path / "runs" / record["run_id"], *CPU)
    assert result.exit_code == 0, result.output
    assert "untrained (seeded) weights" in result.output
    [path] = (tmp_path / "runs" / record["run_id"]).glob("eval-*.json")
    assert json.loads(path.read_text())["metrics"]["knn_acc1"] == record["metrics"]["knn_acc1"]


def test_eval_missing_path_is_one_line():
    result = invoke("eval", "runs/nothing-here", *CPU)
    assert result.exit_code == 2
    assert result.output == "error: no run folder or checkpoint at runs/nothing-here\n"


def write_run_folder(tmp_path, plugins, checkpoint: bytes | None):
    cfg = resolve_config(plugins.catalog, "simclr", "resnet18", "digits")
    run_dir = tmp_path / "runs" / "x"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(cfg.model_dump_json())
    if checkpoint is not None:
        (run_dir / "checkpoint.pt").write_bytes(checkpoint)
    return run_dir


@pytest.mark.parametrize("target", ["folder", "file"])
def test_eval_corrupt_checkpoint_is_one_line(tmp_path, plugins, target):
    run_dir = write_run_folder(tmp_path, plugins, b"PK\x03\x04 not a checkpoint")
    path = run_dir if target == "folder" else run_dir / "checkpoint.pt"
    result = invoke("eval", path, *CPU)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: refusing checkpoint {run_dir / 'checkpoint.pt'}")
    assert result.output.count("\n") == 1


def test_eval_run_folder_without_checkpoint_or_config(tmp_path, plugins):
    run_dir = write_run_folder(tmp_path, plugins, None)
    result = invoke("eval", run_dir, *CPU)
    assert result.exit_code == 1 and "no checkpoint.pt in" in result.output
    (run_dir / "config.json").unlink()
    result = invoke("eval", run_dir, *CPU)
    assert result.exit_code == 2 and "is not a run folder: it has no config.json" in result.output


class Recorder(nn.Module):
    """A frozen 'backbone' that keeps what it was fed: mean colour per image, as features."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, x):
        self.seen.append((x.detach().clone(), self.training))
        return x.mean(dim=(2, 3)) * self.scale


def toy_split(n=16, size=8):
    """Class 0 dark images with a bright corner, class 1 bright: mean colour separates them."""
    labels = torch.arange(n) % 2
    images = torch.where(labels.view(-1, 1, 1, 1) == 1, 200, 30).expand(n, 3, size, size)
    images = images.clone().to(torch.uint8)
    images[labels == 0, :, :2, :2] = 255
    return Split(images, labels)


def probe_plan(plugins, linear: LinearConfig) -> EvalPlan:
    return EvalPlan(EvalConfig(linear=linear), optimization(plugins.catalog, linear), 0,
                    MetricsLog(None), Reporter(quiet=True))


def test_augmented_probe_crops_anew_each_epoch_with_the_backbone_frozen(plugins):
    train, backbone = toy_split(), Recorder()
    encoder = FrozenEncoder(backbone, 8, (0.5,), (0.25,), torch.device("cpu"))
    train_x = backbone(train.images.float() / 255)
    backbone.seen.clear()
    plan = probe_plan(plugins, LinearConfig(epochs=2, batch_size=16))
    acc1, acc5 = linear_probe_augmented(encoder, EvalData(train, train, 2), train_x.detach(),
                                        train_x.detach(), train.labels, plan)
    (first, mode1), (second, mode2) = backbone.seen
    assert not mode1 and not mode2  # eval mode: batch-norm statistics stay frozen
    assert first.shape == second.shape == (16, 3, 8, 8)
    assert not torch.allclose(first, second)  # fresh random crops every epoch
    assert backbone.scale.item() == 1.0 and backbone.scale.grad is None
    assert acc1 == 100.0 and acc5 == 100.0  # two well-separated classes


def test_cached_probe_learns_separable_features(plugins):
    y = torch.arange(64) % 2
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
    x[:, 0] += 3 * (2 * y - 1)  # a margin of 6 standard deviations along the first axis
    plan = probe_plan(plugins, LinearConfig(epochs=30, batch_size=32))
    acc1, _ = linear_probe(x, y, x, y, 2, plan)
    assert acc1 == 100.0
