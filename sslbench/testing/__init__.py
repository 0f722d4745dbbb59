"""Conformance checks a plugin author runs on their own component before publishing a number.

    from sslbench.testing import check_method
    check_method("dcl")             # or check_method(DCL), without installing the plugin

Each ``check_*`` builds the component small and fast, runs the contract the engine relies on
(see docs/plugins.md) and raises an :class:`AssertionError` naming the check that failed. The
pytest plugin :mod:`sslbench.testing.pytest_plugin` exposes them as fixtures.

The names are resolved lazily: pytest loads this package through its ``pytest11`` entry point in
every session, so importing it must not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "check_method": "sslbench.testing.method",
    "check_backbone": "sslbench.testing.backbone",
    "check_optimizer": "sslbench.testing.optimizer",
    "check_scheduler": "sslbench.testing.optimizer",
    "check_dataset": "sslbench.testing.dataset",
    "registered": "sslbench.testing.tiny",
    "TinyConvNet": "sslbench.testing.tiny",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sslbench.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_EXPORTS)
