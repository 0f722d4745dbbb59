"""The catalog index cache behind ``sslbench list`` / ``plugins``: reused while nothing changed,
rebuilt when a built-in file, an entry-point plugin or the cache file itself changes."""

import importlib.metadata
import json
import os
import sys

import pytest
from typer.testing import CliRunner

from sslbench.cli import app
from sslbench.core import index as idx
from sslbench.core.plugins import load_plugins

runner = CliRunner()


class CountingLoader:
    """``load_plugins`` that counts how often the index really had to load the plugins."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return load_plugins(autoload=False)


@pytest.fixture
def fake_builtin(tmp_path, monkeypatch):
    """A stand-in for sslbench/builtin (a package of plugin files we may touch)."""
    package = tmp_path / "pkgs" / "fake_builtin"
    (package / "methods").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "methods" / "toy.py").write_text("# a plugin module\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setattr(idx, "BUILTIN_PACKAGE", "fake_builtin")
    return package


def test_warm_index_does_not_load_plugins_and_matches_a_real_load():
    load = CountingLoader()
    first = idx.load_index(load)
    second = idx.load_index(load)
    assert load.calls == 1
    assert second == first
    real = load_plugins(autoload=False)
    assert [e.name for e in second.entries_of("backbones")] == real.catalog.names("backbones")
    assert second.display("backbones", "resnet18") == "ResNet-18"
    assert second.display("methods", "no-such-method") is None


def test_touching_a_builtin_file_rebuilds_the_index(fake_builtin):
    load = CountingLoader()
    idx.load_index(load)
    before = idx.fingerprint()
    toy = fake_builtin / "methods" / "toy.py"
    st = toy.stat()
    os.utime(toy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # `touch`
    assert idx.fingerprint() != before
    idx.load_index(load)
    assert load.calls == 2
    (fake_builtin / "methods" / "new.py").write_text("")  # a new built-in module
    idx.load_index(load)
    assert load.calls == 3


def test_a_new_entry_point_plugin_rebuilds_the_index(tmp_path, monkeypatch):
    plugin = tmp_path / "site" / "sslbench_fresh"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (plugin / "hooks.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    eps = []
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None, **kw: list(eps) if group == "sslbench"
                        else real(group=group, **kw))
    before = idx.fingerprint()
    eps.append(importlib.metadata.EntryPoint("fresh", "sslbench_fresh.hooks", "sslbench"))
    with_plugin = idx.fingerprint()
    assert with_plugin != before
    assert "sslbench_fresh" not in sys.modules  # located, not imported
    assert idx._module_file("sslbench_fresh.hooks") == plugin / "hooks.py"
    (plugin / "hooks.py").write_text("# edited: registers something else now\n")
    assert idx.fingerprint() != with_plugin


def test_corrupt_cache_file_is_rebuilt():
    load = CountingLoader()
    idx.load_index(load)
    path = idx.index_path()
    path.write_text("{not json")
    rebuilt = idx.load_index(load)
    assert load.calls == 2
    assert json.loads(path.read_text())["fingerprint"] == idx.fingerprint()
    assert rebuilt.entries_of("methods")
    path.write_text(json.dumps({"format": idx.FORMAT, "fingerprint": idx.fingerprint(),
                                "index": {"entries": [{"kind": "methods"}]}}))
    idx.load_index(load)  # well-formed JSON of the wrong shape: rebuilt as well
    assert load.calls == 3


def test_unwritable_cache_folder_is_skipped_silently(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))  # mkdir below it fails
    load = CountingLoader()
    assert idx.load_index(load).entries_of("datasets")
    assert idx.load_index(load).entries_of("datasets")
    assert load.calls == 2  # nothing cached, nothing raised
    result = runner.invoke(app, ["list", "datasets"])
    assert result.exit_code == 0 and "fashion-mnist" in result.stdout


def test_list_and_plugins_print_the_same_from_the_cache(monkeypatch):
    cold = [runner.invoke(app, args) for args in (["list"], ["plugins"])]
    monkeypatch.setattr("sslbench.cli.catalog.load_plugins", _must_not_load)
    warm = [runner.invoke(app, args) for args in (["list"], ["plugins"])]
    for a, b in zip(cold, warm, strict=True):
        assert a.exit_code == b.exit_code == 0
        assert a.stdout == b.stdout
    assert "sslbench.builtin.backbones.resnet  [built-in]  backbones: resnet18" in warm[1].stdout


def test_plugins_strict_fails_from_a_warm_cache_too(monkeypatch):
    from tests.test_plugins_cli import BROKEN, FakeEntryPoint

    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None, **_: [FakeEntryPoint("broken", BROKEN, "sslbench-b",
                                                                "0.1")]
                        if group == "sslbench" else [])
    monkeypatch.delenv("SSLBENCH_DISABLE_PLUGIN_AUTOLOAD")
    first = runner.invoke(app, ["plugins", "--strict"])
    monkeypatch.setattr("sslbench.cli.catalog.load_plugins", _must_not_load)
    second = runner.invoke(app, ["plugins", "--strict"])
    for result in (first, second):
        assert result.exit_code == 2
        assert "FAILED plugin 'broken' (from sslbench-b 0.1) failed: ModuleNotFoundError" \
            in result.stdout
        assert result.stderr.strip() == "error: 1 plugin failed to load (--strict)"


def _must_not_load(*args, **kwargs):
    raise AssertionError("the warm index should have answered without loading plugins")
