"""VICReg's terms against values worked out by hand and a direct slow formula, the method
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
from sslbench_vicreg import VICReg, covariance, invariance, variance, vicreg_loss

from sslbench.testing import check_method

PLUGIN = Path(__file__).resolve().parents[1]


def slow_vicreg(a, b, lam, mu, nu, gamma=1.0, eps=1e-4):
    """Eq. 6 written out with loops over samples and dimensions."""
    n, d = len(a), len(a[0])

    def mean(z, j):
        return sum(z[i][j] for i in range(n)) / n

    def var(z, j):
        return sum((z[i][j] - mean(z, j)) ** 2 for i in range(n)) / (n - 1)

    def cov(z, j, k):
        return sum((z[i][j] - mean(z, j)) * (z[i][k] - mean(z, k)) for i in range(n)) / (n - 1)

    s = sum((a[i][j] - b[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
    v = sum(max(0.0, gamma - math.sqrt(var(z, j) + eps)) for z in (a, b) for j in range(d)) / d
    c = sum(cov(z, j, k) ** 2 for z in (a, b) for j in range(d) for k in range(d) if j != k) / d
    return lam * s + mu * v + nu * c


def test_terms_by_hand():
    z = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    # centred rows (-1, -2), (1, 2): covariance [[2, 4], [4, 8]]; off-diagonal 4^2 + 4^2 over D=2
    assert covariance(z).item() == pytest.approx(16.0)
    # variances 2 and 8: both standard deviations exceed gamma = 1, no hinge
    assert variance(z).item() == 0.0
    # variance 0.5 in the one dimension: 1 - sqrt(0.5 + 1e-4)
    assert variance(torch.tensor([[0.0], [1.0]])).item() == pytest.approx(1 - math.sqrt(0.5001))
    assert invariance(z, z + 1).item() == pytest.approx(1.0)


def test_loss_matches_the_slow_formula():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen) * 0.3
    loss, logs = vicreg_loss(a, b, lam=25.0, mu=25.0, nu=1.0)
    assert loss.item() == pytest.approx(slow_vicreg(a.tolist(), b.tolist(), 25, 25, 1), rel=1e-5)
    assert set(logs) == {"invariance", "variance", "covariance"}


def test_collapsed_embeddings_are_penalised_by_variance_only():
    z = torch.ones(8, 16)
    loss, logs = vicreg_loss(z, z)
    assert logs["invariance"] == 0 and logs["covariance"] == 0
    assert loss.item() == pytest.approx(25 * 2 * (1 - math.sqrt(1e-4)))


def test_conforms_to_the_method_contract():
    check_method(VICReg)  # the digits CPU recipe: expander 512


def test_default_expander_is_the_papers():
    assert VICReg.Config().expander_dim == 8192
    cfg = VICReg.Config()
    assert (cfg.invariance_weight, cfg.variance_weight, cfg.covariance_weight) == (25, 25, 1)


@pytest.mark.sslbench_plugin("sslbench-vicreg")
def test_installed_plugin_conforms(sslbench_method, sslbench_check):
    """Parametrised by sslbench's pytest plugin over what this distribution registered."""
    sslbench_check.check_method(sslbench_method)


def installed() -> bool:
    try:
        importlib.metadata.distribution("sslbench-vicreg")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not installed(), reason="pip install ./plugins/sslbench-vicreg first")
def test_cli_runs_the_installed_plugin(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sslbench.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SSLBENCH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    runner = CliRunner()
    listing = runner.invoke(app, ["list", "methods"])
    assert listing.exit_code == 0 and "sslbench-vicreg" in listing.stdout
    result = runner.invoke(app, ["run", "vicreg", "resnet18", "digits", "--epochs", "1",
                                 "--batch-size", "64", "--set", "eval.linear.epochs=2",
                                 "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    [path] = (tmp_path / "results").glob("*.json")
    record = json.loads(path.read_text())
    version = importlib.metadata.version("sslbench-vicreg")
    assert record["provenance"]["plugins"]["sslbench-vicreg"] == version
    assert record["config"]["method"]["expander_dim"] == 512
    assert record["metrics"]["final_loss"] > 0


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
def test_real_pip_install_of_the_vicreg_plugin(tmp_path):
    """``pip install plugins/sslbench-vicreg`` into a fresh folder: a new process whose only
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
             "print(inspect.getfile(p.catalog.get('methods', 'vicreg')));"
             "print(p.distributions()['sslbench-vicreg'])")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    where, version = out.stdout.split()
    assert Path(where).parent == target and version == "0.1.0"
