"""Where the cells of a matrix run: in this process, in N local processes, or on Slurm.

Every executor runs the same function, :func:`execute_cell`, which calls
:func:`sslbench.bench.run.run_cell` and turns any error into a ``failed`` record with its reason,
so one broken cell never stops the others. Ctrl-C is not an error of a cell: it stops the matrix;
records are written atomically, so an interrupted cell leaves no record at all and runs again
next time.

``submitit`` drives Slurm (one job array per matrix); its ``local`` cluster runs the very same
code path in subprocesses on this machine, which is how the tests and CI exercise it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from sslbench.bench import provenance
from sslbench.bench.cell import Cell
from sslbench.bench.loggers import logger_specs
from sslbench.bench.resolve import cell_from_config
from sslbench.bench.run import RunOptions, run_cell
from sslbench.core.config import RunConfig
from sslbench.core.plugins import Plugins, load_plugins
from sslbench.core.records import RunRecord
from sslbench.core.store import RecordStore
from sslbench.errors import Stopped


@dataclass(frozen=True)
class Outcome:
    run_id: str
    status: Literal["done", "failed"]
    reason: str | None = None


def execute_cell(cfg_json: str, opts: RunOptions, plugins: Plugins | None = None) -> Outcome:
    """Run one cell (its resolved config as JSON, so it crosses process boundaries; the cell is
    rebuilt from it here); raises only what stops the whole matrix
    (:class:`~sslbench.errors.Stopped`: Ctrl-C or SIGTERM).

    A failure ``run_cell`` already recorded keeps its record; any other one gets a ``failed``
    record here, with the exception as its reason (never over a completed record).
    """
    cfg = RunConfig.model_validate_json(cfg_json)
    cell = None
    try:
        plugins = plugins or load_plugins()
        cell = cell_from_config(plugins.catalog, cfg)
        run_cell(cell, opts, logger_specs(plugins.catalog, opts.log, opts.log_options))
        return Outcome(cell.run_id, "done")
    except Stopped:  # Ctrl-C or SIGTERM: not the cell's failure; the whole matrix stops
        raise
    except Exception as exc:  # noqa: BLE001 - a cell's failure is data for the registry
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        if cell is None:
            return Outcome(f"{cfg.method.name}-{cfg.backbone.name}-{cfg.data.name}-s{cfg.seed}",
                           "failed", reason)
        if not getattr(exc, "recorded", False):
            record_failure(cell, opts, reason)
        return Outcome(cell.run_id, "failed", str(exc) if getattr(exc, "recorded", False)
                       else reason)


def execute_cells(cfg_jsons: list[str], opts: RunOptions) -> list[Outcome]:
    """Several cells one after another in one process (one job of an array): plugins load once."""
    plugins = load_plugins()
    return [execute_cell(cfg_json, opts, plugins) for cfg_json in cfg_jsons]


def record_failure(cell: Cell, opts: RunOptions, reason: str) -> None:
    """The ``failed`` record of a cell that stopped before ``run_cell`` could write one."""
    cfg = cell.config
    RecordStore(opts.results_dir).save(RunRecord(
        run_id=cell.run_id, status="failed", reason=reason, method=cfg.method.name,
        backbone=cfg.backbone.name, dataset=cfg.data.name, **cell.displays, seed=cfg.seed,
        epochs=cfg.pretrain.epochs, config=cfg.model_dump(mode="json"),
        config_hash=cell.config_hash, attempt=opts.attempt,
        provenance=provenance.collect(None, cell.plugins),
        artifacts={"run_dir": str(Path(opts.output_dir) / cell.run_id)}))


def absolute(opts: RunOptions) -> RunOptions:
    """Paths that mean the same in another process or on another node."""
    return replace(opts, data_dir=Path(opts.data_dir).expanduser().resolve(),
                   output_dir=Path(opts.output_dir).resolve(),
                   results_dir=Path(opts.results_dir).resolve())


@dataclass
class LocalExecutor:
    """Cells one after another in this process (``jobs=1``), or in ``jobs`` processes.

    With several processes each takes a share of the CPU threads, and, when the device is
    ``auto``/``cuda`` and several GPUs are visible, a GPU of its own (round robin).
    """

    jobs: int = 1
    plugins: Plugins | None = None

    def run(self, cells: Sequence[Cell], opts: RunOptions) -> Iterator[Outcome]:
        if self.jobs <= 1:
            for cell in cells:
                yield execute_cell(cell.config.model_dump_json(), opts, self.plugins)
            return
        yield from self._pool([c.config for c in cells], absolute(opts))

    def _pool(self, cfgs: Sequence[RunConfig], opts: RunOptions) -> Iterator[Outcome]:
        ctx = mp.get_context("spawn")  # no forked copies of torch's thread pools
        devices = ctx.Queue()
        for slot in range(self.jobs):
            devices.put(_slot_device(opts.device, slot))
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        pool = ProcessPoolExecutor(self.jobs, mp_context=ctx, initializer=_init_worker,
                                   initargs=(devices, threads))
        try:
            futures = [pool.submit(_pooled_cell, cfg.model_dump_json(), opts) for cfg in cfgs]
            for future in as_completed(futures):
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _slot_device(device: str, slot: int) -> str:
    if device not in ("auto", "cuda"):
        return device
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{slot % count}" if count > 1 else device


_WORKER_DEVICE: str | None = None


def _init_worker(devices, threads: int) -> None:
    import torch

    global _WORKER_DEVICE
    _WORKER_DEVICE = devices.get()
    torch.set_num_threads(threads)


def _pooled_cell(cfg_json: str, opts: RunOptions) -> Outcome:
    return execute_cell(cfg_json, replace(opts, device=_WORKER_DEVICE or opts.device,
                                          quiet=True))


@dataclass
class SubmititExecutor:
    """One job array through submitit: ``cluster="slurm"``, or ``"local"`` for this machine.

    ``cells_per_job`` > 1 runs that many cells one after another in each array task: fewer,
    longer jobs where cells are short (the scheduler's and the interpreter's start-up amortised).

    ``nodes`` x ``tasks_per_node`` processes per job (``tasks_per_node`` defaults to
    ``gpus_per_node``, one process per GPU) make each job one DDP run
    (:mod:`sslbench.bench.ddp_job`), requeued on pre-emption and resumed from its checkpoint.
    """

    folder: Path
    cluster: str = "slurm"
    partition: str | None = None
    gpus_per_node: int = 1
    time_min: int = 60
    account: str | None = None
    array_parallelism: int | None = None
    cpus_per_task: int | None = None
    cells_per_job: int = 1
    nodes: int = 1
    tasks_per_node: int | None = None  # None: one per GPU (at least one)

    def run(self, cells: Sequence[Cell], opts: RunOptions) -> Iterator[Outcome]:
        import submitit

        # job logs, not progress bars; the attempt token tells this submission's records apart
        opts = replace(absolute(opts), quiet=True, attempt=uuid.uuid4().hex)
        executor = submitit.AutoExecutor(folder=Path(self.folder).resolve(), cluster=self.cluster)
        executor.update_parameters(
            name="sslbench", timeout_min=self.time_min * self.cells_per_job,
            gpus_per_node=self.gpus_per_node, cpus_per_task=self.cpus_per_task,
            slurm_partition=self.partition, slurm_account=self.account,
            slurm_array_parallelism=self.array_parallelism)
        tasks = self.tasks_per_node or max(1, self.gpus_per_node)
        function = execute_cells
        if tasks * self.nodes > 1:
            from sslbench.bench.ddp_job import DistributedCells

            executor.update_parameters(tasks_per_node=tasks, nodes=self.nodes)
            function = DistributedCells()
        size = max(1, self.cells_per_job)
        chunks = [list(cells[i:i + size]) for i in range(0, len(cells), size)]
        with executor.batch():
            jobs = [executor.submit(function,
                                    [c.config.model_dump_json() for c in chunk], opts)
                    for chunk in chunks]
        try:
            for chunk, job in zip(chunks, jobs, strict=True):
                yield from self._results(chunk, job, opts)
        except BaseException:  # Ctrl-C: do not leave jobs running on the cluster
            for job in jobs:
                job.cancel(check=False)
            raise

    @staticmethod
    def _results(chunk: list[Cell], job, opts: RunOptions) -> list[Outcome]:
        try:
            return job.result()
        except Exception as exc:  # noqa: BLE001 - the job died outside a cell (time limit)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            reason = f"job {job.job_id} failed: {' '.join(first.split())[:300]}"
        outcomes, store = [], RecordStore(opts.results_dir)
        for cell in chunk:  # cells the job finished before it died keep their records
            record = store.read(cell.run_id)
            if record is not None and record.attempt == opts.attempt:  # written by this job
                status = "done" if record.status == "completed" else "failed"
                outcomes.append(Outcome(cell.run_id, status, record.reason))
                continue
            record_failure(cell, opts, reason)
            outcomes.append(Outcome(cell.run_id, "failed", reason))
        return outcomes
