"""sslbench: a benchmark harness for self-supervised learning on images.

This module is the public API for plugin authors, and the only one: built-in components and the
example plugins import from ``sslbench`` alone, so anything here is stable across refactors of
the engine (see docs/plugins.md, "The public API"). Names load lazily (PEP 562), so
``import sslbench`` stays cheap: the CLI's ``--help`` must not pay for torch.

    from sslbench import hookimpl, StrictModel, ViewSpec, mlp, gather, fp32_loss
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

# name -> module that defines it (kept here, not re-exported eagerly: most import torch)
_EXPORTS = {
    # hooks
    "hookimpl": "sslbench.core.hookspecs",
    # config models a component's options and recipes are written in
    "StrictModel": "sslbench.core.config",
    "ViewSpec": "sslbench.core.config",
    "OptimizerConfig": "sslbench.core.config",
    "ScheduleConfig": "sslbench.core.config",
    # what a dataset returns
    "Split": "sslbench.core.components",
    "DatasetSplits": "sslbench.core.components",
    "StreamSplit": "sslbench.core.components",
    "SourceSubset": "sslbench.core.components",
    # building blocks for methods
    "mlp": "sslbench.nn",
    "gather": "sslbench.nn",
    "rank": "sslbench.nn",
    "world_size": "sslbench.nn",
    "fp32_loss": "sslbench.nn",
    "full_precision": "sslbench.nn",
    "RingBuffer": "sslbench.nn",
    "frozen_copy": "sslbench.nn",
    "ema_update": "sslbench.nn",
    "cosine_momentum": "sslbench.nn",
    # experiment trackers (docs/plugins.md, "Loggers")
    "Logger": "sslbench.core.loggers",
    "CsvLogger": "sslbench.engine.loggers",
    "flatten": "sslbench.core.config",
    # using a pretrained backbone elsewhere
    "load_backbone": "sslbench.bench.export",
    # errors a component raises to give the user one line
    "SSLBenchError": "sslbench.errors",
    "UsageError": "sslbench.errors",
    "DataError": "sslbench.errors",
    "TrainingError": "sslbench.errors",
}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sslbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
