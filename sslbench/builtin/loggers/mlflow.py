"""MLflow: one MLflow run per sslbench run (``pip install 'sslbench[mlflow]'``; mlflow-skinny is
enough).

The tracking URI is MLflow's own ``MLFLOW_TRACKING_URI`` (a server, a database) or, without
one, a file store beside the run folders (``runs/mlruns``; ``mlflow ui --backend-store-uri
runs/mlruns``). MLflow 3 keeps the file store in maintenance mode and refuses it unless
``MLFLOW_ALLOW_FILE_STORE`` is set; it is what works without a server or a database, so this
logger sets that variable (unless it is already set) when the URI it uses is a ``file:`` one. The
experiment is ``MLFLOW_EXPERIMENT_NAME`` or ``sslbench``. Options (from the Python API):
``tracking_uri``, ``experiment``.

The run is named after the sslbench run id; its parameters are the resolved config as dotted
keys (``pretrain.optimizer.lr``), its metrics ``<phase>/<name>`` at each phase's step, the
record's figures ``final/<metric>`` and ``cost/<name>``, and the record itself the artifact
``record.json``. A failed sslbench run ends as a FAILED MLflow run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sslbench import flatten, hookimpl

BATCH = 100  # MLflow's limit of parameters per log_batch call


class MlflowLogger:
    """An MLflow run on a tracking server or a local file store (needs mlflow or mlflow-skinny)."""

    def __init__(self, run_dir: Path, run_id: str, options: dict) -> None:
        from mlflow.entities import Metric, Param  # lazily: the plugin loads without mlflow
        from mlflow.tracking import MlflowClient

        self._metric, self._param = Metric, Param
        uri = (options.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
               or (Path(run_dir).parent / "mlruns").resolve().as_uri())
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        self.tracking_uri = uri
        self.run_id, self.options = run_id, dict(options)
        self.mlflow_run_id: str | None = None
        self._ended = False

    def start(self, config: dict) -> None:
        name = (self.options.get("experiment") or os.environ.get("MLFLOW_EXPERIMENT_NAME")
                or "sslbench")
        tags = {"sslbench.run_id": self.run_id}
        tags.update({f"sslbench.{k}": (config.get(k) or {}).get("name", "")
                     for k in ("method", "backbone", "data")})
        run = self.client.create_run(self._experiment(name), run_name=self.run_id, tags=tags)
        self.mlflow_run_id = run.info.run_id
        params = [self._param(k, json.dumps(v) if isinstance(v, list | dict) else str(v))
                  for k, v in flatten(config).items()]
        for i in range(0, len(params), BATCH):
            self.client.log_batch(self.mlflow_run_id, params=params[i:i + BATCH])

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:  # another process created it in between
            return self.client.get_experiment_by_name(name).experiment_id

    def log(self, phase: str, step: int, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        metrics = [self._metric(f"{phase}/{k}", v, now, step) for k, v in values.items()]
        self.client.log_batch(self.mlflow_run_id, metrics=metrics)

    def finish(self, record: dict) -> None:
        now = int(time.time() * 1000)
        figures = {f"final/{k}": v for k, v in (record.get("metrics") or {}).items()
                   if isinstance(v, int | float)}  # not the few-label list
        figures.update({f"cost/{k}": v for k, v in (record.get("cost") or {}).items()
                        if isinstance(v, int | float) and not isinstance(v, bool)})
        metrics = [self._metric(k, float(v), now, 0) for k, v in figures.items() if v is not None]
        self.client.log_batch(self.mlflow_run_id, metrics=metrics)
        self.client.log_dict(self.mlflow_run_id, record, "record.json")
        if record.get("reason"):
            self.client.set_tag(self.mlflow_run_id, "sslbench.reason", record["reason"][:5000])
        status = "FINISHED" if record.get("status") == "completed" else "FAILED"
        self.client.set_terminated(self.mlflow_run_id, status)
        self._ended = True

    def close(self) -> None:
        if self.mlflow_run_id is not None and not self._ended:  # stopped before finish()
            self._ended = True
            self.client.set_terminated(self.mlflow_run_id, "KILLED")


@hookimpl
def sslbench_register_loggers(register):
    register("mlflow", MlflowLogger, display="MLflow", requires="mlflow", extra="mlflow")
