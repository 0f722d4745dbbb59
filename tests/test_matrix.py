"""``sslbench matrix`` end to end on digits: executors, skipping, resuming, dry runs, tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sslbench.bench import executors
from sslbench.bench import matrix as matrices
from sslbench.cli import app
from sslbench.core.records import load_records
from sslbench.core.store import RecordStore
from tests.test_records import make_record
from tests.test_table import records

runner = CliRunner()

# 2 methods × 1 backbone × 1 dataset × 2 seeds; one pretraining epoch of 2 steps at 8 px, the
# probe fit on 64 labelled images for one epoch: a cell costs about a second of CPU.
AXES = ["--methods", "random,supervised", "--backbones", "resnet18", "--datasets", "digits",
        "--seeds", "0,1"]
TINY = ["--epochs", "1", "--batch-size", "32", "--set", "data.train_subset=64",
        "--set", "eval.train_subset=64", "--set", "eval.linear.epochs=1",
        "--set", "eval.knn_k=5", "--quiet", "--device", "cpu"]
CELLS = ["random-resnet18-digits-s0", "random-resnet18-digits-s1",
         "supervised-resnet18-digits-s0", "supervised-resnet18-digits-s1"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def record_ids(results: Path = Path("results")) -> list[str]:
    records, warnings = load_records(results)
    assert warnings == []
    return sorted(r.run_id.rsplit("-", 1)[0] for r in records if r.status == "completed")


def lines_starting(output: str, word: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(word)]


@pytest.mark.slow
def test_local_matrix_runs_every_cell_then_skips_them_and_tables_seeds():
    first = invoke("matrix", *AXES, *TINY)
    assert first.exit_code == 0, first.output
    assert len(lines_starting(first.output, "done")) == 4
    assert "matrix: 4 done, 0 skipped, 0 failed" in first.output
    assert record_ids() == CELLS
    records, _ = load_records(Path("results"))
    for record in records:  # every cell carries where it came from and its whole recipe
        assert record.provenance.torch and record.provenance.python
        assert record.config["seed"] == record.seed
        assert record.config["eval"]["train_subset"] == 64
    again = invoke("matrix", *AXES, *TINY)
    assert again.exit_code == 0, again.output
    assert len(lines_starting(again.output, "skip")) == 4
    assert "matrix: 0 done, 4 skipped, 0 failed" in again.output

    table = invoke("table", "--format", "csv")
    rows = {line.split(",")[0]: line for line in table.output.strip().splitlines()[1:]}
    assert set(rows) == {"Random init", "Supervised"}
    for method, row in rows.items():
        name = "random" if method == "Random init" else "supervised"
        acc = sorted(r.metrics.linear_acc1 for r in records if r.method == name)
        mean, std = sum(acc) / 2, abs(acc[1] - acc[0]) / 2 ** 0.5  # sample std of two values
        assert f"{mean:.2f} ± {std:.2f}" in row
        assert row.split(",")[7] == "2"  # n
    _show_and_plot(records)


def _show_and_plot(records):
    """``show`` prints a record readably; ``plot`` re-renders a run's curves and the matrix."""
    record = next(r for r in records if r.method == "supervised")
    shown = invoke("show", record.run_id[:-3])  # a unique prefix is enough
    assert shown.exit_code == 0, shown.output
    assert f"linear Acc@1 {record.metrics.linear_acc1:.2f}%" in shown.output
    assert f"torch {record.provenance.torch}" in shown.output
    assert "  pretrain:\n    epochs: 1" in shown.output  # the resolved config, as YAML
    assert invoke("show", "random-resnet18").exit_code == 2  # ambiguous: two seeds
    pretrain_png = Path(record.artifacts["plot_pretrain"])
    pretrain_png.unlink()
    replotted = invoke("plot", record.run_id)
    assert replotted.exit_code == 0, replotted.output
    assert pretrain_png.read_bytes().startswith(b"\x89PNG")
    out = invoke("plot", "--matrix", "compute.png")
    assert out.exit_code == 0, out.output
    assert Path("compute.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_submitit_local_executor_runs_the_same_cells_in_subprocesses(tmp_path):
    # A job array of 2 tasks, 2 cells each: the Slurm code path, run on this machine.
    result = invoke("matrix", *AXES, *TINY, "--executor", "submitit-local", "--cells-per-job", 2)
    assert result.exit_code == 0, result.output
    assert "matrix: 4 done, 0 skipped, 0 failed" in result.output
    assert record_ids() == CELLS
    assert len(list((tmp_path / "runs" / "submitit").glob("*_result.pkl"))) == 2
    again = invoke("matrix", *AXES, *TINY, "--executor", "submitit-local")
    assert "matrix: 0 done, 4 skipped, 0 failed" in again.output


def test_interrupted_matrix_completes_only_the_missing_cells(monkeypatch, tmp_path):
    real, calls = executors.run_cell, []
    axes = ["--methods", "random", "--backbones", "resnet18", "--datasets", "digits",
            "--seeds", "0-2"]  # the floor: evaluation only, the cheapest real cells

    def interrupted_at_third(cell, opts, loggers=None):
        calls.append(cell.config.seed)
        if len(calls) == 3:  # Ctrl-C during the third cell
            raise KeyboardInterrupt
        return real(cell, opts, loggers)

    monkeypatch.setattr(executors, "run_cell", interrupted_at_third)
    stopped = invoke("matrix", *axes, *TINY)
    assert stopped.exit_code == 130
    assert "matrix: 2 done, 0 skipped, 0 failed, 1 not run (interrupted)" in stopped.output
    assert record_ids() == ["random-resnet18-digits-s0", "random-resnet18-digits-s1"]
    assert not [p for p in (tmp_path / "results").iterdir() if p.suffix != ".json"]

    monkeypatch.setattr(executors, "run_cell", real)
    resumed = invoke("matrix", *axes, *TINY)
    assert resumed.exit_code == 0, resumed.output
    assert [line.split()[1] for line in lines_starting(resumed.output, "done")] == [
        record_ids_full()[-1]]
    assert "matrix: 1 done, 2 skipped, 0 failed" in resumed.output
    assert calls == [0, 1, 2]  # the interrupted run did reach the third cell
    assert record_ids() == [f"random-resnet18-digits-s{seed}" for seed in range(3)]


def record_ids_full() -> list[str]:
    return sorted(p.stem for p in Path("results").glob("*.json"))


def test_failed_cell_is_recorded_and_the_matrix_goes_on(monkeypatch):
    def broken(cell, opts, loggers=None):
        raise RuntimeError("CUDA error: device-side assert\ntriggered")

    monkeypatch.setattr(executors, "run_cell", broken)
    result = invoke("matrix", "--methods", "random", "--backbones", "resnet18", "--datasets",
                    "digits", "--seeds", "0,1", *TINY)
    assert result.exit_code == 1
    assert "matrix: 0 done, 0 skipped, 2 failed" in result.output
    records, _ = load_records(Path("results"))
    assert [r.status for r in records] == ["failed", "failed"]
    assert records[0].reason == "RuntimeError: CUDA error: device-side assert triggered"
    assert records[0].provenance.torch  # a failure says where it happened too


def test_dry_run_lists_cells_and_which_would_be_skipped(plugins):
    spec = matrices.MatrixSpec(methods=["random", "supervised"], backbones=["resnet18"],
                               datasets=["digits"], seeds=[0, 1])
    cells = matrices.expand(spec, plugins.catalog, overrides={"pretrain.epochs": 1})
    record = _completed_record(cells[1])  # pretend the second cell finished earlier
    Path("results").mkdir()
    Path("results", f"{cells[1].run_id}.json").write_text(json.dumps(record))
    result = invoke("matrix", *AXES, "--epochs", "1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert lines_starting(result.output, "skip") == [
        f"skip  {cells[1].run_id}  (0 epochs, batch 128)"]
    assert [line.split()[1] for line in lines_starting(result.output, "run")] == [
        cells[0].run_id, cells[2].run_id, cells[3].run_id]
    assert "4 cells: 3 to run, 1 skipped" in result.output
    rerun = invoke("matrix", *AXES, "--epochs", "1", "--dry-run", "--rerun")
    assert "4 cells: 4 to run, 0 skipped" in rerun.output
    assert not Path("runs").exists()  # a dry run trains nothing


def _completed_record(cell) -> dict:
    cfg = cell.config
    record = make_record(cell.run_id, method=cfg.method.name, seed=cfg.seed,
                         config=cfg.model_dump(mode="json"), config_hash=cell.config_hash)
    return json.loads(record.model_dump_json())


def test_matrix_file_with_wildcard_and_per_cell_settings(plugins, tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('methods = "*"\nbackbones = ["resnet18"]\ndatasets = ["digits"]\n'
                    'seeds = [3]\nepochs = 2\n[config]\npretrain.batch_size = 64\n'
                    '[[cells]]\nmethod = "simclr"\nconfig.method.temperature = 0.2\n'
                    'config.pretrain.batch_size = 32\n')
    cells = matrices.expand(matrices.load_matrix_file(path), plugins.catalog,
                            sets=["pretrain.optimizer.lr=0.3"])
    by_method = {cell.config.method.name: cell.config for cell in cells}
    # "*": every method that can use a ResNet (MAE needs a ViT)
    assert sorted(by_method) == sorted(e.name for e in plugins.catalog.entries("methods")
                                       if e.name != "mae")
    simclr, simsiam = by_method["simclr"], by_method["simsiam"]
    assert (simclr.pretrain.batch_size, simsiam.pretrain.batch_size) == (32, 64)
    assert simclr.method.model_extra["temperature"] == 0.2
    assert simsiam.pretrain.epochs == 2 and by_method["random"].pretrain.epochs == 0
    assert {cfg.seed for cfg in by_method.values()} == {3}
    assert {cfg.pretrain.optimizer.lr for cfg in by_method.values()} == {0.3}  # CLI wins


@pytest.mark.parametrize("args, message", [
    (["--methods", "simclr", "--backbones", "resnet18"], "give a matrix file, or --methods"),
    ([*AXES[:4], "--datasets", "digitz"], "digits"),
    ([*AXES[:6], "--seeds", "0,x"], "--seeds expects integers"),
    (["missing.toml"], "cannot read matrix file missing.toml"),
])
def test_bad_matrix_input_is_one_line(args, message):
    result = invoke("matrix", *args, "--dry-run")
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_readme_check_fails_when_stale_and_passes_after_readme():
    readme = Path("README.md")
    readme.write_text("# Results\n\nno table yet\n")
    for record in records()[:2]:
        RecordStore(Path("results")).save(record)
    stale = invoke("table", "--check")
    assert stale.exit_code == 1
    assert "README.md is stale" in stale.output
    assert invoke("table", "--readme", readme).exit_code == 0
    fresh = invoke("table", "--check", "--readme", readme)
    assert fresh.exit_code == 0, fresh.output
    assert "up to date" in fresh.output
    RecordStore(Path("results")).save(records()[2])  # a new run makes the block stale again
    assert invoke("table", "--check").exit_code == 1


def test_the_documented_example_matrix_file_expands_as_its_comments_say(plugins):
    spec = matrices.load_matrix_file(Path(__file__).parents[1] / "docs/examples/matrix.toml")
    cells = matrices.expand(spec, plugins.catalog)
    assert len(cells) == 6 and all(c.config.pretrain.epochs in (10, 0) for c in cells)
    by = {(c.config.method.name, c.config.seed): c.config for c in cells}
    assert {c.config.pretrain.batch_size for c in cells} == {128}
    assert by["simclr", 0].method.model_extra["temperature"] == 0.2  # [[cells]] layered on
    assert by["byol", 1].pretrain.optimizer.lr == 0.05  # only the matching seed
    assert by["byol", 0].pretrain.optimizer.lr != 0.05
