"""Online monitoring: the probe never changes pretraining, the held-out slice is held out, and
the curves and final values reach metrics.csv and the record."""

import csv
import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from sslbench.cli import app
from sslbench.core.components import Split
from sslbench.core.config import OnlineConfig
from sslbench.engine.evaluate import FrozenEncoder
from sslbench.engine.monitor import MetricsLog
from sslbench.engine.online import OnlineMonitor

runner = CliRunner()


class Mean(nn.Module):
    feature_dim = 3

    def forward(self, x):
        return x.mean(dim=(2, 3))


def monitor(n=100, **cfg):
    labels = torch.arange(n) % 2
    images = (labels.view(-1, 1, 1, 1) * 200 + torch.zeros(n, 1, 4, 4)).to(torch.uint8)
    encoder = FrozenEncoder(Mean(), 4, (0.5,), (0.25,), torch.device("cpu"))
    return OnlineMonitor.build(OnlineConfig(**cfg), encoder, Split(images, labels), 2), labels


def test_the_held_out_slice_is_disjoint_fixed_and_never_trained_on():
    m, labels = monitor(bank=30, queries=20)
    again, _ = monitor(bank=30, queries=20)
    assert int(m.held_out.sum()) == 20 and len(m.bank) == 30 and len(m.queries) == 20
    assert torch.equal(m.held_out, again.held_out)  # the same slice for every run and method
    queries = m.held_out.nonzero().flatten()
    m.start()
    m._captured = torch.randn(len(queries), 3)
    m.on_step(queries, labels[queries])  # a batch of held-out images only: nothing learnt
    assert m._steps == 0 and not m.probe[1].weight.any()
    train = (~m.held_out).nonzero().flatten()[:16]
    m._captured = torch.randn(16, 3, requires_grad=True)
    m.on_step(train, labels[train])
    assert m._steps == 1 and m.probe[1].weight.any()
    assert m._captured is None  # forgotten after the step


def test_the_epoch_end_scores_kNN_and_probe_on_the_queries(tmp_path):
    m, labels = monitor(bank=40, queries=20, knn_every=2, knn_k=5)
    log = MetricsLog(tmp_path / "metrics.csv")
    m.start()
    m.on_epoch_end(1, 3, 10, log)  # not due: no kNN
    assert m.last.knn_acc1 is None
    m.on_epoch_end(2, 3, 20, log)
    assert m.last.knn_acc1 == 100.0  # dark vs bright: the nearest neighbours are of its class
    m.stop()
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["phase"], r["epoch"], r["test_acc1"]) for r in rows] == [
        ("online_knn", "2", "100")]


@pytest.mark.slow
def test_online_monitoring_changes_nothing_of_pretraining(tiny, tmp_path):
    small = ["--epochs", "2", "--set", "data.train_subset=256", "--set", "eval.train_subset=256"]
    on = runner.invoke(app, ["run", "simclr", "resnet18", "digits", *tiny, *small,
                             "--set", "eval.online.knn_every=1", "--set", "eval.online.bank=100",
                             "--set", "eval.online.queries=50"])
    off = runner.invoke(app, ["run", "simclr", "resnet18", "digits", *tiny, *small,
                              "--set", "eval.online.linear=false",
                              "--set", "eval.online.knn_every=0"])
    assert on.exit_code == 0 and off.exit_code == 0, on.output + off.output
    by = {}
    for path in (tmp_path / "results").glob("*.json"):
        record = json.loads(path.read_text())
        by["on" if record["config"]["eval"]["online"]["knn_every"] else "off"] = record
    a, b = by["on"]["metrics"], by["off"]["metrics"]
    for name in ("final_loss", "linear_acc1", "knn_acc1", "rankme"):
        assert a[name] == b[name], name  # detached features, zero init: the same run
    assert 0 <= a["online_knn_acc1"] <= 100 and 0 <= a["online_linear_acc1"] <= 100
    assert b["online_knn_acc1"] is None and "online" not in by["off"]["protocols"]
    assert "never the test split" in by["on"]["protocols"]["online"]
    with open(tmp_path / "runs" / by["on"]["run_id"] / "metrics.csv") as f:
        phases = [(r["phase"], r["epoch"]) for r in csv.DictReader(f) if "online" in r["phase"]]
    assert phases == [("online_knn", "0"), ("online_linear", "1"), ("online_knn", "1"),
                      ("online_linear", "2"), ("online_knn", "2")]


def test_plot_online_draws_the_curves_of_several_runs(tmp_path):
    for name, accs in (("simclr-r-d-s0-aa", [20, 40, 60]), ("byol-r-d-s0-bb", [20, 25, 30])):
        run = tmp_path / "runs" / name
        log = MetricsLog(run / "metrics.csv")
        for epoch, acc in zip([0, 5, 10], accs, strict=True):
            log.write(phase="online_knn", epoch=epoch, step=epoch * 10, test_acc1=acc)
    result = runner.invoke(app, ["plot", "--online", str(tmp_path / "online.png"), "--runs",
                                 "simclr-r-d-s0-aa,byol-r-d-s0-bb"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "online.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "runs" / "x-r-d-s0-cc"
    MetricsLog(empty / "metrics.csv").write(phase="pretrain", epoch=1, step=1, loss=1.0)
    bad = runner.invoke(app, ["plot", "--online", "o.png", "--runs", "x-r-d-s0-cc"])
    assert bad.exit_code == 2 and "has no online kNN rows" in bad.output
