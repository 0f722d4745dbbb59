"""`sslbench export` and `load_backbone`: the run's backbone, the same features, outside sslbench.

The round trip: a tiny run, its export, the backbone loaded back (through sslbench's catalog
and as the plain torchvision model) giving exactly the features of the run's own backbone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import torchvision
from typer.testing import CliRunner

from sslbench.bench import torchvision_export
from sslbench.bench.export import load_backbone
from sslbench.bench.resolve import cell_from_config
from sslbench.cli import app
from sslbench.core.config import RunConfig
from sslbench.core.plugins import load_plugins
from sslbench.core.records import RunRecord, read_record
from sslbench.core.store import write_record
from sslbench.engine.checkpoint import load_checkpoint
from sslbench.errors import SSLBenchError, UsageError

runner = CliRunner()
SMALL = ["--epochs", "1", "--batch-size", "64", "--set", "data.image_size=8",
         "--set", "data.train_subset=128", "--set", "eval.train_subset=256",
         "--set", "eval.linear.epochs=1", "--quiet", "--device", "cpu",
         "--set", "backbone.width=1"]  # full width: the plain torchvision model takes it


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with a simclr · resnet18 · digits run and a random floor run (and records)."""
    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("SSLBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
        patch.setattr("sslbench.bench.plots.plot_run", lambda run_dir: {})  # not under test
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for method in ("simclr", "random"):
                result = invoke("run", method, "resnet18", "digits", *SMALL)
                assert result.exit_code == 0, result.output
        finally:
            torch.set_num_threads(threads)
    return root


@pytest.fixture
def here(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    return workdir


def record_of(root: Path, method: str) -> RunRecord:
    [path] = (root / "results").glob(f"{method}-*.json")
    return read_record(path)


def run_backbone(record: RunRecord) -> torch.nn.Module:
    """The backbone exactly as the run left it: rebuilt from its config, checkpoint loaded."""
    plugins = load_plugins(autoload=False)
    cfg = RunConfig.model_validate(record.config)
    method = cell_from_config(plugins.catalog, cfg).build_method(cfg.data.image_size, 10)
    method.load_state_dict(load_checkpoint(Path(record.artifacts["checkpoint"]))["model"])
    return method.backbone.eval()


def test_export_round_trip_gives_identical_features(here):
    record = record_of(here, "simclr")
    result = invoke("export", record.run_id[:12], "--out", "exported")
    assert result.exit_code == 0, result.output
    assert one_line(result) == (f"exported {record.run_id} to exported/ (backbone.safetensors, "
                                "model.json, README.md)")
    meta = json.loads((here / "exported" / "model.json").read_text())
    assert meta["run_id"] == record.run_id and meta["method"] == "simclr"
    assert meta["backbone"] == {"name": "resnet18", "options": {"width": 1},
                                "feature_dim": 512, "parameters": 11168832}
    assert meta["input"]["image_size"] == 8 and meta["dataset"] == "digits"
    assert meta["metrics"] == record.metrics.model_dump(mode="json")
    assert meta["config_hash"] == record.config_hash and meta["config"] == record.config
    assert meta["provenance"]["torch"] == torch.__version__
    weights = (here / "exported" / "backbone.safetensors").read_bytes()
    assert meta["weights"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert meta["torchvision"]["model"] == "resnet18"
    assert meta["torchvision"]["small_image_variant"] is True

    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = run_backbone(record)(x)
        ours = load_backbone(here / "exported")
        plain = load_backbone(here / "exported" / "model.json", torchvision=True)
        assert not ours.training and not plain.training
        assert torch.equal(ours(x), expected)
        assert type(plain) is torchvision.models.ResNet and isinstance(plain.fc, torch.nn.Identity)
        assert torch.equal(plain(x), expected)


def test_model_card_states_method_metrics_stem_and_plain_torchvision_loading(here):
    record = record_of(here, "simclr")
    assert invoke("export", record.run_id).exit_code == 0  # default folder: exports/<run-id>
    card = (here / "exports" / record.run_id / "README.md").read_text()
    assert card.startswith("# simclr · resnet18 · digits: pretrained backbone\n")
    assert f"Acc@1 {record.metrics.linear_acc1:.2f}%" in card
    assert f"kNN | Acc@1 {record.metrics.knn_acc1:.2f}%" in card
    assert f"config hash `{record.config_hash}`" in card
    assert "Stem: the small-image variant (3x3 stride-1 first convolution, no max-pool)." in card
    assert ("model.conv1 = nn.Conv2d(in_channels=3, out_channels=64, kernel_size=3, stride=1, "
            "padding=1, bias=False)\nmodel.maxpool = nn.Identity()\nmodel.fc = nn.Identity()\n"
            'model.load_state_dict(load_file("backbone.safetensors"))') in card
    assert record.provenance.platform in card


def test_card_snippet_runs_as_written(here):
    """The model card's torchvision code, run on its own, loads the weights (strictly)."""
    record = record_of(here, "simclr")
    folder = here / "snippet"
    assert invoke("export", record.run_id, "--out", folder).exit_code == 0
    card = (folder / "README.md").read_text()
    code = card.split("With torchvision alone")[1].split("```python\n")[1].split("```")[0]
    scope: dict = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own generated card
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(scope["model"](x), load_backbone(folder)(x))


def test_exporting_the_random_floor_is_refused(here):
    record = record_of(here, "random")
    result = invoke("export", record.run_id)
    assert result.exit_code == 2
    assert one_line(result) == (
        f"error: run {record.run_id} is the 'random' floor: its backbone was never trained "
        "(its weights are its seed's initialisation); nothing to export")
    assert not (here / "exports" / record.run_id).exists()


def test_exporting_a_failed_run_is_refused(here, tmp_path):
    record = record_of(here, "simclr")
    failed = record.model_copy(update={"status": "failed", "reason": "non-finite loss (nan)"})
    write_record(failed, tmp_path)
    result = invoke("export", record.run_id, "--results-dir", tmp_path)
    assert result.exit_code == 2
    assert one_line(result) == (f"error: run {record.run_id} failed (non-finite loss (nan)); "
                                "there is no trained backbone to export")


def test_exporting_a_run_without_its_checkpoint(here, tmp_path):
    record = record_of(here, "simclr")
    gone = tmp_path / "gone.pt"
    moved = record.model_copy(update={"artifacts": {**record.artifacts,
                                                    "checkpoint": str(gone)}})
    write_record(moved, tmp_path)
    result = invoke("export", record.run_id, "--results-dir", tmp_path)
    assert result.exit_code == 1
    assert one_line(result) == (f"error: run {record.run_id} has no checkpoint at {gone}: the "
                                "run folder was moved or removed; nothing to export")
    unknown = invoke("export", "nothing-like-it")
    assert unknown.exit_code == 2 and one_line(unknown).startswith("error: no record ")


def test_changed_weights_and_foreign_folders_are_refused(here, tmp_path):
    record = record_of(here, "simclr")
    folder = tmp_path / "copy"
    assert invoke("export", record.run_id, "--out", folder).exit_code == 0
    path = folder / "backbone.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SSLBenchError, match="does not match model.json"):
        load_backbone(folder)
    shutil.rmtree(folder)
    folder.mkdir()
    with pytest.raises(SSLBenchError, match="is not an sslbench export: it has no model.json"):
        load_backbone(folder)


# --- the torchvision families, without a run -------------------------------------------------

@pytest.mark.parametrize("name", ["resnet18", "densenet121", "efficientnet_b0", "vgg11_bn",
                                  "alexnet"])
@pytest.mark.parametrize("size", [16, 96])
def test_every_torchvision_family_loads_into_the_plain_model(name, size):
    torch.manual_seed(0)
    backbone = load_plugins(autoload=False).catalog.get("backbones", name)(size)
    for module in backbone.modules():  # trained-looking statistics, not the init's 0 and 1
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    backbone.eval()
    spec = torchvision_export.describe(name, {}, backbone, builtin=True)
    assert spec["small_image_variant"] is (size <= 64)
    plain = torchvision_export.build(spec, backbone.state_dict())
    assert type(plain).__module__.startswith("torchvision.models.")
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(plain(x), backbone(x))


def test_no_torchvision_equivalent_is_said_so():
    backbone = load_plugins(autoload=False).catalog.get("backbones", "resnet18")(16, width=0.5)
    spec = torchvision_export.describe("resnet18", {"width": 0.5}, backbone, builtin=True)
    assert spec == {"model": None, "reason": "torchvision has no ResNet of width 0.5"}
    other = torchvision_export.describe("resnet18", {}, backbone, builtin=False)
    assert other["model"] is None and "built-in torchvision backbones" in other["reason"]


def test_load_backbone_torchvision_refused_without_an_equivalent(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({
        "format": "sslbench-backbone", "format_version": 1,
        "weights": {"file": "backbone.safetensors"},
        "torchvision": {"model": None, "reason": "torchvision has no ResNet of width 0.5"}}))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, tmp_path / "backbone.safetensors")
    with pytest.raises(UsageError, match="no torchvision equivalent: torchvision has no ResNet "
                                         "of width 0.5; use load_backbone"):
        load_backbone(tmp_path, torchvision=True)


def test_export_from_another_folder_finds_the_checkpoint_beside_the_registry(here, tmp_path,
                                                                              monkeypatch):
    record = record_of(here, "simclr")
    assert not Path(record.artifacts["checkpoint"]).is_absolute()  # as the CLI records it
    monkeypatch.chdir(tmp_path)
    result = invoke("export", record.run_id, "--results-dir", here / "results", "--out", "x")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / "backbone.safetensors").is_file()
