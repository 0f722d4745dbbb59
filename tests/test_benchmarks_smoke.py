"""The speed suite runs (smoke sizes) and its ratio check flags a regression.

CI runs this file as part of the test command, so a change that breaks ``benchmarks/`` is caught
even though the timed figures themselves are only meaningful on a quiet machine (``nox -s bench``).
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import compare

ROOT = Path(__file__).resolve().parents[1]


def test_regressions_flag_only_ratios_below_tolerance():
    baseline = {"step[simclr]": {"efficiency": 0.9, "vs_classic": 1.2}}
    current = {"step[simclr]": {"efficiency": 0.70, "vs_classic": 1.0}}
    bad = compare.regressions(current, baseline, tolerance=0.2)
    # 0.70 < 0.9 * 0.8 = 0.72 is a regression; 1.0 >= 1.2 * 0.8 = 0.96 is not
    assert bad == ["step[simclr] efficiency: 0.700 < baseline 0.900 - 20% (= 0.720)"]
    assert compare.regressions({}, baseline, 0.2) == []  # a benchmark not run is not a failure


def test_startup_ratios_regress_when_they_grow():
    baseline = {"test_cli_startup": {"help_vs_python": 4.0}}
    # lower is better: 5.1 > 4.0 * 1.25 = 5.0 regresses, 4.9 does not, nor does a faster 2.0
    assert compare.regressions({"test_cli_startup": {"help_vs_python": 4.9}}, baseline,
                               0.25) == []
    assert compare.regressions({"test_cli_startup": {"help_vs_python": 2.0}}, baseline,
                               0.25) == []
    assert compare.regressions({"test_cli_startup": {"help_vs_python": 5.1}}, baseline, 0.25) \
        == ["test_cli_startup help_vs_python: 5.100 > baseline 4.000 + 25% (= 5.000)"]


@pytest.mark.slow  # the `list` warm-up loads the plugins (torch) once
def test_cli_startup_benchmark_reports_its_ratios(tmp_path):
    out = tmp_path / "cli.json"
    env = {**os.environ, "SSLBENCH_BENCH_CLI_REPEATS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(ROOT / "benchmarks" / "test_cli_startup.py"), f"--benchmark-json={out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = compare.ratios(json.loads(out.read_text()))["test_cli_startup"]
    assert set(figures) == {"help_vs_python", "list_vs_python"}
    assert all(math.isfinite(v) and v > 1 for v in figures.values())  # never beats python


def test_write_baseline_caps_efficiency_at_one(tmp_path):
    run = {"benchmarks": [{"name": "t", "extra_info": {"efficiency": 1.3, "vs_classic": 1.1}}]}
    (tmp_path / "run.json").write_text(json.dumps(run))
    out = tmp_path / "baseline.json"
    assert compare.main([str(tmp_path / "run.json"), "--preset", "x",
                         "--write-baseline", str(out)]) == 0
    assert json.loads(out.read_text()) == {"x": {"t": {"efficiency": 1.0, "vs_classic": 1.1}}}


@pytest.mark.slow
def test_speed_suite_smoke(tmp_path):
    out = tmp_path / "speed.json"
    env = {**os.environ, "SSLBENCH_BENCH_PRESET": "smoke", "SSLBENCH_BENCH_REPEATS": "1",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(ROOT / "benchmarks" / "test_speed.py"), f"--benchmark-json={out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = json.loads(out.read_text())
    figures = compare.ratios(run)
    steps = [name for name in figures if name.startswith("test_training_step")]
    # the default methods: two-view SimSiam and SimCLR, and multi-crop SwAV
    assert sorted(steps) == ["test_training_step[simclr]", "test_training_step[simsiam]",
                             "test_training_step[swav]"]
    assert any(n.startswith("test_augmentation") for n in figures)
    for name in steps:
        assert set(figures[name]) == {"efficiency", "vs_classic", "vs_original"}
    for name, values in figures.items():
        assert all(math.isfinite(v) and v > 0 for v in values.values()), (name, values)
    assert "vs_original" in compare.table(run).splitlines()[0]
