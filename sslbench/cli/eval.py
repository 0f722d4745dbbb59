"""``sslbench eval RUN_DIR_OR_CHECKPOINT``: linear probe and kNN of a pretrained checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sslbench.cli import app
from sslbench.cli.catalog import load
from sslbench.core.paths import default_data_dir

if TYPE_CHECKING:
    from sslbench.bench.eval_run import EvalRecord


@app.command("eval")
def eval_command(
    path: Path = typer.Argument(..., help="A run folder (runs/<run-id>) or a checkpoint file."),
    cached: bool | None = typer.Option(
        None, "--cached/--no-cached",
        help="Train on features computed once (fast), or on a random resized crop + flip of "
             "every image each epoch. Default: the run's eval.linear.cached."),
    optimizer: str | None = typer.Option(None, help="Linear optimizer: sgd, sgd_nesterov, lars…"),
    lr: float | None = typer.Option(None, help="Linear-probe learning rate."),
    epochs: int | None = typer.Option(None, min=0, help="Linear-probe epochs."),
    batch_size: int | None = typer.Option(None, min=1, help="Linear-probe batch size."),
    weight_decay: float | None = typer.Option(None, min=0.0, help="Linear-probe weight decay."),
    finetune_epochs: int | None = typer.Option(
        None, min=0, help="Fine-tune the whole backbone for this many epochs "
                          "(eval.finetune.epochs)."),
    few_label: str | None = typer.Option(
        None, help="Few-label evaluation on these class-balanced percentages of the train "
                   "split, e.g. 1,10 (eval.few_label.percents)."),
    few_label_finetune: bool | None = typer.Option(
        None, "--few-label-finetune/--no-few-label-finetune",
        help="Also fine-tune on each few-label subset (needs fine-tune epochs)."),
    eval_dataset: str | None = typer.Option(
        None, help="Transfer: evaluate on this dataset (eval.dataset); its figures stay in the "
                   "eval record, the run's record is not changed."),
    results_dir: Path = typer.Option(Path("results"), help="Results registry folder: the run's "
                                     "record there gains the fine-tune, few-label and "
                                     "diagnostics figures."),
    set_: list[str] = typer.Option([], "--set", help="Override: eval.key=value (repeat)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    data_dir: Path = typer.Option(default_data_dir(), help="Dataset folder ($SSLBENCH_DATA)."),
    download: bool = typer.Option(True, help="Download missing datasets when possible."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train a linear classifier on the frozen backbone of a run; report Acc@1/Acc@5 and kNN.

    Starts from the run's own eval settings; flags and --set eval.* change them. The figures are
    those of the final epoch on the test split. Writes eval-<hash>.json beside the checkpoint,
    and adds the fine-tune, few-label and diagnostics figures to the run's record in
    --results-dir (its linear and kNN figures stay those of the run).
    """
    from sslbench.bench.eval_run import add_to_registry, evaluate_run
    from sslbench.bench.run import RunOptions

    plugins = load()
    overrides = {"eval.linear.cached": cached, "eval.linear.optimizer.name": optimizer,
                 "eval.linear.optimizer.lr": lr, "eval.linear.epochs": epochs,
                 "eval.linear.batch_size": batch_size,
                 "eval.linear.optimizer.weight_decay": weight_decay,
                 "eval.finetune.epochs": finetune_epochs,
                 "eval.few_label.percents": _percents(few_label),
                 "eval.few_label.finetune": few_label_finetune,
                 "eval.dataset": eval_dataset}
    opts = RunOptions(device=device, data_dir=data_dir, download=download, quiet=quiet)
    record, out = evaluate_run(path, plugins, opts, set_, overrides)
    typer.echo(summary(record, out))
    added = add_to_registry(record, results_dir)
    if added:
        typer.echo(f"  added to {added}")


def _percents(text: str | None) -> list[float] | None:
    from sslbench.errors import UsageError

    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--few-label takes percentages like 1,10, got {text!r}") from None


def summary(record: EvalRecord, out: Path) -> str:
    m, lin = record.metrics, record.eval["linear"]

    def pct(value):
        return "–" if value is None else f"{value:.2f}%"

    trained = (f"checkpoint epoch {record.checkpoint_epoch}/{record.pretrain_epochs}"
               if record.checkpoint else "untrained (seeded) weights")
    opt = lin["optimizer"]
    return "\n".join([
        f"{record.method} · {record.backbone} · {record.dataset} (seed {record.seed}, {trained})",
        f"  linear ({record.variant}, {opt['name']} lr {opt['lr']:g}, {lin['epochs']} epochs, "
        f"batch {lin['batch_size']}): Acc@1 {pct(m.linear_acc1)}  Acc@5 {pct(m.linear_acc5)}",
        f"  kNN Acc@1 {pct(m.knn_acc1)}  (final epoch, test split; {record.eval_seconds:.1f} s)",
        *([f"  fine-tune Acc@1 {pct(m.finetune_acc1)}  Acc@5 {pct(m.finetune_acc5)}"]
          if m.finetune_acc1 is not None else []),
        *(f"  {f.percent:g}% labels ({f.images} images): linear Acc@1 {pct(f.linear_acc1)}"
          + (f", fine-tune Acc@1 {pct(f.finetune_acc1)}" if f.finetune_acc1 is not None else "")
          for f in m.few_label),
        f"  RankMe {m.rankme:.1f}, feature std {m.feature_std:.4f}" if m.rankme is not None
        else "  RankMe –",
        f"  record {out}",
    ])
