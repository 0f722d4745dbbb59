"""The registry at scale: read 10,000 records and render the comparison table.

The issue's target is under 5 s on the project's CPU machine; pytest-benchmark reports the
figure (``nox -s bench``, or ``pytest benchmarks/test_registry.py``) rather than a timed test
failing on a loaded machine.
"""

from __future__ import annotations

import random

import pytest

from sslbench.bench import table as tables
from sslbench.core.records import Cost, Metrics, Provenance, RunRecord, load_records

N_RECORDS = 10_000
PROVENANCE = Provenance(sslbench="0.1.0", torch="2.4.0", torchvision="0.19.0", python="3.11.9",
                        platform="Linux-6.1-x86_64", device_name="cpu", git_commit="0" * 40,
                        git_dirty=False)


def synthetic_record(i: int, rng: random.Random) -> RunRecord:
    """One of 50 methods × 4 backbones × 5 datasets × 10 seeds, with a realistic config."""
    method, backbone = f"method{i % 50}", f"backbone{i // 50 % 4}"
    dataset, seed = f"dataset{i // 200 % 5}", i // 1000
    config = {"method": {"name": method}, "backbone": {"name": backbone},
              "data": {"name": dataset, "image_size": 32, "train_subset": None, "hflip": True},
              "pretrain": {"epochs": 100, "batch_size": 256,
                           "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
              "eval": {"knn_k": 200, "linear": {"epochs": 100}}, "seed": seed}
    return RunRecord(
        run_id=f"{method}-{backbone}-{dataset}-s{seed}-{i:08x}", status="completed",
        method=method, backbone=backbone, dataset=dataset, seed=seed, epochs=100,
        config=config, config_hash=f"{i % 1000:012x}",
        metrics=Metrics(linear_acc1=rng.uniform(50, 95), linear_acc5=rng.uniform(90, 100),
                        knn_acc1=rng.uniform(40, 90), final_loss=rng.uniform(0, 5)),
        cost=Cost(pretrain_seconds=rng.uniform(100, 5000), eval_seconds=30.0,
                  images_per_second=rng.uniform(100, 3000), peak_memory_mb=900.0),
        provenance=PROVENANCE, artifacts={"run_dir": f"runs/{i}"})


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    rng = random.Random(0)
    for i in range(N_RECORDS):  # plain writes: the fixture need not fsync 10,000 times
        record = synthetic_record(i, rng)
        (folder / f"{record.run_id}.json").write_text(record.model_dump_json(indent=2) + "\n")
    return folder


def read_and_render(folder) -> str:
    records, _ = load_records(folder)
    return tables.render(tables.summarise(tables.records_frame(records)))


def test_read_10k_records_and_render_table(benchmark, registry):
    text = benchmark.pedantic(read_and_render, args=(registry,), rounds=3, iterations=1)
    # 50 methods × 4 backbones × 5 datasets, 10 seeds each: 1000 rows plus the header lines.
    assert len(text.strip().splitlines()) == 1000 + 2
    assert "± " in text
