"""Run records: validated round trip, atomic writes, unreadable files skipped with a warning."""

import json
from unittest import mock

import pytest

from sslbench.core.records import (
    Metrics,
    Provenance,
    RunRecord,
    load_records,
    read_record,
    recipe_hash,
)
from sslbench.core.store import RecordStore

PROV = Provenance(sslbench="0.1.0", torch="2", torchvision="0", python="3.11", platform="x")


def make_record(run_id="r1", **kw):
    fields = dict(run_id=run_id, status="completed", method="simclr", backbone="resnet18",
                  dataset="digits", seed=0, epochs=1, config={"seed": 0},
                  metrics=Metrics(linear_acc1=90.0, linear_acc5=99.0, knn_acc1=88.0),
                  provenance=PROV)
    fields.update(kw)
    fields.setdefault("config_hash", recipe_hash(fields["config"]))  # as a real run's
    return RunRecord(**fields)


def test_round_trip(tmp_path):
    record = make_record()
    path = RecordStore(tmp_path).save(record).path
    assert path.name == "r1.json"
    assert read_record(path) == record


def test_failed_write_keeps_previous_record(tmp_path):
    path = RecordStore(tmp_path).save(make_record()).path
    before = path.read_text()
    with mock.patch("os.fsync", side_effect=OSError(28, "No space left on device")):
        with pytest.raises(OSError):
            RecordStore(tmp_path).save(make_record(metrics=Metrics(linear_acc1=1.0)))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r1.json"]  # no temp file left behind


def test_unreadable_records_are_skipped_with_warning(tmp_path):
    RecordStore(tmp_path).save(make_record())
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "alien.json").write_text(json.dumps({"hello": 1}))
    records, warnings = load_records(tmp_path)
    assert [r.run_id for r in records] == ["r1"]
    assert len(warnings) == 2
    assert any("broken.json" in w for w in warnings)
    assert any("alien.json" in w for w in warnings)


def test_unknown_fields_are_rejected():
    with pytest.raises(ValueError):
        RunRecord.model_validate({**make_record().model_dump(), "surprise": 1})


def test_recipe_hash_of_a_stored_config_is_run_config_hash(plugins):
    from sslbench.bench.resolve import resolve_config
    from sslbench.core.config import RunConfig

    cfg = resolve_config(plugins.catalog, "swav", "resnet18", "cifar10", sets=["seed=3"])
    stored = json.loads(cfg.model_dump_json())  # as a record holds it, read back from JSON
    assert recipe_hash(stored) == cfg.hash() == RunConfig.model_validate(stored).hash()


def test_the_committed_registry_passes_the_read_checks():
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "results"
    records, warnings = load_records(results)
    assert warnings == []
    assert len(records) == len(list(results.glob("*.json"))) > 0


def test_git_dirty_is_about_the_code_not_the_results_it_wrote(tmp_path):
    import subprocess

    from sslbench.bench.provenance import git_state

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "pkg").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "pkg/code.py").write_text("x = 1\n")
    (tmp_path / "results/r.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    (tmp_path / "results/r.json").write_text('{"run": 2}\n')  # a run rewrote its record
    assert git_state(tmp_path / "pkg")[1] is False
    (tmp_path / "pkg/code.py").write_text("x = 2\n")  # the code itself changed
    commit, dirty = git_state(tmp_path / "pkg")
    assert dirty is True and len(commit) == 40
