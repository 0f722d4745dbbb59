"""A streamed run under ``torchrun`` (2 gloo processes, DataLoader workers in each): stopped by
SIGTERM mid-epoch and resumed, it ends with the record and weights of an unbroken 2-process run
(every rank's RNG and data position restored)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sslbench.engine.checkpoint import load_checkpoint
from tests.streamdata import image_folder

WORLD = 2


def torchrun(folder: Path, root: Path, *extra: str) -> subprocess.Popen:
    """SimCLR on a streamed folder of 64 JPEGs: 3 epochs of 4 steps, sync and checkpoint
    every 2 steps; one decoding worker per process."""
    folder.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1",
           "SSLBENCH_WORKERS": "1", "SSLBENCH_DATA": str(folder / "data")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           str(WORLD), "-m", "sslbench", "run", "simclr", "resnet18", "imagefolder",
           "--epochs", "3", "--batch-size", "16", "--set", f"data.options.root={root}",
           "--set", "data.options.image_size=8", "--set", "eval.linear.epochs=1",
           "--set", "pretrain.log_every=2", "--set", "runtime.precision=fp32",
           "--checkpoint-every", "2", "--quiet", "--device", "cpu", *extra]
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for_step(proc: subprocess.Popen, folder: Path, step: int) -> None:
    deadline = time.monotonic() + 240
    while True:
        found = list(folder.glob("runs/*/checkpoint.pt"))
        if found and torch.load(found[0], mmap=True, weights_only=True)["step"] >= step:
            return
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)


@pytest.mark.slow
def test_streamed_torchrun_stopped_mid_epoch_resumes_to_the_unbroken_run(tmp_path):
    root = image_folder(tmp_path / "folder", classes=2, train=32, val=4)
    straight = torchrun(tmp_path / "straight", root)
    stopped = torchrun(tmp_path / "stopped", root)
    wait_for_step(stopped, tmp_path / "stopped", 2)
    os.killpg(stopped.pid, signal.SIGTERM)  # as Slurm does: torchrun, ranks, their workers
    output, _ = stopped.communicate(timeout=120)
    [checkpoint] = (tmp_path / "stopped").glob("runs/*/checkpoint.pt")
    state = load_checkpoint(checkpoint)
    step = state["step"]
    assert step % 2 == 0 and 0 < step < 12, output  # at a sync point, before the end
    assert f"error: terminated by SIGTERM at step {step} of 12: checkpoint saved" in output
    assert "DataLoader worker" not in output and len(state["ranks"]) == WORLD

    resumed = torchrun(tmp_path / "stopped", root, "--resume")
    for proc in (resumed, straight):
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out[-3000:]
    [a], [b] = (list((tmp_path / d).glob("results/*.json")) for d in ("stopped", "straight"))
    rec_a, rec_b = json.loads(a.read_text()), json.loads(b.read_text())
    assert rec_a["metrics"] == rec_b["metrics"] and rec_a["metrics"]["final_loss"] > 0
    assert rec_a["cost"]["num_devices"] == WORLD
    [ca], [cb] = (list((tmp_path / d).glob("runs/*/checkpoint.pt")) for d in ("stopped",
                                                                              "straight"))
    for key, value in load_checkpoint(cb)["model"].items():
        assert torch.equal(load_checkpoint(ca)["model"][key], value), key
