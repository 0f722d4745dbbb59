"""Every built-in component passes the conformance kit plugin authors use (sslbench.testing).

Parametrised over the registry, so a new method, optimizer or schedule is checked without
anyone editing this file. Backbones: the first one each plugin module registers (one per
family), to keep the suite fast.
"""

import pytest

from sslbench.testing import (
    check_backbone,
    check_dataset,
    check_method,
    check_optimizer,
    check_scheduler,
    registered,
)


def builtin(kind, **kw):
    return registered(kind, distribution="builtin", autoload=False, **kw)



@pytest.mark.parametrize("name", builtin("methods"))
def test_method(name, plugins):
    check_method(name, catalog=plugins.catalog)


@pytest.mark.parametrize("name", builtin("backbones", first_per_plugin=True))
def test_backbone(name, plugins):
    if name == "timm":  # an optional extra: pip install 'sslbench[timm]'
        pytest.importorskip("timm")
    check_backbone(name, catalog=plugins.catalog)


@pytest.mark.parametrize("name", builtin("optimizers"))
def test_optimizer(name, plugins):
    check_optimizer(name, catalog=plugins.catalog)


@pytest.mark.parametrize("name", builtin("schedulers"))
def test_scheduler(name, plugins):
    check_scheduler(name, catalog=plugins.catalog)


def test_digits(plugins, tmp_path):
    check_dataset("digits", tmp_path, catalog=plugins.catalog)


def test_every_kind_is_covered():
    assert {"simclr", "supervised"} <= set(builtin("methods"))
    assert "resnet18" in builtin("backbones", first_per_plugin=True)
    assert "sgd" in builtin("optimizers") and "cosine" in builtin("schedulers")
