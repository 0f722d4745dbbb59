"""Third-party plugins through the ``sslbench`` entry-point group: listed with distribution and
version, broken ones reported in one line and skipped, ``--strict``, provenance in records.

Entry points are faked here (fast, no install); the real ``pip install`` path is tested by
plugins/sslbench-vicreg/tests (an install into a throwaway folder, then a fresh process)."""

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
    in plugins/sslbench-vicreg/tests)."""
    installed += [FakeEntryPoint("toy", GOOD, "sslbench-toy", "1.2.3"),
                  FakeEntryPoint("broken", BROKEN, "sslbench-broken", "0.3")]
    loaded = plugin_core.load_plugins()
    assert loaded.distributions() == {"sslbench-toy": "1.2.3"}
    assert provenance.collect(None, loaded.distributions()).plugins == {"sslbench-toy": "1.2.3"}
