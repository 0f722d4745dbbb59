"""DCL's loss against values worked out by hand and a direct loop formula, the methods
against sslbench's conformance kit, and (once installed) the plugin through the real CLI."""

import importlib.metadata
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from sslbench_dcl import DCL, DCLW, decoupled_contrastive_loss, positive_weights, symmetric_dcl

from sslbench.testing import check_method

PLUGIN = Path(__file__).resolve().parents[1]


def slow_dcl(a, b, t, sigma=None):
    """One direction of the DCL loss written out with loops over the batch."""
    a, b = F.normalize(a.double(), dim=1).tolist(), F.normalize(b.double(), dim=1).tolist()
    n = len(a)

    def dot(u, v):
        return sum(x * y for x, y in zip(u, v, strict=True))

    if sigma is None:
        weights = [1.0] * n
    else:
        e = [math.exp(dot(a[i], b[i]) / sigma) for i in range(n)]
        weights = [2 - ei / (sum(e) / n) for ei in e]
    total = 0.0
    for i in range(n):
        negatives = [a[k] for k in range(n) if k != i] + [b[k] for k in range(n) if k != i]
        den = sum(math.exp(dot(a[i], u) / t) for u in negatives)
        total += -weights[i] * dot(a[i], b[i]) / t + math.log(den)
    return total / n


def test_two_images_by_hand():
    # z1 = (e1, e2), z2 = (e1, e2): the positive's similarity is 1, the negatives of anchor 0
    # are z1[1] = e2 and z2[1] = e2 (similarity 0 each): L = -1/t + log 2
    z = torch.eye(2)
    t = 0.5
    assert decoupled_contrastive_loss(z, z, t).item() == pytest.approx(-1 / t + math.log(2))
    assert symmetric_dcl(z, z, t).item() == pytest.approx(2 * (-1 / t + math.log(2)))


def test_loss_matches_the_slow_formula():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    assert decoupled_contrastive_loss(a, b, 0.1).item() == pytest.approx(
        slow_dcl(a, b, 0.1), rel=1e-5)
    assert decoupled_contrastive_loss(a, b, 0.1, sigma=0.5).item() == pytest.approx(
        slow_dcl(a, b, 0.1, sigma=0.5), rel=1e-5)


def test_the_positive_is_not_in_the_denominator():
    # SimCLR's NT-Xent is bounded below by 0; DCL is not: perfectly aligned, spread views
    # drive it below zero, since the positive no longer appears in the log-sum-exp
    z = torch.eye(8)
    assert decoupled_contrastive_loss(z, z, 0.1).item() < 0


def test_dclw_weights_average_one():
    gen = torch.Generator().manual_seed(1)
    a, b = F.normalize(torch.randn(5, 3, generator=gen), dim=1), torch.randn(5, 3)
    w = positive_weights(a, F.normalize(b, dim=1), 0.5)
    assert w.mean().item() == pytest.approx(1.0)


@pytest.mark.parametrize("method", [DCL, DCLW])
def test_conforms_to_the_method_contract(method):
    check_method(method)


def test_defaults_are_the_papers():
    assert DCL.Config().temperature == 0.1 and DCLW.Config().sigma == 0.5


@pytest.mark.sslbench_plugin("sslbench-dcl")
def test_installed_plugin_conforms(sslbench_method, sslbench_check):
    """Parametrised by sslbench's pytest plugin over what this distribution registered."""
    sslbench_check.check_method(sslbench_method)


def installed() -> bool:
    try:
        importlib.metadata.distribution("sslbench-dcl")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not installed(), reason="pip install ./plugins/sslbench-dcl first")
def test_cli_runs_the_installed_plugin(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sslbench.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SSLBENCH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    runner = CliRunner()
    listing = runner.invoke(app, ["list", "methods"])
    assert listing.exit_code == 0 and "sslbench-dcl" in listing.stdout
    result = runner.invoke(app, ["run", "dcl", "resnet18", "digits", "--epochs", "1",
                                 "--batch-size", "64", "--set", "eval.linear.epochs=2",
                                 "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    [path] = (tmp_path / "results").glob("*.json")
    record = json.loads(path.read_text())
    version = importlib.metadata.version("sslbench-dcl")
    assert record["provenance"]["plugins"]["sslbench-dcl"] == version
    assert record["config"]["method"]["proj_hidden_dim"] == 512
    assert math.isfinite(record["metrics"]["final_loss"])


def _can_build_without_isolation() -> bool:
    """setuptools >= 70.1 builds wheels itself; older ones need the `wheel` package."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major_minor = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    try:
        importlib.metadata.version("wheel")
        return True
    except importlib.metadata.PackageNotFoundError:
        return major_minor >= (70, 1)


@pytest.mark.skipif(not _can_build_without_isolation(),
                    reason="needs setuptools>=70.1 (or wheel) to build offline")
def test_real_pip_install_of_the_dcl_plugin(tmp_path):
    """``pip install plugins/sslbench-dcl`` into a fresh folder: a new process whose only
    extra path is that folder finds the entry point, the module and the version."""
    source = tmp_path / "src"
    shutil.copytree(PLUGIN, source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--no-index", "--target", str(target),
                          str(source)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    probe = ("import inspect; from sslbench.core.plugins import load_plugins; p = load_plugins();"
             "print(inspect.getfile(p.catalog.get('methods', 'dcl')));"
             "print(p.distributions()['sslbench-dcl'])")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    where, version = out.stdout.split()
    assert Path(where).parent == target and version == "0.1.0"
