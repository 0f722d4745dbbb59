"""Fine-tuning evaluation: the whole pretrained backbone and a linear classifier trained on a
labelled split, reported on the test split after the final epoch.

The backbone is a copy: the run's own weights (and every other figure measured on them) are
left as they were. Train images get a fresh random resized crop + flip each epoch (SimCLR,
Chen et al. 2020, §B.5, fine-tunes with this augmentation alone); test images are only resized.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.core.components import Split
from sslbench.core.config import ViewSpec
from sslbench.engine.augment import augment_view, prepare_eval
from sslbench.engine.device import autocast, make_scaler
from sslbench.engine.evaluate import FrozenEncoder, topk_correct
from sslbench.engine.monitor import MetricsLog, Reporter
from sslbench.engine.optim import Optimization, set_lr
from sslbench.errors import TrainingError, UsageError


@dataclass
class FinetunePlan:
    """Epochs, the resolved optimization (optimizer, schedule, batch size), a seed, logs."""

    epochs: int
    optimization: Optimization
    seed: int
    metrics: MetricsLog
    reporter: Reporter
    phase: str = "finetune"  # the metrics.csv phase of its rows
    hflip: bool = True


class _Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x).float())


def finetune(encoder: FrozenEncoder, train: Split, test: Split, num_classes: int,
             plan: FinetunePlan) -> tuple[float, float]:
    """Fine-tune a copy of ``encoder.backbone`` with a new linear head on ``train``; return the
    final epoch's test (Acc@1, Acc@5) in percent. A non-finite loss stops it."""
    batch = plan.optimization.batch_size
    if len(train) < 1:
        raise UsageError("fine-tuning needs at least one labelled train image")
    torch.manual_seed(plan.seed)
    model = _Classifier(copy.deepcopy(encoder.backbone), num_classes).to(encoder.device)
    model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = -(-len(train) // batch)
    optimizer = plan.optimization.build_optimizer(model)
    lr_at = plan.optimization.build_schedule(steps_per_epoch * plan.epochs, steps_per_epoch)
    scaler = make_scaler(encoder.device, encoder.dtype)
    spec = ViewSpec(scale=(0.08, 1.0), flip=0.5 if plan.hflip else 0.0, jitter_p=0.0,
                    grayscale_p=0.0)
    gen = torch.Generator(encoder.device).manual_seed(plan.seed)
    order_gen = torch.Generator().manual_seed(plan.seed)
    images, labels = train.images.to(encoder.device), train.labels.to(encoder.device)
    acc1 = acc5 = 0.0
    plan.reporter.start(plan.phase, plan.epochs)
    try:
        for epoch in range(plan.epochs):
            model.train()
            order = torch.randperm(len(train), generator=order_gen).to(encoder.device)
            total = torch.zeros((), device=encoder.device)
            for i, start in enumerate(range(0, len(order), batch)):
                index = order[start:start + batch]
                x = augment_view(images[index], spec, encoder.image_size, encoder.mean,
                                 encoder.std, gen)
                set_lr(optimizer, lr_at(epoch * steps_per_epoch + i))
                with autocast(encoder.device, encoder.dtype):
                    loss = F.cross_entropy(model(x.contiguous(
                        memory_format=torch.channels_last)), labels[index])
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total += loss.detach().float() * len(index)
            loss = float(total) / len(train)
            if not math.isfinite(loss):
                raise TrainingError(f"fine-tuning diverged at epoch {epoch + 1} (loss {loss}); "
                                    "lower eval.finetune.optimizer.lr (now "
                                    f"{plan.optimization.optimizer.lr:g})")
            acc1, acc5 = _test(model, encoder, test)
            step = (epoch + 1) * steps_per_epoch
            plan.metrics.write(phase=plan.phase, epoch=epoch + 1, step=step, loss=loss,
                               lr=lr_at(step - 1), test_acc1=acc1, test_acc5=acc5)
            plan.reporter.update(epoch + 1, f"{plan.phase} {epoch + 1}/{plan.epochs}",
                                 loss=loss, acc1=round(acc1, 2))
    finally:
        plan.reporter.stop()
    return acc1, acc5


@torch.no_grad()
def _test(model: nn.Module, encoder: FrozenEncoder, test: Split,
          batch: int = 512) -> tuple[float, float]:
    model.eval()
    c1 = c5 = 0
    for start in range(0, len(test), batch):
        images = test.images[start:start + batch].to(encoder.device)
        x = prepare_eval(images, encoder.image_size, encoder.mean, encoder.std)
        with autocast(encoder.device, encoder.dtype):
            logits = model(x.contiguous(memory_format=torch.channels_last)).float()
        a, b = topk_correct(logits, test.labels[start:start + batch].to(encoder.device))
        c1, c5 = c1 + a, c5 + b
    return 100.0 * c1 / len(test), 100.0 * c5 / len(test)
