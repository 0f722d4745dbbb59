"""TensorBoard event files in ``runs/<run-id>/tensorboard/`` (``tensorboard --logdir runs``).

Written with PyTorch's ``torch.utils.tensorboard.SummaryWriter``, which needs the
``tensorboard`` package (``pip install 'sslbench[tensorboard]'``). Each value of a row is the
scalar ``<phase>/<name>`` at that phase's step (``pretrain/loss``, ``linear/test_acc1``, …);
the resolved config is a text summary at the start, and the final figures of the record are
the scalars ``final/<metric>``.
"""

from __future__ import annotations

import json
from pathlib import Path

from sslbench import hookimpl

FOLDER = "tensorboard"
FINAL = ("linear_acc1", "linear_acc5", "knn_acc1", "final_loss")


class TensorBoardLogger:
    """TensorBoard event files in runs/<run-id>/tensorboard (needs the tensorboard package)."""

    def __init__(self, run_dir: Path, run_id: str, options: dict) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        log_dir = options.get("log_dir") or Path(run_dir) / FOLDER
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def start(self, config: dict) -> None:
        self.writer.add_text("config", _code(config), global_step=0)

    def log(self, phase: str, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{phase}/{name}", value, global_step=step)

    def finish(self, record: dict) -> None:
        for name in FINAL:
            value = (record.get("metrics") or {}).get(name)
            if value is not None:
                self.writer.add_scalar(f"final/{name}", value, global_step=0)
        summary = {k: record.get(k) for k in ("run_id", "status", "reason", "metrics", "cost")}
        self.writer.add_text("record", _code(summary), global_step=0)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _code(data: dict) -> str:
    """JSON as a Markdown code block (TensorBoard renders text summaries as Markdown)."""
    body = json.dumps(data, indent=2, default=str)
    return "\n".join("    " + line for line in body.splitlines())


@hookimpl
def sslbench_register_loggers(register):
    register("tensorboard", TensorBoardLogger, display="TensorBoard", requires="tensorboard",
             extra="tensorboard")
