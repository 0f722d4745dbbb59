"""The catalog and plugin loading: duplicates, typos, throwaway and broken plugins."""

import types

import pytest
from pydantic import BaseModel
from torch import nn

from sslbench import hookimpl
from sslbench.core.plugins import load_plugins
from sslbench.errors import UsageError


def test_builtins_are_registered_through_hooks(plugins):
    assert {"simclr", "simsiam", "random", "supervised"} <= set(plugins.catalog.names("methods"))
    entry = plugins.catalog.entry("methods", "simclr")
    assert entry.plugin == "sslbench.builtin.methods.simclr"
    assert plugins.failures == []


def test_typo_gets_did_you_mean(plugins):
    with pytest.raises(UsageError, match="unknown method 'simsaim'; did you mean 'simsiam'"):
        plugins.catalog.get("methods", "simsaim")


def test_unrelated_name_lists_known_ones(plugins):
    with pytest.raises(UsageError, match="known: .*fashion-mnist"):
        plugins.catalog.get("datasets", "zzzzzz")


class MineMethod(nn.Module):
    """A method that only has to be registrable."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone


def test_throwaway_plugin_registers_a_method():
    class Mine:
        @hookimpl
        def sslbench_register_methods(self, register):
            register("mine", MineMethod, display="Mine")

    plugins = load_plugins(autoload=False, extra=[("mine-plugin", Mine())])
    assert plugins.catalog.entry("methods", "mine").plugin == "mine-plugin"
    assert any(p.name == "mine-plugin" and p.registered == {"methods": ["mine"]}
               for p in plugins.loaded)


def test_duplicate_name_names_both_plugins_and_keeps_the_first():
    class Dup:
        @hookimpl
        def sslbench_register_methods(self, register):
            register("brand-new", MineMethod)
            register("simclr", MineMethod)

    plugins = load_plugins(autoload=False, extra=[("dup-plugin", Dup())])
    [failure] = plugins.failures
    assert "'simclr' is registered by both 'sslbench.builtin.methods.simclr' and 'dup-plugin'" \
        in str(failure)
    assert plugins.catalog.get("methods", "simclr").__name__ == "SimCLR"
    assert "brand-new" not in plugins.catalog.names("methods")  # all or nothing


def test_plugin_raising_while_registering_is_isolated():
    class Broken:
        @hookimpl
        def sslbench_register_backbones(self, register):
            raise RuntimeError("boom")

    plugins = load_plugins(autoload=False, extra=[("broken", Broken())])
    assert [str(f) for f in plugins.failures] == ["plugin 'broken' failed: RuntimeError: boom"]
    assert "resnet18" in plugins.catalog.names("backbones")
    with pytest.raises(UsageError, match="boom"):
        load_plugins(autoload=False, strict=True, extra=[("broken", Broken())])


def test_misspelled_hook_is_rejected():
    module = types.ModuleType("typo_plugin")

    @hookimpl
    def sslbench_register_method(register):  # missing "s"
        register("x", MineMethod)

    module.sslbench_register_method = sslbench_register_method
    plugins = load_plugins(autoload=False, extra=[("typo", module)])
    assert "unknown hook 'sslbench_register_method'" in str(plugins.failures[0])


def _failure(kind: str, name: str, component, **metadata) -> str:
    """The one line a plugin registering ``component`` fails with (it must fail)."""
    class Plugin:
        pass

    def hook(register):
        register(name, component, **metadata)

    setattr(Plugin, f"sslbench_register_{kind}", staticmethod(hookimpl(hook)))
    plugins = load_plugins(autoload=False, extra=[("bad-plugin", Plugin())])
    assert name not in plugins.catalog.names(kind)
    (failure,) = [f for f in plugins.failures if f.name == "bad-plugin"]
    return str(failure)


@pytest.mark.parametrize("component, message", [
    (object, "a method must be an nn.Module subclass, got type"),
    (lambda backbone: None, "a method must be an nn.Module subclass, got function"),
    (42, "a method must be an nn.Module subclass, got int 42"),
    (type("NoViews", (MineMethod,), {"views": []}), "views must be a non-empty list of ViewSpec"),
    (type("BadConfig", (MineMethod,), {"Config": dict}), "Config must be a pydantic model class"),
    (type("BadFlag", (MineMethod,), {"needs_labels": "yes"}), "needs_labels must be True or False"),
])
def test_a_method_that_breaks_the_contract_is_refused_naming_plugin_and_method(component,
                                                                               message):
    line = _failure("methods", "broken", component)
    assert line.startswith("plugin 'bad-plugin' failed: ValueError: method 'broken': ")
    assert message in line and "\n" not in line


def test_a_misspelt_metadata_key_names_the_allowed_keys():
    def load(data_dir, download):
        raise AssertionError("never loaded")

    line = _failure("datasets", "mydata", load, recipes={"pretrain": {"epochs": 1}})
    assert line.endswith("dataset 'mydata': unknown metadata 'recipes' (allowed: display, "
                         "options, recipe, summary)")
    line = _failure("backbones", "mynet", lambda size: None, recipe={})
    assert ("backbone 'mynet': unknown metadata 'recipe' (allowed: display, example_options, "
            "recipes, summary)" in line)


def test_metadata_of_the_wrong_type_and_non_callable_factories_are_refused():
    assert "metadata 'display' must be a string, got int" in _failure(
        "optimizers", "opt", lambda params, cfg: None, display=3)
    assert "metadata 'options' must be a pydantic model class, got dict" in _failure(
        "datasets", "d", lambda data_dir, download: None, options={"root": "x"})
    assert "scheduler 'sched' must be a factory function (or class), got int" in _failure(
        "schedulers", "sched", 5)


def test_hook_functions_without_hookimpl_warn_and_fail_under_strict():
    import types as _types

    module = _types.ModuleType("forgetful")

    def sslbench_register_methods(register):  # no @hookimpl: pluggy would ignore it
        register("forgotten", MineMethod)

    module.sslbench_register_methods = sslbench_register_methods
    plugins = load_plugins(autoload=False, extra=[("forgetful", module)])
    assert "forgotten" not in plugins.catalog.names("methods")
    assert plugins.warnings() == ["plugin 'forgetful': sslbench_register_methods() is not "
                                  "decorated with @sslbench.hookimpl, so it was never called"]
    with pytest.raises(UsageError, match="not decorated with @sslbench.hookimpl"):
        load_plugins(autoload=False, strict=True, extra=[("forgetful", module)])


def test_a_dataset_options_model_is_accepted():
    class Options(BaseModel):
        root: str = "."

    class Plugin:
        @hookimpl
        def sslbench_register_datasets(self, register):
            register("withopts", lambda data_dir, download, options: None, options=Options)

    plugins = load_plugins(autoload=False, extra=[("ok", Plugin())])
    assert plugins.catalog.entry("datasets", "withopts").metadata["options"] is Options
