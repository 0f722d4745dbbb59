"""Two CPU processes (gloo) must compute what one process computes with the whole global batch.

One ``torch.multiprocessing.spawn`` of 2 workers runs every multi-process case (starting
processes is the slow part) and saves what each rank saw; the tests compare that with the
single-process reference computed here. A last test runs ``torchrun -m sslbench run`` end to end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from sslbench.bench.resolve import optimization
from sslbench.core.components import MethodTraits, Split
from sslbench.core.config import RunConfig
from sslbench.core.plugins import load_plugins
from sslbench.engine import distributed, pretrain
from sslbench.engine.checkpoint import load_checkpoint
from sslbench.engine.pretrain import Context
from sslbench.errors import TrainingError, UsageError
from sslbench.testing import TinyConvNet

WORLD = 2
GLOBAL_BATCH = 16
# The list; a method not registered yet is skipped with a reason, never silently.
CROSS_BATCH_METHODS = ["simclr", "supcon", "barlow_twins", "swav"]
RTOL = 1e-5  # losses and gradients; a gather that drops other ranks' gradient is ~50% off
GRAD_RTOL = RTOL
# The equivalence cases keep parameters and views in float64: in float32, sums over 8 + 8
# samples against one sum over 16 differ by 1-2e-5 from summation order alone, which would
# blur a 1e-5 check. The losses may still compute in float32 on the same gathered inputs.
EXACT = torch.float64


def _without_batchnorm(module: nn.Module) -> nn.Module:
    """Per-process batch statistics differ from global ones (SyncBatchNorm needs CUDA)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _without_batchnorm(child)
    return module


def _small_config(config_cls):
    """The method's defaults with wide layers (projector/prototype sizes) shrunk to 32."""
    small = {}
    for name, field in config_cls.model_fields.items():
        default = field.default
        if isinstance(default, int) and not isinstance(default, bool) and default > 64 and (
                "dim" in name or "prototypes" in name):
            small[name] = 32
    return config_cls(**small)


