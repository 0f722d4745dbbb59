"""Where a result came from: versions, platform, device, git state, plugin distributions."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch
import torchvision

import sslbench
from sslbench.core.records import Provenance


def git_state(path: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``path``; (None, None) outside one.

    ``dirty`` asks about the files under ``path`` only (the sslbench package that ran): a
    checkout whose committed ``results/`` a previous run just rewrote ran clean code."""
    def git(*args):
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True,
                              timeout=10)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None, None
        status = git("status", "--porcelain", "--untracked-files=no", "--", ".")
        return head.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def collect(device_name: str | None, plugins: dict[str, str]) -> Provenance:
    commit, dirty = git_state(Path(sslbench.__file__).resolve().parent)
    return Provenance(
        sslbench=sslbench.__version__, torch=torch.__version__,
        torchvision=torchvision.__version__, python=platform.python_version(),
        platform=platform.platform(), device_name=device_name, git_commit=commit,
        git_dirty=dirty, plugins=dict(plugins),
    )
