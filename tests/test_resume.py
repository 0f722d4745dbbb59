"""Exact resume: a run killed with SIGKILL mid-epoch and resumed with ``--resume`` ends with the
same weights (bit for bit) and the same record metrics as a run that was never stopped.

MoCo v2 is the method under test because it carries the most state besides its weights: a
momentum key encoder, a queue of negatives with its pointer, and an optimizer with momentum.
Every run is a subprocess (``python -m sslbench``) with the same environment and one thread, so
the only difference between the two runs is the kill.
"""

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

STEPS_PER_EPOCH = 4  # 256 pretraining images in batches of 64
EPOCHS = 2
RUN = [sys.executable, "-m", "sslbench", "run", "mocov2", "resnet18", "digits",
       "--epochs", str(EPOCHS), "--batch-size", "64", "--set", "data.image_size=8",
       "--set", "data.train_subset=256", "--set", "eval.linear.epochs=1",
       "--set", "eval.train_subset=256", "--checkpoint-every", "2", "--quiet", "--device", "cpu"]


def start(folder: Path, *extra: str) -> subprocess.Popen:
    folder.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.Popen([*RUN, *extra], cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> None:
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output


def kill_mid_last_epoch(proc: subprocess.Popen, folder: Path) -> Path:
    """SIGKILL the run right after a checkpoint taken mid-way through its last epoch.

    Each time a new checkpoint appears the run is frozen (SIGSTOP) while its step is read; the
    run is killed at the first one inside the last epoch, else let go (SIGCONT). Killing there
    rather than in the first epoch means the unfinished epoch's loss sums, which make the
    record's final loss, must come back from the checkpoint too.
    """
    seen, deadline = None, time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(folder.glob("runs/*/checkpoint.pt"))
        if found and found[0].stat().st_ino != seen:
            seen = found[0].stat().st_ino
            os.kill(proc.pid, signal.SIGSTOP)
            step = torch.load(found[0], mmap=True, weights_only=True)["step"]
            if step > (EPOCHS - 1) * STEPS_PER_EPOCH and step % STEPS_PER_EPOCH:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return found[0]
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.005)
    raise AssertionError(f"not killed mid-way through the last epoch; the run said: "
                         f"{proc.communicate()[0]}")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    straight = start(tmp_path / "straight")  # both start at once: two cores, half the wait
    killed = start(tmp_path / "killed")
    checkpoint = kill_mid_last_epoch(killed, tmp_path / "killed")
    assert killed.returncode == -signal.SIGKILL
    assert not list((tmp_path / "killed").glob("results/*.json"))  # no record of a dead run
    state = load_checkpoint(checkpoint)
    assert (state["epoch"], state["step"]) == (EPOCHS - 1, EPOCHS * STEPS_PER_EPOCH - 2)

    finish(start(tmp_path / "killed", "--resume"))
    finish(straight)

    [a], [b] = (list((tmp_path / d).glob("runs/*/checkpoint.pt")) for d in ("killed", "straight"))
    resumed, uninterrupted = load_checkpoint(a), load_checkpoint(b)
    assert resumed["step"] == uninterrupted["step"] == EPOCHS * STEPS_PER_EPOCH
    assert resumed["model"].keys() == uninterrupted["model"].keys()
    assert {"queue.items", "queue.ptr"} <= set(resumed["model"])
    for key, value in uninterrupted["model"].items():
        assert torch.equal(resumed["model"][key], value), f"{key} differs"
    momenta = [[s["momentum_buffer"] for s in c["optimizer"]["state"].values()]
               for c in (resumed, uninterrupted)]
    assert len(momenta[0]) == len(momenta[1]) > 0
    assert all(torch.equal(x, y) for x, y in zip(*momenta, strict=True))

    [ra], [rb] = (list((tmp_path / d).glob("results/*.json")) for d in ("killed", "straight"))
    rec_a, rec_b = json.loads(ra.read_text()), json.loads(rb.read_text())
    assert rec_a["status"] == rec_b["status"] == "completed"
    assert rec_a["run_id"] == rec_b["run_id"] and rec_a["config"] == rec_b["config"]
    assert rec_a["metrics"] == rec_b["metrics"]  # cost (timings) differs, and may
    assert rec_a["metrics"]["final_loss"] is not None


def sigterm_mid_last_epoch(proc: subprocess.Popen, folder: Path) -> None:
    """Send SIGTERM (as Slurm or Kubernetes do before a kill) right after the checkpoint taken
    mid-way through the last epoch; the run itself must then checkpoint and stop."""
    seen, deadline = None, time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(folder.glob("runs/*/checkpoint.pt"))
        if found and found[0].stat().st_ino != seen:
            seen = found[0].stat().st_ino
            os.kill(proc.pid, signal.SIGSTOP)
            step = torch.load(found[0], mmap=True, weights_only=True)["step"]
            if step > (EPOCHS - 1) * STEPS_PER_EPOCH and step % STEPS_PER_EPOCH:
                os.kill(proc.pid, signal.SIGTERM)
                os.kill(proc.pid, signal.SIGCONT)
                return
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.005)
    raise AssertionError(f"no checkpoint mid-way through the last epoch; the run said: "
                         f"{proc.communicate()[0]}")


@pytest.mark.slow
def test_sigterm_checkpoints_exits_143_and_resume_equals_an_uninterrupted_run(tmp_path):
    straight = start(tmp_path / "straight")
    stopped = start(tmp_path / "stopped")
    sigterm_mid_last_epoch(stopped, tmp_path / "stopped")
    output, _ = stopped.communicate(timeout=300)
    assert stopped.returncode == 143, output  # handled: not -15, killed by the signal
    [checkpoint] = (tmp_path / "stopped").glob("runs/*/checkpoint.pt")
    step = load_checkpoint(checkpoint)["step"]
    assert step > EPOCHS * STEPS_PER_EPOCH - 2  # at the next step boundary after the signal
    assert output.strip().splitlines()[-1] == (
        f"error: terminated by SIGTERM at step {step} of {EPOCHS * STEPS_PER_EPOCH}: checkpoint "
        f"saved to {checkpoint.relative_to(tmp_path / 'stopped')}; continue with --resume")
    assert not list((tmp_path / "stopped").glob("results/*.json"))  # no record of a stopped run

    finish(start(tmp_path / "stopped", "--resume"))
    finish(straight)
    [ra], [rb] = (list((tmp_path / d).glob("results/*.json")) for d in ("stopped", "straight"))
    rec_a, rec_b = json.loads(ra.read_text()), json.loads(rb.read_text())
    assert rec_a["status"] == rec_b["status"] == "completed"
    assert rec_a["metrics"] == rec_b["metrics"] and rec_a["metrics"]["final_loss"] is not None
    [a], [b] = (list((tmp_path / d).glob("runs/*/checkpoint.pt")) for d in ("stopped", "straight"))
    resumed, uninterrupted = load_checkpoint(a), load_checkpoint(b)
    for key, value in uninterrupted["model"].items():
        assert torch.equal(resumed["model"][key], value), f"{key} differs"
