"""A Slurm matrix cell as a DDP job, proven without a cluster: submitit's local executor runs a
2-task cell on CPU (gloo), whose ranks meet through submitit's job environment (the torchrun
code path), and it writes exactly one record, equal to that of ``torchrun`` with 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SETS = ["--epochs", "1", "--batch-size", "64", "--set", "data.image_size=8",
        "--set", "data.train_subset=256", "--set", "eval.linear.epochs=2",
        "--set", "eval.train_subset=256", "--quiet", "--device", "cpu"]


@pytest.mark.slow
def test_submitit_two_task_cell_writes_the_torchrun_record(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1",
           "SSLBENCH_DATA": str(tmp_path / "data")}
    (tmp_path / "job").mkdir()
    (tmp_path / "torchrun").mkdir()
    job = subprocess.run(
        [sys.executable, "-m", "sslbench", "matrix", "--methods", "simclr", "--backbones",
         "resnet18", "--datasets", "digits", "--executor", "submitit-local",
         "--tasks-per-node", "2", *SETS], cwd=tmp_path / "job", env=env, capture_output=True,
        text=True, timeout=300)
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
    ref = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         "2", "-m", "sslbench", "run", "simclr", "resnet18", "digits", *SETS],
        cwd=tmp_path / "torchrun", env=env, capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]
    [a] = (tmp_path / "job" / "results").glob("*.json")  # exactly one record
    [b] = (tmp_path / "torchrun" / "results").glob("*.json")
    rec_a, rec_b = json.loads(a.read_text()), json.loads(b.read_text())
    assert rec_a["run_id"] == rec_b["run_id"] and rec_a["status"] == "completed"
    assert rec_a["metrics"] == rec_b["metrics"]
    assert rec_a["cost"]["num_devices"] == 2 and rec_a["cost"]["backend"] == "gloo"
