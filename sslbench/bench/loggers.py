"""Which loggers a run writes to: ``--log tensorboard,wandb`` checked against the catalog.

``csv`` (``metrics.csv``) is always among them, first. The others are plugins of the
``loggers`` kind; a name that is not registered is a usage error with did-you-mean, and so is
one whose tracker package is not installed (one line naming the pip extra), both before the
run starts. Which loggers a run feeds is not part of its config: it changes no result, so it
leaves the run id, the config hash and the record alone.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from sslbench.core.catalog import Catalog, Entry
from sslbench.engine.loggers import LoggerFanout, LoggerSpec
from sslbench.errors import UsageError

ALWAYS = "csv"


def parse_log(text: str | None) -> list[str]:
    """``"tensorboard, wandb"`` -> ``["tensorboard", "wandb"]`` (order kept, repeats dropped)."""
    names = [part.strip() for part in (text or "").split(",")]
    return list(dict.fromkeys(name for name in names if name))


def check_loggers(catalog: Catalog, names: list[str] | tuple[str, ...]) -> list[str]:
    """The loggers a run opens, ``csv`` first; each registered, its client importable."""
    selected = [ALWAYS, *(name for name in dict.fromkeys(names) if name != ALWAYS)]
    for name in selected:
        check_client(catalog.entry("loggers", name))  # an unknown name: did-you-mean
    return selected


def check_client(entry: Entry) -> None:
    """Import the tracker package a logger declared with ``requires=``; refuse in one line."""
    module = entry.metadata.get("requires")
    if not module:
        return
    extra = entry.metadata.get("extra")
    how = f"pip install 'sslbench[{extra}]'" if extra else f"pip install {module}"
    try:
        importlib.import_module(module)
    except ImportError:
        raise UsageError(f"logger {entry.name!r} needs the {module} package, which is not "
                         f"installed: {how}") from None
    except Exception as exc:  # installed but broken: say what its import raised
        text = " ".join(str(exc).split())[:200]
        raise UsageError(f"logger {entry.name!r} cannot import {module} "
                         f"({type(exc).__name__}: {text}); reinstall it: {how}") from None


def logger_specs(catalog: Catalog, names,
                 options: dict[str, dict[str, Any]] | None = None) -> list[LoggerSpec]:
    """The loggers a run opens (``csv`` first), resolved from the catalog once, by whoever
    holds it (the CLI, an executor's worker): the run itself receives built specs."""
    return [LoggerSpec(name, catalog.get("loggers", name), dict((options or {}).get(name, {})),
                       required=name == ALWAYS)
            for name in check_loggers(catalog, names)]


def open_loggers(specs: list[LoggerSpec], run_dir: Path, run_id: str,
                 active: bool = True) -> LoggerFanout:
    """The run's fan-out, its loggers built (not started); empty where ``active`` is false
    (the processes of a distributed run other than rank 0 log nothing)."""
    if not active:
        return LoggerFanout()
    return LoggerFanout.open(specs, run_dir, run_id)
