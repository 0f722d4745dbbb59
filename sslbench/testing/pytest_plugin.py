"""The pytest plugin (entry point ``pytest11: sslbench``): sslbench's checks as fixtures.

* ``sslbench_check`` — the :mod:`sslbench.testing` module: ``sslbench_check.check_method(...)``.
* ``sslbench_catalog`` — a fresh catalog (built-ins and installed plugins, as the CLI sees).
* Arguments named ``sslbench_method``, ``sslbench_backbone``, ``sslbench_optimizer``,
  ``sslbench_scheduler`` or ``sslbench_dataset`` are parametrised over every registered name of
  that kind; ``@pytest.mark.sslbench_plugin("sslbench-dcl")`` keeps one distribution's.

    @pytest.mark.sslbench_plugin("sslbench-dcl")
    def test_conforms(sslbench_method, sslbench_check):
        sslbench_check.check_method(sslbench_method)

pytest imports this module in every session of every project in the environment, so it
imports nothing but pytest at the top: sslbench (and torch) load only when a test asks.
Disable it with ``-p no:sslbench``.
"""

from __future__ import annotations

import pytest

KINDS = {"sslbench_method": "methods", "sslbench_backbone": "backbones",
         "sslbench_optimizer": "optimizers", "sslbench_scheduler": "schedulers",
         "sslbench_dataset": "datasets"}


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "sslbench_plugin(distribution): parametrise sslbench_<kind> arguments over "
                   "one plugin distribution's components ('builtin' for sslbench's own)")


def pytest_generate_tests(metafunc) -> None:
    wanted = [arg for arg in KINDS if arg in metafunc.fixturenames]
    if not wanted:
        return
    from sslbench.testing.tiny import registered

    marker = metafunc.definition.get_closest_marker("sslbench_plugin")
    distribution = marker.args[0] if marker and marker.args else None
    for arg in wanted:
        names = registered(KINDS[arg], distribution=distribution)
        metafunc.parametrize(arg, names, ids=names)


@pytest.fixture
def sslbench_check():
    import sslbench.testing

    return sslbench.testing


@pytest.fixture
def sslbench_catalog():
    from sslbench.core.plugins import load_plugins

    return load_plugins().catalog
