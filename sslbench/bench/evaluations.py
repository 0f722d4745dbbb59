"""The evaluations of a pretrained backbone beyond kNN and the linear probe, and the protocol
each figure was measured under (stored in the record beside the figure).

:func:`evaluate_all` runs kNN, the linear probe, the collapse diagnostics and the few-label
linear probes (:func:`~sslbench.engine.evaluate.evaluate`), then the fine-tunes the config asks
for (:func:`~sslbench.engine.finetune.finetune`). ``run`` and ``eval`` both call it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sslbench.bench.cell import Cell
from sslbench.core.components import DatasetSplits, Split
from sslbench.core.config import RunConfig
from sslbench.core.records import FewLabel
from sslbench.engine.evaluate import EvalData, EvalPlan, EvalResult, FrozenEncoder, evaluate
from sslbench.engine.fewshot import SUBSET_SEED, balanced_subset
from sslbench.engine.finetune import FinetunePlan, finetune
from sslbench.engine.monitor import MetricsLog, Reporter
from sslbench.errors import UsageError


@dataclass
class Figures:
    """Everything one evaluation measured, as record fields, with their protocols."""

    result: EvalResult
    finetune_acc1: float | None = None
    finetune_acc5: float | None = None
    few_label: list[FewLabel] = field(default_factory=list)
    protocols: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def metrics(self) -> dict:
        """The record's ``metrics`` fields these figures fill (pretraining's are not here)."""
        r = self.result
        return dict(linear_acc1=r.linear_acc1, linear_acc5=r.linear_acc5, knn_acc1=r.knn_acc1,
                    finetune_acc1=self.finetune_acc1, finetune_acc5=self.finetune_acc5,
                    few_label=self.few_label, rankme=r.rankme, feature_std=r.feature_std)


MAX_UPSCALE = 4  # a transfer dataset's images are resized at most 4x up to the backbone's size


def check_transfer(cell: Cell, target: DatasetSplits, image_size: int) -> None:
    """A transfer dataset the backbone can be fed: 1 or 3 channels (grayscale is repeated to
    RGB, as for pretraining), images at least a quarter of the backbone's input size."""
    name = cell.eval_dataset.name if cell.eval_dataset else cell.dataset.name
    images = getattr(target.train, "images", None)  # None: streamed, decoded to RGB crops
    channels = int(images.shape[1]) if images is not None else 3
    if channels not in (1, 3):
        raise UsageError(f"cannot evaluate on {name!r}: its images have {channels} channels, "
                         "and the backbone takes 1 (grayscale) or 3 (RGB)")
    if image_size > MAX_UPSCALE * target.image_size:
        raise UsageError(f"cannot evaluate on {name!r}: its {target.image_size} px images "
                         f"would be enlarged {image_size / target.image_size:.0f}x to the "
                         f"backbone's {image_size} px input (at most {MAX_UPSCALE}x); pretrain "
                         "at a smaller data.image_size")


def eval_data(cell: Cell, data: DatasetSplits, train: Split) -> EvalData:
    """The labelled splits: ``train`` (the probe's, maybe subset) and the few-label subsets,
    drawn from the whole train split."""
    few = {p: balanced_subset(data.train, p, data.num_classes)
           for p in cell.config.eval.few_label.percents}
    return EvalData(train, data.test, data.num_classes, cell.config.data.hflip, few)


def evaluate_all(cell: Cell, encoder: FrozenEncoder, data: EvalData, metrics: MetricsLog,
                 reporter: Reporter) -> Figures:
    """kNN, linear probe, diagnostics, few-label probes, then the asked-for fine-tunes."""
    cfg = cell.config
    ev = evaluate(encoder, data, EvalPlan(cfg.eval, cell.linear, cfg.seed, metrics, reporter))
    out = Figures(ev, seconds=ev.seconds)
    few = {f["percent"]: dict(f) for f in ev.few_label}
    if cell.finetuning is not None:
        start = time.perf_counter()
        plan = FinetunePlan(cfg.eval.finetune.epochs, cell.finetuning, cfg.seed, metrics,
                            reporter, hflip=data.hflip)
        out.finetune_acc1, out.finetune_acc5 = finetune(encoder, data.train, data.test,
                                                        data.num_classes, plan)
        if cfg.eval.few_label.finetune:
            for percent, subset in sorted(data.few_label.items()):
                plan.phase = f"finetune_{percent:g}pct"
                acc1, acc5 = finetune(encoder, subset, data.test, data.num_classes, plan)
                few[percent].update(finetune_acc1=acc1, finetune_acc5=acc5)
        out.seconds += time.perf_counter() - start
    out.few_label = [FewLabel(**f) for _, f in sorted(few.items())]
    out.protocols = protocols(cfg, out, len(data.train))
    return out


def protocols(cfg: RunConfig, figures: Figures, n_train: int) -> dict[str, str]:
    """One sentence per measured figure: what it was fit on, for how long, reported where."""
    e, r = cfg.eval, figures.result
    final = "final epoch reported on the test split, no selection on it"
    out = {}
    if e.dataset is not None and e.dataset != cfg.data.name:
        out["transfer"] = (f"pretrained on {cfg.data.name}, every figure evaluated on "
                           f"{e.dataset} (its train split fits, its test split reports), "
                           f"images resized to the backbone's input and normalised as in "
                           "pretraining")
    if r.knn_acc1 is not None:
        out["knn"] = (f"weighted kNN (k={e.knn_k}, T={e.knn_temperature:g}) of the frozen "
                      f"backbone, memory bank the {n_train} train images, queries the test split")
    if r.linear_acc1 is not None:
        variant = "cached features" if e.linear.cached else "augmented images"
        out["linear"] = (f"linear probe on the frozen backbone ({variant}), {e.linear.epochs} "
                         f"epochs on the {n_train} train images; {final}")
    if figures.finetune_acc1 is not None:
        f = e.finetune
        out["finetune"] = (f"whole backbone + linear classifier, {f.epochs} epochs "
                           f"{f.optimizer.name} lr {f.optimizer.lr:g} batch {f.batch_size}, "
                           f"random resized crop + flip, on the {n_train} train images; {final}")
    if figures.few_label:
        what = "linear probe" + (" and fine-tune" if e.few_label.finetune else "")
        out["few_label"] = (f"{what} on fixed class-balanced subsets of the whole train split "
                            f"(equal images per class, seed {SUBSET_SEED}, the same for every "
                            f"method and run), recipes as linear/finetune; {final}")
    if r.rankme is not None:
        out["rankme"] = ("RankMe (Garrido et al. 2023) and feature_std (mean per-dimension std "
                         "of L2-normalised features) of the frozen backbone's features of a "
                         "fixed sample of at most 25,600 train images")
    return out
