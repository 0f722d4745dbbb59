"""benchmarks/gpu.sh, the one-call GPU check, on its CPU path at tiny sizes: the speed JSON for
SimSiam, SimCLR and BYOL, and a valid record per fidelity sprint with the epochs it computed.

(No GPU is needed, nor used: the CUDA path is the same script with other sizes.)"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import compare
from benchmarks.sprint import FULL, epochs_for
from sslbench.core.records import read_record
from tests.test_datasets import write_fashion_gz

ROOT = Path(__file__).resolve().parents[1]


def test_sprint_epochs_fill_the_budget_at_the_measured_speed():
    # 150 s at 25,000 img/s, 80% kept: 3,000,000 images = 50 epochs of 60,000
    assert epochs_for(25_000.0, 60_000, FULL) == 50
    assert epochs_for(10.0, 60_000, FULL) == 1  # never zero epochs


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gunzip") is None or shutil.which("timeout") is None,
                    reason="gpu.sh needs gunzip and timeout")
def test_gpu_check_cpu_path_writes_speed_json_and_records(tmp_path):
    data, out = tmp_path / "fashion", tmp_path / "out"
    write_fashion_gz(data, n_train=64, n_test=20)
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    env.update(PYTHON=sys.executable, SSLBENCH_BENCH_REPEATS="1", OMP_NUM_THREADS="1",
               SSLBENCH_DISABLE_PLUGIN_AUTOLOAD="1")
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--device", "cpu",
                           "--small", "--out", str(out), "--data", str(data)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    speed = json.loads((out / "speed-eager.json").read_text())
    figures = compare.ratios(speed)
    for method in ("simsiam", "simclr", "byol"):
        ratios = figures[f"test_training_step[{method}]"]
        assert all(math.isfinite(v) and v > 0 for v in ratios.values())
    assert "target test_training_step[simsiam] images_per_second" in \
        (out / "speed-eager.md").read_text()
    for method in ("simclr", "byol"):
        sprint = json.loads((out / f"sprint-{method}.json").read_text())
        record = read_record(Path(sprint["record"]["path"]))
        assert record.status == "completed" and record.method == method
        assert record.epochs == sprint["epochs"] >= 1
        assert record.config["data"]["train_subset"] is None  # all training images
        assert record.config["backbone"]["width"] == 1
        assert record.provenance.device_name  # the device is named
        assert record.metrics.knn_acc1 is not None
    assert "== done" in (out / "gpu.log").read_text()
