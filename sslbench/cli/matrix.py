"""``sslbench matrix``: run method × backbone × dataset × seed, skipping what is already done."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from sslbench.cli import app
from sslbench.cli import options as opt
from sslbench.cli.catalog import load
from sslbench.errors import SSLBenchError, UsageError

Executor = Enum("Executor", {"local": "local", "slurm": "slurm",
                             "submitit_local": "submitit-local"}, type=str)


@app.command()
def matrix(
    file: Path | None = typer.Argument(None, help="Matrix TOML file (see docs)."),
    methods: str | None = typer.Option(None, help="Comma list, or '*' for all registered."),
    backbones: str | None = typer.Option(None, help="Comma list, or '*'."),
    datasets: str | None = typer.Option(None, help="Comma list, or '*'."),
    seeds: str | None = typer.Option(None, help="Seeds: 0,1,2 or 0-2 (default 0)."),
    epochs: opt.Epochs = None,
    batch_size: opt.BatchSize = None,
    lr: opt.Lr = None,
    config: opt.ConfigFile = None,
    set_: opt.Sets = [],  # noqa: B006 - typer copies list defaults
    device: opt.Device = "auto",
    data_dir: opt.DataDir = opt.DATA_DIR,
    output_dir: opt.OutputDir = opt.OUTPUT_DIR,
    results_dir: opt.ResultsDir = opt.RESULTS_DIR,
    download: opt.Download = True,
    dry_run: bool = typer.Option(False, help="List the cells and which would be skipped."),
    rerun: bool = typer.Option(False, help="Run cells even if a completed record exists."),
    executor: Executor = typer.Option(Executor.local, help="local, slurm or submitit-local "
                                      "(the Slurm code path, run on this machine)."),
    jobs: int = typer.Option(1, min=1, help="local: cells run at once, in processes."),
    partition: str | None = typer.Option(None, help="slurm: partition."),
    account: str | None = typer.Option(None, help="slurm: account."),
    gpus_per_node: int | None = typer.Option(None, min=0, help="slurm: GPUs per job "
                                             "(default 1, 0 with --device cpu)."),
    nodes: int = typer.Option(1, min=1, help="slurm: nodes per job; each job is one DDP run "
                              "of nodes x tasks-per-node processes."),
    tasks_per_node: int | None = typer.Option(None, min=1, help="slurm: processes per node "
                                              "(default: one per GPU)."),
    time_min: int = typer.Option(60, min=1, help="slurm: time limit per cell, minutes."),
    array_parallelism: int | None = typer.Option(None, min=1, help="slurm: array tasks at once."),
    cells_per_job: int = typer.Option(1, min=1, help="slurm: cells run one after another in "
                                      "each array task (for short cells)."),
    quiet: opt.Quiet = False,
    log: opt.Log = None,
) -> None:
    """Run every cell of a matrix (each one `sslbench run`); completed cells are skipped."""
    from sslbench.bench import matrix as matrices
    from sslbench.bench.executors import LocalExecutor, SubmititExecutor
    from sslbench.bench.loggers import check_loggers, parse_log
    from sslbench.bench.run import RunOptions

    spec = matrices.load_matrix_file(file) if file else matrices.MatrixSpec()
    for attr, text in (("methods", methods), ("backbones", backbones), ("datasets", datasets)):
        if text is not None:
            setattr(spec, attr, matrices.split_list(text))
    if seeds is not None:
        spec.seeds = matrices.parse_seeds(seeds)
    if file is None and not (spec.methods and spec.backbones and spec.datasets):
        raise UsageError("give a matrix file, or --methods, --backbones and --datasets")
    plugins = load()
    loggers = parse_log(log)
    check_loggers(plugins.catalog, loggers)  # before any cell starts
    cells = matrices.expand(spec, plugins.catalog, config_file=config, sets=set_,
                            overrides=opt.flag_overrides(epochs, batch_size, lr))
    opts = RunOptions(device=device, data_dir=data_dir, output_dir=output_dir,
                      results_dir=results_dir, download=download, quiet=quiet,
                      log=tuple(loggers))
    if dry_run:
        _dry_run(cells, results_dir, rerun)
        return
    if executor is Executor.local:
        runner = LocalExecutor(jobs=jobs, plugins=plugins if jobs == 1 else None)
    else:
        gpus = gpus_per_node if gpus_per_node is not None else int(device != "cpu")
        runner = SubmititExecutor(
            folder=output_dir / "submitit", cluster="slurm" if executor is Executor.slurm
            else "local", partition=partition, gpus_per_node=gpus, time_min=time_min,
            account=account, array_parallelism=array_parallelism, cells_per_job=cells_per_job,
            nodes=nodes, tasks_per_node=tasks_per_node)
    summary = matrices.run_matrix(cells, runner, opts, rerun=rerun, report=typer.echo)
    typer.echo(summary.line())
    if summary.failed:
        raise SSLBenchError(f"{len(summary.failed)} of {len(cells)} cells failed; their "
                            f"records in {results_dir} say why")


def _dry_run(cells: list, results_dir: Path, rerun: bool) -> None:
    from sslbench.bench import matrix as matrices

    planned = matrices.plan(cells, results_dir, rerun)
    for cell, skip in planned:
        cfg = cell.config
        what = "skip" if skip else "run "
        typer.echo(f"{what}  {cell.run_id}  ({cfg.pretrain.epochs} epochs, "
                   f"batch {cfg.pretrain.batch_size})")
    skipped = sum(skip for _, skip in planned)
    typer.echo(f"{len(planned)} cells: {len(planned) - skipped} to run, {skipped} skipped "
               f"(completed records in {results_dir})")
