"""Third-party plugins through the ``sslbench`` entry-point group: listed with distribution and
version, broken ones reported in one line and skipped, ``--strict``, provenance in records.

Entry points are faked here (fast, no install); the real ``pip install`` path is tested by
plugins/sslbench-dcl/tests (an install into a throwaway folder, then a fresh process)."""

import types

import pytest
from torch import nn
from typer.testing import CliRunner

from sslbench import hookimpl
from sslbench.bench import provenance
from sslbench.cli import app
from sslbench.core import plugins as plugin_core

runner = CliRunner()


class FakeEntryPoint:
    """What importlib.metadata yields for an installed plugin; ``load`` may raise."""

    def __init__(self, name, target, dist=None, version=None):
        self.name, self._target = name, target
        self.dist = types.SimpleNamespace(name=dist, version=version) if dist else None

    def load(self):
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


class Toy(nn.Module):
    """Toy: a linear head pulling two views together."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone, self.head = backbone, nn.Linear(backbone.feature_dim, 4)

    def forward(self, views, labels=None):
        z1, z2 = (self.head(self.backbone(v)).float() for v in views)
        return (z1 - z2).square().mean(), {}


def module(name, **hooks):
    mod = types.ModuleType(name)
    for hook, body in hooks.items():
        setattr(mod, f"sslbench_register_{hook}", hookimpl(body))
    return mod


GOOD = module("sslbench_toy", methods=lambda register: register("toy", Toy))
DUPLICATE = module("sslbench_dup", methods=lambda register: register("simclr", Toy))
BROKEN = ModuleNotFoundError("No module named 'missing_dependency'")


@pytest.fixture
def installed(monkeypatch):
    """The entry points sslbench will find (autoload on, as for a user)."""
    eps = []
    monkeypatch.setattr(plugin_core.importlib.metadata, "entry_points",
                        lambda group=None, **_: list(eps) if group == "sslbench" else [])
    monkeypatch.delenv("SSLBENCH_DISABLE_PLUGIN_AUTOLOAD")
    return eps


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_broken_plugin_leaves_list_working_with_a_one_line_warning(installed):
    installed += [FakeEntryPoint("broken", BROKEN, "sslbench-broken", "0.3"),
                  FakeEntryPoint("toy", GOOD, "sslbench-toy", "1.2.3")]
    result = invoke("list", "methods")
    assert result.exit_code == 0
    assert "simclr" in result.stdout and "toy" in result.stdout and "sslbench-toy" in result.stdout
    assert result.stderr.splitlines() == [
        "warning: plugin 'broken' (from sslbench-broken 0.3) failed: ModuleNotFoundError: "
        "No module named 'missing_dependency'"]


def test_plugins_lists_distribution_version_registrations_and_failures(installed):
    installed += [FakeEntryPoint("toy", GOOD, "sslbench-toy", "1.2.3"),
                  FakeEntryPoint("dup", DUPLICATE, "sslbench-dup", "0.1"),
                  FakeEntryPoint("broken", BROKEN, "sslbench-broken", "0.3")]
    result = invoke("plugins")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "toy  [sslbench-toy 1.2.3]  methods: toy"
    assert "sslbench.builtin.methods.simclr  [built-in]  methods: simclr" in lines
    assert sorted(line for line in lines if line.startswith("FAILED")) == [
        "FAILED plugin 'broken' (from sslbench-broken 0.3) failed: ModuleNotFoundError: No "
        "module named 'missing_dependency'",
        "FAILED plugin 'dup' (from sslbench-dup 0.1) failed: method 'simclr' is registered by "
        "both 'sslbench.builtin.methods.simclr' and 'dup'"]
    strict = invoke("plugins", "--strict")
    assert strict.exit_code == 2
    assert strict.stderr.strip() == "error: 2 plugins failed to load (--strict)"


def test_duplicate_keeps_the_builtin(installed):
    installed.append(FakeEntryPoint("dup", DUPLICATE, "sslbench-dup", "0.1"))
    loaded = plugin_core.load_plugins()
    assert loaded.catalog.get("methods", "simclr").__name__ == "SimCLR"
    assert loaded.distributions() == {}


def test_autoload_switch_loads_only_the_builtins(installed, monkeypatch):
    installed.append(FakeEntryPoint("broken", BROKEN, "sslbench-broken", "0.3"))
    monkeypatch.setenv("SSLBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = invoke("plugins", "--strict")
    assert result.exit_code == 0 and "broken" not in result.output
    assert all("[built-in]" in line for line in result.stdout.splitlines())


def test_record_provenance_names_the_plugin_distribution(installed):
    """What run_cell stores in ``record.provenance`` (the end-to-end run with a real install is
    in plugins/sslbench-dcl/tests)."""
    installed += [FakeEntryPoint("toy", GOOD, "sslbench-toy", "1.2.3"),
                  FakeEntryPoint("broken", BROKEN, "sslbench-broken", "0.3")]
    loaded = plugin_core.load_plugins()
    assert loaded.distributions() == {"sslbench-toy": "1.2.3"}
    assert provenance.collect(None, loaded.distributions()).plugins == {"sslbench-toy": "1.2.3"}


def _unmarked(register):
    register("forgotten", Toy)


def test_a_hook_without_hookimpl_warns_in_plugins_and_fails_under_strict(installed):
    forgetful = types.ModuleType("sslbench_forgetful")
    forgetful.sslbench_register_methods = _unmarked  # no @hookimpl: pluggy ignores it
    installed += [FakeEntryPoint("forgetful", forgetful, "sslbench-forgetful", "0.1")]
    shown = invoke("plugins")
    assert shown.exit_code == 0
    assert ("warning: plugin 'forgetful': sslbench_register_methods() is not decorated with "
            "@sslbench.hookimpl, so it was never called") in shown.output
    strict = invoke("plugins", "--strict")
    assert strict.exit_code == 2
    assert strict.output.splitlines()[-1].startswith("error: plugin 'forgetful': ")


def test_a_cells_identity_and_provenance_name_only_the_plugins_it_uses(installed):
    from sslbench.bench.resolve import resolve_cell

    installed += [FakeEntryPoint("toy", GOOD, "sslbench-toy", "1.2.3")]
    catalog = plugin_core.load_plugins().catalog
    toy = resolve_cell(catalog, "toy", "resnet18", "digits")
    simclr = resolve_cell(catalog, "simclr", "resnet18", "digits")
    assert toy.plugins == {"sslbench-toy": "1.2.3"} and simclr.plugins == {}
    installed[0] = FakeEntryPoint("toy", GOOD, "sslbench-toy", "1.3.0")  # a new release
    catalog = plugin_core.load_plugins().catalog
    bumped = resolve_cell(catalog, "toy", "resnet18", "digits")
    assert bumped.config == toy.config and bumped.run_id != toy.run_id  # a new cell
    assert resolve_cell(catalog, "simclr", "resnet18", "digits").run_id == simclr.run_id


def test_the_table_prints_a_plugins_display_names_without_the_plugin(tmp_path):
    from sslbench.core.config import identity_hash
    from sslbench.core.records import Metrics, Provenance, RunRecord
    from sslbench.core.store import write_record

    prov = Provenance(sslbench="0.2.0", torch="2", torchvision="0", python="3.11", platform="x",
                      plugins={"sslbench-toy": "1.2.3"})
    recipe = identity_hash({}, prov.plugins)
    write_record(RunRecord(run_id=f"toy-tiny-npz-s0-{recipe[:8]}", status="completed", method="toy",
                           backbone="tiny", dataset="npz", method_display="Toy Method",
                           backbone_display="Tiny Net", dataset_display="NPZ folder", seed=0,
                           epochs=1, config={}, config_hash=recipe,
                           metrics=Metrics(linear_acc1=50.0, knn_acc1=40.0), provenance=prov),
                 tmp_path / "results")
    shown = invoke("table", "--results-dir", tmp_path / "results")  # autoload is off here
    assert shown.exit_code == 0, shown.output
    assert "| Toy Method | Tiny Net   | NPZ folder |" in shown.output
