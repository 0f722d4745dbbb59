"""``sslbench run METHOD BACKBONE DATASET``: one pretraining + evaluation, one record."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand

from sslbench.cli import app
from sslbench.cli import options as opt
from sslbench.cli.catalog import load

if TYPE_CHECKING:
    from sslbench.core.records import RunRecord

Resume = Enum("Resume", {"yes": "yes", "auto": "auto"}, type=str)


class _RunCommand(TyperCommand):
    """``--resume`` alone means ``--resume yes``: Typer has no options with an optional value."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, bare_resume(args))


def bare_resume(args: list[str]) -> list[str]:
    """Give a bare ``--resume`` its implicit value ``yes`` (``--resume auto`` is kept)."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":  # the rest is positional
            return out + args[i:]
        out.append(arg)
        if arg == "--resume" and (i + 1 == len(args) or args[i + 1] not in Resume.__members__):
            out.append(Resume.yes.value)
    return out


@app.command(cls=_RunCommand)
def run(
    method: str = typer.Argument(..., help="SSL method, e.g. simclr (see `sslbench list`)."),
    backbone: str = typer.Argument(..., help="Backbone, e.g. resnet18."),
    dataset: str = typer.Argument(..., help="Dataset, e.g. digits, fashion-mnist, cifar10."),
    epochs: opt.Epochs = None,
    batch_size: opt.BatchSize = None,
    lr: opt.Lr = None,
    seed: int | None = typer.Option(None, min=0, show_default="0",
                                    help="Random seed (a cell of a matrix)."),
    config: opt.ConfigFile = None,
    set_: opt.Sets = [],  # noqa: B006 - typer copies list defaults
    device: opt.Device = "auto",
    data_dir: opt.DataDir = opt.DATA_DIR,
    output_dir: opt.OutputDir = opt.OUTPUT_DIR,
    results_dir: opt.ResultsDir = opt.RESULTS_DIR,
    download: opt.Download = True,
    resume: Resume | None = typer.Option(
        None, "--resume", metavar="[auto]",
        help="Continue from the run folder's checkpoint (exact: same weights and record as an "
             "uninterrupted run); `--resume auto` starts afresh when there is none."),
    checkpoint_every: int | None = typer.Option(
        None, min=1, help="Also checkpoint every N steps, mid-epoch (default: every epoch)."),
    eval_dataset: str | None = typer.Option(
        None, help="Transfer: evaluate on this dataset instead of DATASET (eval.dataset)."),
    dry_run: bool = typer.Option(False, help="Print the resolved config and exit."),
    quiet: opt.Quiet = False,
    log: opt.Log = None,
) -> None:
    """Pretrain METHOD on DATASET with BACKBONE, evaluate the frozen features, record it."""
    import yaml

    from sslbench.bench.loggers import logger_specs, parse_log
    from sslbench.bench.resolve import resolve_cell
    from sslbench.bench.run import RunOptions, run_cell
    from sslbench.engine import distributed

    plugins = load()
    loggers = parse_log(log)
    specs = logger_specs(plugins.catalog, loggers)  # a typo, a missing tracker package: exit 2
    cell = resolve_cell(plugins.catalog, method, backbone, dataset, config_file=config,
                        sets=set_,
                        overrides={**opt.flag_overrides(epochs, batch_size, lr), "seed": seed,
                                   "eval.dataset": eval_dataset})
    if dry_run:
        typer.echo(yaml.safe_dump(cell.config.model_dump(mode="json"), sort_keys=False),
                   nl=False)
        return
    opts = RunOptions(device=device, data_dir=data_dir, output_dir=output_dir,
                      results_dir=results_dir, download=download, quiet=quiet,
                      resume=resume.value if resume else False, checkpoint_every=checkpoint_every,
                      log=tuple(loggers))
    record = run_cell(cell, opts, specs)
    if distributed.is_main():  # under torchrun: one summary, not one per process
        typer.echo(summary(record, results_dir))


def summary(record: RunRecord, results_dir: Path) -> str:
    from sslbench.core.store import RecordStore

    m, c = record.metrics, record.cost

    def pct(value):
        return "–" if value is None else f"{value:.2f}%"

    ips = f"{c.images_per_second:.0f} img/s" if c.images_per_second else "no pretraining"
    mem = f", peak memory {c.peak_memory_mb:.0f} MB" if c.peak_memory_mb else ""
    precision = f", {c.precision}" if c.precision else ""
    plots = [v for k, v in record.artifacts.items() if k.startswith("plot_")]
    return "\n".join([
        f"{record.method} · {record.backbone} · {record.dataset} "
        f"(seed {record.seed}, {record.epochs} epochs)",
        f"  linear Acc@1 {pct(m.linear_acc1)}  Acc@5 {pct(m.linear_acc5)}  "
        f"kNN Acc@1 {pct(m.knn_acc1)}",
        f"  pretrain {c.pretrain_seconds:.1f} s ({ips}{precision}), "
        f"eval {c.eval_seconds:.1f} s{mem}",
        f"  record {RecordStore(results_dir).path(record.run_id)}",
        f"  plots  {', '.join(plots) if plots else '–'}",
    ])
