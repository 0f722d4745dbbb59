"""Evaluations beyond one probe: RankMe and feature std, few-label subsets, fine-tuning, the
record store adding later figures, and their bad input — each against a case worked by hand."""

import json
import math
import os

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from sslbench.bench.resolve import optimization
from sslbench.cli import app
from sslbench.core.components import Split
from sslbench.core.config import FinetuneConfig
from sslbench.core.records import FewLabel
from sslbench.core.store import RecordStore
from sslbench.engine.diagnostics import diagnose, feature_std, rankme
from sslbench.engine.evaluate import FrozenEncoder
from sslbench.engine.fewshot import balanced_indices, balanced_subset
from sslbench.engine.finetune import FinetunePlan, finetune
from sslbench.engine.monitor import MetricsLog, Reporter
from sslbench.errors import UsageError

runner = CliRunner()


# --- RankMe and feature std ---------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3, 7])
def test_rankme_of_a_rank_k_matrix_with_equal_singular_values_is_k(k):
    q, _ = torch.linalg.qr(torch.randn(50, 16, generator=torch.Generator().manual_seed(k)))
    z = q[:, :k] @ torch.linalg.qr(torch.randn(16, 16))[0][:k]  # [50, 16], k singular values 1
    assert rankme(z) == pytest.approx(k, rel=1e-4)


def test_rankme_of_unequal_singular_values_is_the_exponential_of_their_entropy():
    z = torch.diag(torch.tensor([3.0, 1.0, 0.0]))  # p = (3/4, 1/4, 0)
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))  # 1.7548...
    assert rankme(z) == pytest.approx(expected, rel=1e-5)
    assert rankme(torch.ones(10, 4)) == pytest.approx(1.0, rel=1e-5)  # collapsed: rank 1
    assert rankme(torch.zeros(5, 3)) == 1.0


def test_feature_std_by_hand():
    # rows normalised: (1, 0), (0, 1); each column is (1, 0): sample std sqrt(1/2)
    assert feature_std(torch.tensor([[2.0, 0.0], [0.0, 5.0]])) == pytest.approx(0.5 ** 0.5)
    assert feature_std(torch.tensor([[1.0, 2.0]] * 6)) == pytest.approx(0.0, abs=1e-12)


def test_diagnose_uses_one_fixed_sample_of_rows():
    z = torch.randn(3000, 8, generator=torch.Generator().manual_seed(5))
    rows = z[torch.randperm(3000, generator=torch.Generator().manual_seed(0))[:1000]]
    d = diagnose(z, samples=1000)
    assert (d.rankme, d.feature_std) == (rankme(rows), feature_std(rows))
    assert 7.5 < d.rankme <= 8  # isotropic noise: nearly full rank


# --- few-label subsets --------------------------------------------------------------------

def test_few_label_subsets_are_exactly_balanced_nested_and_identical_across_runs():
    labels = torch.arange(10).repeat_interleave(100)[torch.randperm(1000)]  # 100 per class
    one, ten = balanced_indices(labels, 1, 10), balanced_indices(labels, 10, 10)
    assert torch.bincount(labels[one], minlength=10).tolist() == [1] * 10
    assert torch.bincount(labels[ten], minlength=10).tolist() == [10] * 10
    assert set(one.tolist()) <= set(ten.tolist())  # the 1% subset is inside the 10% one
    torch.manual_seed(123)  # the global RNG (a run's seed) does not move them
    assert torch.equal(balanced_indices(labels, 10, 10), ten)
    split = Split(torch.zeros(1000, 1, 2, 2, dtype=torch.uint8), labels)
    assert torch.equal(balanced_subset(split, 10, 10).labels, labels[ten])


def test_a_few_label_subset_larger_than_a_class_is_a_usage_error():
    labels = torch.tensor([0] * 30 + [1] * 10)
    assert balanced_indices(labels, 50, 2).numel() == 20  # 10 of each class: all of class 1
    with pytest.raises(UsageError, match=r"a 60% label subset needs 12 images of every class, "
                                         r"but class 1 has only 10 in the 40 train images"):
        balanced_indices(labels, 60, 2)


# --- fine-tuning --------------------------------------------------------------------------

class Pixels(nn.Module):
    """A tiny backbone: mean of each channel, then a linear map (learns what the head needs)."""

    feature_dim = 4

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


