"""Shared fixtures: a tiny, fast recipe and isolated folders for every CLI test."""

from __future__ import annotations

import pytest
import torch

from sslbench.core.plugins import load_plugins

# One epoch at 8 px: a whole digits run (pretrain + kNN + linear probe) in a few seconds.
TINY = ["--epochs", "1", "--batch-size", "64", "--set", "data.image_size=8",
        "--set", "eval.linear.epochs=3", "--quiet", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test runs in its own folder, with no third-party plugins, no real data cache and
    its own catalog index cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SSLBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("SSLBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # the catalog index
    torch.set_num_threads(1)  # tiny models: a second thread costs more than it gives


@pytest.fixture
def plugins():
    return load_plugins(autoload=False)


@pytest.fixture
def tiny():
    return list(TINY)