def build_tiny(plugins, name: str, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    cls = plugins.catalog.get("methods", name)
    traits = MethodTraits.of(cls)
    config = _small_config(traits.config) if traits.config else None
    return _without_batchnorm(traits.build(cls, TinyConvNet(8), config, 4)).to(dtype)


def fixed_views(method_cls, dtype=torch.float32) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The views the method declares (count and relative size each), fixed random tensors."""
    gen = torch.Generator().manual_seed(1)
    views = []
    for spec in MethodTraits.of(method_cls).views:
        size = max(4, round(16 * spec.size))
        views += [torch.randn(GLOBAL_BATCH, 3, size, size, generator=gen, dtype=dtype)
                  for _ in range(spec.count)]
    return views, torch.arange(GLOBAL_BATCH) % 4


def one_step(method: nn.Module, part: slice) -> dict:
    """Loss (averaged over processes) and parameter gradients after one forward/backward."""
    views, labels = fixed_views(type(method), next(method.parameters()).dtype)
    model = distributed.wrap(method, torch.device("cpu"))
    method.train()
    y = labels[part] if MethodTraits.of(type(method)).needs_labels else None
    loss, _ = model([v[part] for v in views], y)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in method.named_parameters()
             if p.grad is not None}
    return {"loss": distributed.average(loss.detach()).item(), "grads": grads}


def _gather_cases(r: int) -> dict:
    x = ((r + 1) * torch.arange(6.0).view(3, 2)).requires_grad_()
    y = distributed.gather(x)
    weights = (r + 1) * torch.arange(12.0).view(6, 2)  # a different loss on every rank
    (weights * y).sum().backward()
    lo, hi = distributed.shard(5)
    shards = distributed.gather_shards(torch.arange(5.0)[lo:hi].view(-1, 1), 5)
    return {"y": y.detach(), "grad": x.grad, "shard": (lo, hi), "shards": shards}


def _engine_cases(r: int) -> dict:
    index = pretrain._batch_index(torch.arange(40), 1, GLOBAL_BATCH).tolist()
    try:  # only rank 1's loss is non-finite: both must stop, at the same step
        loss = torch.tensor(float("nan") if r == 1 else 1.0)
        loop = SimpleNamespace(step=5, epoch=0, clean=torch.tensor(0))
        pretrain._log(loop, loss, {}, 1, 0.0, SimpleNamespace(dtype=None))
        stopped = "no error"
    except TrainingError as exc:
        stopped = str(exc)
    ctx = SimpleNamespace(cfg=SimpleNamespace(pretrain=SimpleNamespace(batch_size=15)))
    try:
        pretrain._setup(None, range(100), ctx)
        odd = "no error"
    except UsageError as exc:
        odd = str(exc)
    return {"index": index, "odd_batch": odd, "stopped": stopped}


def _pretrain_case(plugins, name: str, out: Path) -> dict:
    """The real loop: 2 epochs of 2 global batches (SwAV's prototypes are frozen in the first)."""
    method = build_tiny(plugins, name)
    cfg = RunConfig(method={"name": name}, backbone={"name": "tiny"}, data={"name": "x"},
                    pretrain={"epochs": 2, "batch_size": GLOBAL_BATCH, "log_every": 1},
                    runtime={"precision": "fp32", "channels_last": False})
    traits = MethodTraits.of(type(method))
    ctx = Context(cfg, optimization(plugins.catalog, cfg.pretrain), torch.device("cpu"), None,
                  traits.needs_labels, list(traits.views), 8, (0.5,) * 3, (0.25,) * 3,
                  checkpoint_path=out / "checkpoint.pt" if distributed.is_main() else None)
    gen = torch.Generator().manual_seed(2)
    split = Split(torch.randint(0, 256, (2 * GLOBAL_BATCH + 3, 3, 8, 8), dtype=torch.uint8,
                                generator=gen), torch.arange(2 * GLOBAL_BATCH + 3) % 4)
    result = pretrain.pretrain(method, split, ctx)
    return {"state": method.state_dict(), "final_loss": result.final_loss}


def _worker(r: int, port: int, out: str, names: list[str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=r, world_size=WORLD)
    try:
        results = {"gather": _gather_cases(r), "engine": _engine_cases(r),
                   "backend": distributed.backend()}
        plugins = load_plugins(autoload=False)
        local = slice(r * GLOBAL_BATCH // WORLD, (r + 1) * GLOBAL_BATCH // WORLD)
        for name in names:
            results[name] = one_step(build_tiny(plugins, name, EXACT), local)
        loop_method = "swav" if "swav" in names else "simclr"
        results["pretrain"] = _pretrain_case(plugins, loop_method, Path(out))
        torch.save(results, Path(out) / f"rank{r}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def spawned(tmp_path_factory) -> list[dict]:
    """What each of the 2 ranks computed (one spawn for every case below)."""
    out = tmp_path_factory.mktemp("ranks")
    names = [n for n in CROSS_BATCH_METHODS if ("methods", n) in load_plugins(autoload=False)
             .catalog]
    mp.spawn(_worker, args=(_free_port(), str(out), names), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def test_gather_concatenates_in_rank_order(spawned):
    expected = torch.cat([torch.arange(6.0).view(3, 2), 2 * torch.arange(6.0).view(3, 2)])
    for r in range(WORLD):
        assert torch.equal(spawned[r]["gather"]["y"], expected)
        assert spawned[r]["backend"] == "gloo"


def test_gather_gradient_is_the_sum_over_ranks(spawned):
    # rank s weights the gathered [6, 2] by (s + 1) * arange; rank r's slice is rows 3r..3r+2,
    # so its gradient is (1 + 2) * arange[3r:3r+3]; keeping only the local loss's slice would
    # give (r + 1) * arange[3r:3r+3] instead
    arange = torch.arange(12.0).view(6, 2)
    for r in range(WORLD):
        assert torch.equal(spawned[r]["gather"]["grad"], 3 * arange[3 * r:3 * r + 3])


def test_uneven_shards_are_reassembled_in_order(spawned):
    assert [spawned[r]["gather"]["shard"] for r in range(WORLD)] == [(0, 3), (3, 5)]
    for r in range(WORLD):
        assert torch.equal(spawned[r]["gather"]["shards"], torch.arange(5.0).view(-1, 1))


def _relative_error(got: dict, want: dict) -> float:
    """``|g - g_ref| / |g_ref|`` over all parameters' gradients as one vector.

    Per tensor it would not do: a bias gradient after a normalisation is a sum that nearly
    cancels, so float32 rounding in another summation order is large relative to it. A gather
    that drops the other ranks' gradient is off by tens of percent either way.
    """
    a = torch.cat([got[k].flatten() for k in want])
    b = torch.cat([v.flatten() for v in want.values()])
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("name", CROSS_BATCH_METHODS)
def test_two_processes_match_one_process_with_the_global_batch(name, spawned, plugins):
    if ("methods", name) not in plugins.catalog:
        pytest.skip(f"method {name!r} is not registered (not implemented yet)")
    reference = one_step(build_tiny(plugins, name, EXACT), slice(None))
    assert reference["grads"], f"{name}: no parameter received a gradient"
    for r in range(WORLD):
        got = spawned[r][name]
        assert abs(got["loss"] - reference["loss"]) <= RTOL * abs(reference["loss"]), (
            f"{name} rank {r}: loss {got['loss']} != single-process {reference['loss']}")
        assert got["grads"].keys() == reference["grads"].keys()
        err = _relative_error(got["grads"], reference["grads"])
        assert err <= GRAD_RTOL, f"{name} rank {r}: gradients off by {err:.2e} (relative)"


def test_pretraining_keeps_every_rank_identical(spawned, tmp_path_factory):
    # DDP averages the gradients, so every rank applies the same update: bitwise equal weights,
    # also across SwAV's unfreezing of its prototypes after the first epoch
    states = [spawned[r]["pretrain"]["state"] for r in range(WORLD)]
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key
    losses = [spawned[r]["pretrain"]["final_loss"] for r in range(WORLD)]
    assert losses[0] == losses[1]  # the logged loss is the mean over processes


def test_each_rank_takes_its_share_of_every_global_batch(spawned):
    # global batch 1 (of 16) of the order 0..39 is 16..31: rank 0 takes 16..23, rank 1 24..31
    assert spawned[0]["engine"]["index"] == list(range(16, 24))
    assert spawned[1]["engine"]["index"] == list(range(24, 32))


def test_a_non_finite_loss_on_one_rank_stops_every_rank(spawned):
    for r in range(WORLD):
        assert spawned[r]["engine"]["stopped"].startswith("non-finite loss at step 5, epoch 1 ")


def test_global_batch_must_divide_over_processes(spawned):
    assert spawned[0]["engine"]["odd_batch"] == (
        "--batch-size 15 is the global batch: it must divide evenly over the 2 processes")


@pytest.mark.slow
def test_torchrun_writes_one_record_and_one_checkpoint(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1",
           "SSLBENCH_DATA": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           str(WORLD), "-m", "sslbench", "run", "simclr", "resnet18", "digits", "--epochs", "1",
           "--batch-size", "64", "--set", "data.image_size=8", "--set", "data.train_subset=256",
           "--set", "eval.linear.epochs=2",
           "--quiet", "--device", "cpu"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = list((tmp_path / "results").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["status"] == "completed"
    assert record["cost"]["num_devices"] == WORLD
    assert record["cost"]["backend"] == "gloo"
    assert record["metrics"]["final_loss"] > 0
    assert len(list((tmp_path / "runs").glob("*/checkpoint.pt"))) == 1
    rows = (next((tmp_path / "runs").glob("*/metrics.csv"))).read_text().splitlines()
    assert sum(row.startswith("phase,") for row in rows) == 1  # one writer, one header
    assert done.stdout.count("linear Acc@1") == 1  # one summary, not one per process


def _torchrun(folder: Path, *extra: str) -> subprocess.Popen:
    """``torchrun`` of 2 CPU processes: SimCLR on digits, one epoch of 8 steps, a log (and so a
    sync point where the processes agree on stopping) every 2 steps."""
    folder.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLBENCH_DISABLE_PLUGIN_AUTOLOAD": "1",
           "SSLBENCH_DATA": str(folder / "data")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           str(WORLD), "-m", "sslbench", "run", "simclr", "resnet18", "digits", "--epochs", "1",
           "--batch-size", "64", "--set", "data.image_size=8", "--set", "data.train_subset=512",
           "--set", "eval.linear.epochs=1", "--set", "eval.train_subset=256",
           "--set", "pretrain.log_every=2", "--checkpoint-every", "2", "--quiet", "--device",
           "cpu", *extra]
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.mark.slow
def test_sigterm_under_torchrun_stops_every_rank_at_one_step_and_resumes_exactly(tmp_path):
    straight = _torchrun(tmp_path / "straight")
    stopped = _torchrun(tmp_path / "stopped")
    deadline = time.monotonic() + 300
    while not list((tmp_path / "stopped").glob("runs/*/checkpoint.pt")):
        assert stopped.poll() is None and time.monotonic() < deadline, stopped.communicate()[0]
        time.sleep(0.01)
    os.killpg(stopped.pid, signal.SIGTERM)  # as Slurm does: torchrun and both workers
    output, _ = stopped.communicate(timeout=300)
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == WORLD, output  # one line per process (torchrun adds its own report)
    [checkpoint] = (tmp_path / "stopped").glob("runs/*/checkpoint.pt")
    step = load_checkpoint(checkpoint)["step"]
    assert step % 2 == 0 and 0 < step < 8  # a sync point, and mid-epoch
    where = f"error: terminated by SIGTERM at step {step} of 8: "
    assert sorted(lines) == [
        f"{where}checkpoint saved to {checkpoint.relative_to(tmp_path / 'stopped')}; "
        "continue with --resume", f"{where}no checkpoint on this process"]
    assert len(load_checkpoint(checkpoint)["ranks"]) == WORLD  # each process's own RNGs
    assert not list((tmp_path / "stopped").glob("results/*.json"))

    resumed = _torchrun(tmp_path / "stopped", "--resume")
    for proc in (resumed, straight):
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]
    [a], [b] = (list((tmp_path / d).glob("results/*.json")) for d in ("stopped", "straight"))
    rec_a, rec_b = json.loads(a.read_text()), json.loads(b.read_text())
    assert rec_a["metrics"] == rec_b["metrics"] and rec_a["metrics"]["final_loss"] > 0
    [ca], [cb] = (list((tmp_path / d).glob("runs/*/checkpoint.pt")) for d in ("stopped",
                                                                              "straight"))
    for key, value in load_checkpoint(cb)["model"].items():
        assert torch.equal(load_checkpoint(ca)["model"][key], value), key