def separable(n: int, seed: int) -> Split:
    """Class 0 dark images, class 1 bright ones: any crop keeps the class."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.randint(0, 60, (n, 1, 8, 8), generator=gen) + labels.view(-1, 1, 1, 1) * 190
    return Split(images.to(torch.uint8), labels)


def test_finetune_on_separable_data_reaches_100_percent_and_leaves_the_backbone(plugins):
    backbone = Pixels()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    cfg = FinetuneConfig(epochs=15, batch_size=16, optimizer={"name": "sgd", "lr": 0.5,
                                                              "weight_decay": 0.0})
    plan = FinetunePlan(cfg.epochs, optimization(plugins.catalog, cfg), 0, MetricsLog(None),
                        Reporter(quiet=True))
    encoder = FrozenEncoder(backbone, 8, (0.5,), (0.25,), torch.device("cpu"))
    acc1, acc5 = finetune(encoder, separable(64, 0), separable(40, 1), 2, plan)
    assert (acc1, acc5) == (100.0, 100.0)
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


# --- the record store adds later figures --------------------------------------------------

def completed_record(tmp_path, tiny):
    result = runner.invoke(app, ["run", "random", "resnet18", "digits", *tiny,
                                 "--set", "eval.train_subset=200"])
    assert result.exit_code == 0, result.output
    [path] = (tmp_path / "results").glob("*.json")
    return path


@pytest.mark.slow
def test_add_evaluations_keeps_the_run_figures_and_a_failed_write_changes_nothing(
        tmp_path, tiny, monkeypatch):
    path = completed_record(tmp_path, tiny)
    store, rid = RecordStore(path.parent), path.stem
    old = json.loads(path.read_text())
    few = [FewLabel(percent=10, images=140, linear_acc1=50.0)]
    store.add_evaluations(rid, {"finetune_acc1": 91.5, "few_label": few},
                          {"finetune": "by hand"})
    new = json.loads(path.read_text())
    assert new["metrics"]["finetune_acc1"] == 91.5
    assert new["metrics"]["few_label"][0]["linear_acc1"] == 50.0
    for name in ("linear_acc1", "linear_acc5", "knn_acc1", "final_loss", "rankme"):
        assert new["metrics"][name] == old["metrics"][name]
    assert new["cost"] == old["cost"] and new["config"] == old["config"]
    assert new["protocols"]["finetune"] == "by hand" and "linear" in new["protocols"]
    # a second subset is added beside the first; the first kept
    store.add_evaluations(rid, {"few_label": [FewLabel(percent=1, images=10)]}, {})
    assert [f["percent"] for f in json.loads(path.read_text())["metrics"]["few_label"]] == [1, 10]

    before = path.read_bytes()

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        store.add_evaluations(rid, {"finetune_acc1": 12.0}, {})
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    with pytest.raises(ValueError, match="an accuracy is a percentage"):  # refused, not written
        store.add_evaluations(rid, {"finetune_acc1": 150.0}, {})
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="not figures measured after a run"):
        store.add_evaluations(rid, {"linear_acc1": 1.0}, {})


# --- bad input: one line, exit 2 ----------------------------------------------------------

@pytest.mark.parametrize("sets, message", [
    (["--set", "eval.few_label.percents=[150]"],
     "error: invalid eval.few_label.percents.0: Input should be less than or equal to 100"),
    (["--set", "eval.few_label.percents=[100]"],
     "error: a 100% label subset needs 144 images of every class, but class 8 has only 139"),
    (["--set", "eval.few_label.finetune=true"],
     "error: eval.few_label.finetune uses eval.finetune's recipe: set eval.finetune.epochs > 0"),
])
def test_bad_few_label_requests(tiny, sets, message):
    result = runner.invoke(app, ["run", "simclr", "resnet18", "digits", *tiny, *sets])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith(message), result.output


def test_fine_tuning_the_random_row_is_a_usage_error(tiny):
    result = runner.invoke(app, ["run", "random", "resnet18", "digits", *tiny,
                                 "--set", "eval.finetune.epochs=1"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: cannot fine-tune the 'random' row: it is the untrained floor, and fine-tuning it "
        "is supervised training from scratch (that row is 'supervised'); set "
        "eval.finetune.epochs=0")


# --- the table picks its columns ----------------------------------------------------------

def test_table_metrics_pick_the_columns_mean_std_over_seeds():
    from sslbench.bench import table as tables
    from sslbench.core.records import Metrics
    from tests.test_records import make_record

    def few(p, lin, ft=None):
        return FewLabel(percent=p, images=10, linear_acc1=lin, finetune_acc1=ft)

    records = [
        make_record("a0", seed=0, metrics=Metrics(knn_acc1=80.0, finetune_acc1=90.0,
                                                  few_label=[few(1, 40.0), few(10, 60.0, 70.0)],
                                                  rankme=100.0, feature_std=0.05)),
        make_record("a1", seed=1, metrics=Metrics(knn_acc1=82.0, finetune_acc1=94.0,
                                                  few_label=[few(1, 44.0)], rankme=110.0,
                                                  feature_std=0.07)),
        make_record("r0", method="random", epochs=0, metrics=Metrics(knn_acc1=60.0)),
    ]
    frame = tables.records_frame(records)
    assert list(tables.summarise(frame).columns) == tables.COLUMNS  # the default: unchanged
    out = tables.summarise(frame, metrics=["finetune", "1pct", "ft10pct", "rankme", "std"],
                           sort="finetune")
    assert list(out.columns)[4:11] == ["FT Acc@1", "FT Acc@5", "1% Acc@1", "10% FT Acc@1",
                                       "RankMe", "Feat. std", "n"]
    first, floor = out.iloc[0], out.iloc[1]
    assert (first["FT Acc@1"], first["FT Acc@5"]) == ("92.00 ± 2.83", "–")
    assert first["1% Acc@1"] == "42.00 ± 2.83" and first["10% FT Acc@1"] == "70.00"
    assert (first["RankMe"], first["Feat. std"]) == ("105.0 ± 7.1", "0.0600 ± 0.0141")
    assert floor["Model"] == "random" and floor["1% Acc@1"] == "–"
    with pytest.raises(UsageError, match="unknown metric 'top1' for --metrics"):
        tables.summarise(frame, metrics=["top1"])


@pytest.mark.slow
def test_eval_adds_few_label_figures_to_the_run_record(tmp_path, tiny):
    path = completed_record(tmp_path, tiny)
    old = json.loads(path.read_text())
    run_dir = tmp_path / "runs" / path.stem
    result = runner.invoke(app, ["eval", str(run_dir), "--few-label", "10", "--quiet",
                                 "--device", "cpu", "--set", "eval.train_subset=200"])
    assert result.exit_code == 0, result.output
    assert f"added to {path.relative_to(tmp_path)}" in result.output
    new = json.loads(path.read_text())
    [ten] = new["metrics"]["few_label"]
    assert ten["percent"] == 10 and ten["images"] == 140  # 14 of each digit: round(1437/100)
    assert 10 < ten["linear_acc1"] <= 100
    assert new["metrics"]["knn_acc1"] == old["metrics"]["knn_acc1"]
    assert "class-balanced" in new["protocols"]["few_label"]
    table = runner.invoke(app, ["table", "--metrics", "knn,10pct"])
    assert f"{ten['linear_acc1']:.2f}" in table.output


# --- transfer -----------------------------------------------------------------------------

def fake_fashion(tmp_path, n_train=40, n_test=20):
    from tests.test_datasets import idx_images, idx_labels

    raw = tmp_path / "data" / "FashionMNIST" / "raw"  # $SSLBENCH_DATA in every test
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("t10k", n_test)):
        (raw / f"{name}-images-idx3-ubyte").write_bytes(
            idx_images(rng.integers(0, 256, (n, 28, 28))))
        (raw / f"{name}-labels-idx1-ubyte").write_bytes(idx_labels(np.arange(n) % 10))


@pytest.mark.slow
def test_transfer_names_both_datasets_and_groups_by_the_evaluation_one(tmp_path, tiny):
    fake_fashion(tmp_path)
    result = runner.invoke(app, ["run", "simclr", "resnet18", "digits", *tiny,
                                 "--set", "data.train_subset=128", "--set",
                                 "eval.online.knn_every=0", "--eval-dataset", "fashion-mnist",
                                 "--data-dir", str(tmp_path / "data"), "--no-download"])
    assert result.exit_code == 0, result.output
    [path] = (tmp_path / "results").glob("*.json")
    record = json.loads(path.read_text())
    assert (record["dataset"], record["eval_dataset"]) == ("digits", "fashion-mnist")
    assert "pretrained on digits, every figure evaluated on fashion-mnist" in \
        record["protocols"]["transfer"]
    assert "the 40 train images" in record["protocols"]["knn"]  # fashion's split, not digits'
    table = runner.invoke(app, ["table"]).output
    row = next(line for line in table.splitlines() if "SimCLR" in line)
    assert "Fashion-MNIST" in row and "pretrained on digits" in row


def test_a_transfer_dataset_the_backbone_cannot_take_is_a_usage_error(plugins):
    from sslbench.bench.evaluations import check_transfer
    from sslbench.bench.resolve import resolve_cell
    from sslbench.core.components import DatasetSplits

    cell = resolve_cell(plugins.catalog, "simclr", "resnet18", "digits",
                        overrides={"eval.dataset": "fashion-mnist"})

    def splits(channels, size):
        s = Split(torch.zeros(4, channels, size, size, dtype=torch.uint8), torch.zeros(4).long())
        return DatasetSplits(s, s, 10, (0.5,), (0.5,))

    check_transfer(cell, splits(3, 8), 32)  # 4x up: served
    with pytest.raises(UsageError, match="its images have 4 channels, and the backbone takes "
                                         r"1 \(grayscale\) or 3 \(RGB\)"):
        check_transfer(cell, splits(4, 28), 28)
    with pytest.raises(UsageError, match="its 8 px images would be enlarged 8x to the "
                                         "backbone's 64 px input"):
        check_transfer(cell, splits(1, 8), 64)
