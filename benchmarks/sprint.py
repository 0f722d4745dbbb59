"""The fidelity sprint: one method pretrained on all of Fashion-MNIST for a fixed time budget,
evaluated and recorded like any `sslbench run`.

    python -m benchmarks.sprint simclr --data-dir D --results-dir R --out O [--small]

Full-width ResNet-18 at 32 px (resized from 28), batch 512, on all 60,000 training images;
kNN and the linear probe fit on all 60,000 too (the CPU recipe's 10k subsets are lifted).
The number of epochs is computed before the run from a throughput measured here, on the device,
with the engine's own training step at the sprint's sizes: ``floor(budget * images/s * 0.8 /
60,000)`` (0.8: epochs also pay the data shuffle, logging and an atomic checkpoint). So the record
states a fixed epoch count, the same for anyone who reruns it, and the run takes about the
budget. ``--small`` is the same path at CPU sizes (batch 32, 8 px, a few seconds), for the test
suite. Writes ``sprint-<method>.json`` into ``--out`` (the figures and the command) and the
ordinary record into ``--results-dir``; run folders (checkpoints) go to ``--output-dir``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

SAFETY = 0.8  # share of the measured step throughput a whole epoch keeps


@dataclass(frozen=True)
class Profile:
    batch: int
    size: int
    budget_s: float  # pretraining seconds the epoch count aims at
    linear_epochs: int
    warmup_steps: int
    timed_steps: int
    max_epochs: int | None = None


FULL = Profile(batch=512, size=32, budget_s=150.0, linear_epochs=30, warmup_steps=5,
               timed_steps=20)
SMALL = Profile(batch=32, size=8, budget_s=2.0, linear_epochs=2, warmup_steps=1, timed_steps=2,
                max_epochs=2)


def measure_throughput(method: str, device: str, p: Profile) -> float:
    """Source images/s of the engine's training step at the sprint's sizes (synthetic data)."""
    import torch

    from benchmarks import harness

    sizes = harness.Sizes(device=device, batch=p.batch, size=p.size, steps=p.timed_steps,
                          repeats=1, workers=0, backbone="resnet18", precision="auto",
                          channels_last=True, compile=False)
    engine = harness.build_engine(method, sizes)
    for _ in range(p.warmup_steps):
        engine.step()
    seconds = harness.timed(engine.step, engine.ctx.device, p.timed_steps)
    del engine
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return p.batch / seconds


def epochs_for(images_per_second: float, n_train: int, p: Profile) -> int:
    """Whole epochs that fit the budget at the measured speed (at least one)."""
    epochs = max(1, math.floor(p.budget_s * images_per_second * SAFETY / n_train))
    return min(epochs, p.max_epochs) if p.max_epochs else epochs


def run_args(method: str, epochs: int, p: Profile, a: argparse.Namespace) -> list[str]:
    """The `sslbench run` command line of the sprint."""
    return ["run", method, "resnet18", "fashion-mnist", "--epochs", str(epochs),
            "--batch-size", str(p.batch), "--device", a.device, "--data-dir", str(a.data_dir),
            "--results-dir", str(a.results_dir), "--output-dir", str(a.output_dir),
            "--no-download", "--quiet",
            "--set", "backbone.width=1", "--set", f"data.image_size={p.size}",
            "--set", "data.train_subset=null", "--set", "eval.train_subset=null",
            "--set", f"eval.linear.epochs={p.linear_epochs}"]


def invoke(args: list[str]) -> int:
    """Run the sslbench CLI in this process (torch and the device are already initialised)."""
    from sslbench.cli import app

    try:
        app(args, prog_name="sslbench")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument("--output-dir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path(".benchmarks/gpu"))
    parser.add_argument("--small", action="store_true", help="CPU sizes, for the test suite")
    parser.add_argument("--budget", type=float, default=None, help="pretraining seconds")
    a = parser.parse_args(argv)
    p = SMALL if a.small else FULL
    if a.budget is not None:
        p = replace(p, budget_s=a.budget)
    n_train = _train_images(a.data_dir)
    ips = measure_throughput(a.method, a.device, p)
    epochs = epochs_for(ips, n_train, p)
    args = run_args(a.method, epochs, p, a)
    print(f"sprint {a.method}: {ips:.0f} img/s measured at batch {p.batch}, {p.size} px -> "
          f"{epochs} epochs of {n_train} images in ~{p.budget_s:.0f} s", flush=True)
    start = time.perf_counter()
    code = invoke(args)
    summary = {"method": a.method, "measured_images_per_second": ips, "epochs": epochs,
               "train_images": n_train, "profile": asdict(p), "safety": SAFETY,
               "exit_code": code, "wall_seconds": time.perf_counter() - start,
               "command": "sslbench " + " ".join(args), "record": _record(a, code)}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"sprint-{a.method}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return code


def _train_images(data_dir: Path) -> int:
    """Training images in the IDX file (its header says), without loading them."""
    header = (data_dir / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").open("rb").read(8)
    return int.from_bytes(header[4:8], "big")


def _record(a: argparse.Namespace, code: int) -> dict | None:
    """The newest record of this sprint's results folder (what the run just wrote)."""
    records = sorted(a.results_dir.glob(f"{a.method}-*.json"), key=lambda q: q.stat().st_mtime)
    if code or not records:
        return None
    doc = json.loads(records[-1].read_text())
    return {"path": str(records[-1]), "metrics": doc["metrics"], "cost": doc["cost"],
            "device_name": doc["provenance"].get("device_name")}


if __name__ == "__main__":
    sys.exit(main())
