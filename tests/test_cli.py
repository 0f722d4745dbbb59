"""The CLI end to end on digits with a tiny recipe, and its one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from sslbench.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_run_writes_record_run_folder_and_table(tiny, tmp_path):
    result = invoke("run", "simclr", "resnet18", "digits", *tiny)
    assert result.exit_code == 0, result.output
    assert "linear Acc@1" in result.output and "kNN Acc@1" in result.output
    [path] = (tmp_path / "results").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "completed"
    assert record["config"]["pretrain"]["epochs"] == 1
    assert 10.0 < record["metrics"]["linear_acc1"] <= 100.0
    assert record["metrics"]["final_loss"] > 0
    assert record["cost"]["images_per_second"] > 0
    assert record["provenance"]["torch"]
    run_dir = tmp_path / "runs" / record["run_id"]
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "pretrain.png",
                 "linear_train.png", "linear_eval.png"):
        assert (run_dir / name).is_file(), name

    table = invoke("table")
    assert table.exit_code == 0
    assert "| SimCLR " in table.stdout and "ResNet-18" in table.stdout


def test_random_floor_skips_pretraining(tiny, tmp_path):
    result = invoke("run", "random", "resnet18", "digits", *tiny)
    assert result.exit_code == 0, result.output
    [path] = (tmp_path / "results").glob("*.json")
    record = json.loads(path.read_text())
    assert record["epochs"] == 0 and record["metrics"]["final_loss"] is None


@pytest.mark.slow
def test_readme_table_is_rewritten_between_markers(tiny, tmp_path):
    assert invoke("run", "supervised", "resnet18", "digits", *tiny).exit_code == 0
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- sslbench:results:start -->\nold\n"
                      "<!-- sslbench:results:end -->\noutro\n")
    result = invoke("table", "--readme", readme)
    assert result.exit_code == 0, result.output
    text = readme.read_text()
    assert "old" not in text and "| Supervised " in text and text.endswith("outro\n")


def test_dry_run_prints_the_resolved_paper_recipe():
    result = invoke("run", "simsiam", "resnet18", "cifar10", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "epochs: 800" in result.stdout and "lr: 0.03" in result.stdout


@pytest.mark.parametrize("args, code, message", [
    (["run", "simsaim", "resnet18", "digits"], 2, "did you mean 'simsiam'"),
    (["run", "simclr", "resnet81", "digits"], 2, "did you mean 'resnet18'"),
    (["run", "simclr", "resnet18", "digts"], 2, "did you mean 'digits'"),
    (["run", "simclr", "resnet18", "digits", "--epochs", "-1"], 2, "--epochs"),
    (["run", "simclr", "resnet18", "digits", "--batch-size", "abc"], 2, "--batch-size"),
    (["run", "simclr", "resnet18", "digits", "--lr", "0"], 2, "pretrain.optimizer.lr"),
    (["run", "simclr", "resnet18", "digits", "--set", "pretrain.epoch=3"], 2,
     "unknown setting 'pretrain.epoch'"),
    (["run", "simclr", "resnet18", "digits", "--set", "method.temprature=0.1"], 2,
     "unknown setting 'method.temprature'"),
    (["run", "simclr", "resnet18", "digits", "--set", "noequals"], 2, "section.key=value"),
    (["run", "simclr", "resnet18", "digits", "--set", "pretrain.optimizer.name=adamx"], 2,
     "unknown optimizer 'adamx'"),
    (["run", "simclr", "resnet18", "digits", "--config", "missing.toml"], 2,
     "cannot read config file missing.toml"),
    (["run", "simclr", "resnet18", "digits", "--device", "tpu"], 2, "--device"),
    (["run", "simsiam", "resnet18", "cifar10", "--no-download", "--epochs", "1"], 1,
     "CIFAR-10 not found: put data_batch_1"),
    (["list", "gadgets"], 2, "gadgets"),
    # bad optimizer / schedule options are usage errors at resolve time, even in --dry-run
    (["run", "simclr", "resnet18", "digits", "--dry-run", "--set", "pretrain.optimizer.name=lars",
      "--set", "pretrain.optimizer.options.bogus=1"], 2,
     "optimizer 'lars': unknown option 'bogus' (allowed: clip_lr, eta, exclude_bias_and_norm)"),
    (["run", "simclr", "resnet18", "digits", "--dry-run", "--set", "pretrain.schedule.name=step",
      "--set", "pretrain.schedule.options.gama=0.1"], 2, "schedule 'step': unknown option 'gama'"),
    # a backbone option's value is checked before any data loads (built once on the meta device)
    (["run", "simclr", "resnet18", "digits", "--dry-run", "--set", "backbone.width=-1"], 2,
     "backbone 'resnet18': width must be a number in (0, 4], got -1"),
    (["run", "simclr", "resnet18", "digits", "--set", "backbone.width=wide"], 2,
     "width must be a number in (0, 4], got 'wide'"),
    (["run", "simclr", "resnet18", "digits", "--set", "backbone.depth=3"], 2,
     "backbone 'resnet18': got an unexpected keyword argument 'depth'"),
])
def test_bad_input_is_one_line_and_exit_code(args, code, message):
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_table_refuses_a_results_dir_that_is_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("not a registry")
    result = invoke("table", "--results-dir", tmp_path / "notes.txt")
    assert result.exit_code == 2
    assert "notes.txt is a file, not a results folder" in result.output


def test_config_file_in_wrong_format_is_a_usage_error(tmp_path):
    (tmp_path / "bad.toml").write_text("pretrain = [unclosed")
    result = invoke("run", "simclr", "resnet18", "digits", "--config", tmp_path / "bad.toml")
    assert result.exit_code == 2 and "is not valid TOML" in result.output


def test_list_shows_every_kind():
    result = invoke("list")
    assert result.exit_code == 0
    for name in ("simclr", "resnet18", "sgd", "cosine", "fashion-mnist"):
        assert name in result.stdout
