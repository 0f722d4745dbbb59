"""``--help``, ``list``, ``plugins``, ``show`` and ``table`` import no torch (nor the other heavy
libraries they do not need): each runs in a fresh interpreter that then reports its modules.

``table`` is allowed pandas (and numpy, which pandas brings): its grouping and the csv, html and
LaTeX renderers are pandas', and the table is what the command computes. ``--help`` also renders
without rich (plain click help, see sslbench/cli/__init__.py).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sslbench.core.store import RecordStore
from tests.test_records import make_record

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "torchvision", "pandas", "numpy", "matplotlib", "sklearn", "submitit",
         "scipy"}
ALLOWED = {"table": {"pandas", "numpy"}}

# Runs the Typer app in-process the way the console script does, then writes sys.modules.
PROBE = """
import json, sys
out, args = sys.argv[1], sys.argv[2:]
from sslbench.cli import app
try:
    app(args, prog_name="sslbench")
    code = 0
except SystemExit as exc:
    code = exc.code or 0
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def probe(args: list[str], folder: Path, env: dict) -> tuple[set[str], str]:
    """Top-level modules imported by ``sslbench ARGS`` in a fresh interpreter, and its stdout."""
    out = folder / "modules.json"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out), *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)
    report = json.loads(out.read_text())
    assert report["code"] == 0, proc.stderr
    return {m.split(".")[0] for m in report["modules"]}, proc.stdout


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A results folder with a record, and a warm catalog index (one real `list` run)."""
    folder = tmp_path_factory.mktemp("cli")
    RecordStore(folder / "results").save(make_record("simclr-resnet18-digits-s0-abc"))
    env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache"),
           "SSLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    cold, _ = probe(["list"], folder, env)
    assert "torch" in cold  # a cold index loads the plugins for real: the probe can see torch
    return folder, env


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "methods"], ["plugins"],
                                  ["show", "simclr-resnet18-digits-s0-abc"], ["table"]],
                         ids=lambda a: " ".join(a))
def test_light_commands_import_no_heavy_modules(workdir, args):
    folder, env = workdir
    modules, stdout = probe(args, folder, env)
    heavy = HEAVY - ALLOWED.get(args[0], set())
    assert not modules & heavy, f"sslbench {' '.join(args)} imported {sorted(modules & heavy)}"
    if args == ["--help"]:  # what --help needs is typer (click): nothing that reads a file
        assert not modules & {"rich", "pydantic", "yaml"}, sorted(modules & {"rich", "pydantic",
                                                                           "yaml"})
        assert "Commands:" in stdout
    if args[0] == "table":  # display names from the index: no plugin load, still ResNet-18
        assert "| SimCLR  | ResNet-18  | Digits" in stdout
    if args[0] == "list":
        assert "simclr" in stdout
