"""The catalog and plugin loading: duplicates, typos, throwaway and broken plugins."""

import types

import pytest

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


def test_throwaway_plugin_registers_a_method():
    class Mine:
        @hookimpl
        def sslbench_register_methods(self, register):
            register("mine", object, display="Mine")

    plugins = load_plugins(autoload=False, extra=[("mine-plugin", Mine())])
    assert plugins.catalog.entry("methods", "mine").plugin == "mine-plugin"
    assert any(p.name == "mine-plugin" and p.registered == {"methods": ["mine"]}
               for p in plugins.loaded)


def test_duplicate_name_names_both_plugins_and_keeps_the_first():
    class Dup:
        @hookimpl
        def sslbench_register_methods(self, register):
            register("brand-new", object)
            register("simclr", object)

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
        register("x", object)

    module.sslbench_register_method = sslbench_register_method
    plugins = load_plugins(autoload=False, extra=[("typo", module)])
    assert "unknown hook 'sslbench_register_method'" in str(plugins.failures[0])
