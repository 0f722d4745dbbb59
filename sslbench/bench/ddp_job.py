"""One matrix job as a multi-process DDP job under submitit (Slurm, or its local cluster).

Each of the job's ``nodes x tasks_per_node`` tasks runs :func:`execute_cells` after exporting
what ``torch.distributed``'s ``env://`` rendezvous reads (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) from submitit's job environment, so that
:func:`sslbench.engine.distributed.setup` joins the process group exactly as under torchrun:
one code path, one record (rank 0 writes it).

Pre-emption: the job is :class:`submitit.helpers.Checkpointable`; when Slurm pre-empts or times
it out, submitit requeues the same call, and ``resume="auto"`` continues each cell from its
last checkpoint (exactly, on every rank).
"""

from __future__ import annotations

from dataclasses import replace

import submitit

from sslbench.bench.run import RunOptions


class DistributedCells(submitit.helpers.Checkpointable):
    """``execute_cells`` on every task of a multi-task job, as one process group."""

    def __call__(self, cfg_jsons: list[str], opts: RunOptions):
        from sslbench.bench.executors import execute_cells

        # each task keeps every GPU visible: setup() takes cuda:LOCAL_RANK, as under torchrun
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return execute_cells(cfg_jsons, replace(opts, resume="auto"))
