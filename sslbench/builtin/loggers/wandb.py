"""Weights & Biases: one W&B run per sslbench run (``pip install 'sslbench[wandb]'``).

W&B's own settings apply: ``WANDB_MODE=offline`` keeps the run in ``wandb/`` under the run
folder (``wandb sync`` uploads it later), ``WANDB_PROJECT`` / ``WANDB_ENTITY`` say where it
goes (project ``sslbench`` by default), ``WANDB_DIR`` moves the local files. Options (from the
Python API): ``project``, ``entity``, ``mode``, ``dir``.

The W&B run is named after the sslbench run id and tagged with method, backbone and dataset;
its config is the resolved config. Pretraining and the linear probe count their own steps, so
each phase has its own step metric (``pretrain/step``, ``linear/step``) instead of W&B's single
global step, which must only grow. The record's metrics and cost end up in the run summary,
and a failed run finishes with exit code 1.
"""

from __future__ import annotations

import os
from pathlib import Path

from sslbench import hookimpl


class WandbLogger:
    """A Weights & Biases run, online or WANDB_MODE=offline (needs the wandb package)."""

    def __init__(self, run_dir: Path, run_id: str, options: dict) -> None:
        import wandb  # lazily: the plugin loads without the package

        self._wandb = wandb
        self.run_dir, self.run_id, self.options = Path(run_dir), run_id, dict(options)
        self.run = None
        self._phases: set[str] = set()

    def start(self, config: dict) -> None:
        names = [(config.get(k) or {}).get("name") for k in ("method", "backbone", "data")]
        folder = self.options.get("dir") or (None if os.environ.get("WANDB_DIR") else self.run_dir)
        self.run = self._wandb.init(
            project=self.options.get("project") or os.environ.get("WANDB_PROJECT") or "sslbench",
            entity=self.options.get("entity"), mode=self.options.get("mode"),
            dir=str(folder) if folder else None,
            name=self.run_id, config=config, tags=[n for n in names if n])

    def log(self, phase: str, step: int, values: dict[str, float]) -> None:
        if phase not in self._phases:
            self.run.define_metric(f"{phase}/step")
            self.run.define_metric(f"{phase}/*", step_metric=f"{phase}/step")
            self._phases.add(phase)
        self.run.log({f"{phase}/step": step, **{f"{phase}/{k}": v for k, v in values.items()}})

    def finish(self, record: dict) -> None:
        summary = {f"final/{k}": v for k, v in (record.get("metrics") or {}).items()
                   if v is not None}
        summary.update({f"cost/{k}": v for k, v in (record.get("cost") or {}).items()
                        if isinstance(v, int | float) and not isinstance(v, bool)})
        summary["status"] = record.get("status")
        if record.get("reason"):
            summary["reason"] = record["reason"]
        self.run.summary.update(summary)
        run, self.run = self.run, None
        run.finish(exit_code=0 if record.get("status") == "completed" else 1)

    def close(self) -> None:
        if self.run is not None:  # stopped before finish(): the W&B run ends as failed
            run, self.run = self.run, None
            run.finish(exit_code=1)


@hookimpl
def sslbench_register_loggers(register):
    register("wandb", WandbLogger, display="Weights & Biases", requires="wandb", extra="wandb")
