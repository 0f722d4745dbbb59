"""The logger contract: what a run tells an experiment tracker (TensorBoard, W&B, MLflow, …).

A logger is registered with ``sslbench_register_loggers(register)`` as a factory (a class is
one) called ``factory(run_dir, run_id, options)``: the run's folder, its id, and a dict of
logger options (empty from the command line; the trackers' own environment variables, such as
``WANDB_PROJECT`` or ``MLFLOW_TRACKING_URI``, configure them there). The object it returns
receives, in this order:

* ``start(config)`` once, with the run's resolved config (the dict stored in its record);
* ``log(phase, step, values)`` for every row the run logs: ``phase`` is ``"pretrain"`` or
  ``"linear"``, ``step`` that phase's optimisation step, ``values`` plain floats (``epoch``,
  ``loss``, ``lr``, ``images_per_second``; ``test_loss``, ``test_acc1``, ``test_acc5`` after
  each linear-probe epoch);
* ``finish(record)`` once, with the final run record as a JSON-ready dict (``status`` is
  ``"completed"`` or ``"failed"`` with its ``reason``);
* ``close()`` last, always, also when the run stopped early.

A tracker's client package is imported inside the logger, never at module level, so that the
plugin loads (and ``sslbench list loggers`` shows it) without the package. Register it with
``requires="<module>"`` (and ``extra="<pip extra>"`` for sslbench's own): selecting it while the
module is missing is then a one-line usage error before the run starts. Apart from ``csv``
(``metrics.csv``, which the plots and ``--resume`` read), an exception from a logger costs the
run nothing: it is reported once as a warning and that logger is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Logger(Protocol):
    """One run's connection to one experiment tracker (see the module docstring)."""

    def start(self, config: dict[str, Any]) -> None: ...

    def log(self, phase: str, step: int, values: dict[str, float]) -> None: ...

    def finish(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class LoggerFactory(Protocol):
    def __call__(self, run_dir: Path, run_id: str, options: dict[str, Any]) -> Logger: ...


