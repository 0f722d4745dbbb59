"""Where sslbench keeps things on disk by default (no third-party imports: the CLI's help and
option defaults use these)."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """Datasets: ``$SSLBENCH_DATA``, else ``~/.cache/sslbench``."""
    return Path(os.environ.get("SSLBENCH_DATA") or Path.home() / ".cache" / "sslbench")


def cache_dir() -> Path:
    """sslbench's own caches (the catalog index): ``$XDG_CACHE_HOME/sslbench``, else
    ``~/.cache/sslbench``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sslbench"
