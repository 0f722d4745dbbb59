"""Evaluation of a frozen backbone: weighted kNN and a linear probe, on the held-out test split.

Protocol (stated in every record): the classifier and the kNN memory bank are fit on the train
split only; the figures reported are those after the final linear epoch, never a best epoch
picked on the test split.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.core.components import Split, StreamSplit
from sslbench.core.config import EvalConfig, LinearConfig, ViewSpec
from sslbench.engine import distributed
from sslbench.engine.augment import augment_view, prepare_eval
from sslbench.engine.device import autocast
from sslbench.engine.diagnostics import diagnose
from sslbench.engine.monitor import MetricsLog, Reporter
from sslbench.engine.optim import Optimization, set_lr
from sslbench.errors import TrainingError


@dataclass
class EvalResult:
    linear_acc1: float | None
    linear_acc5: float | None
    knn_acc1: float | None
    seconds: float
    rankme: float | None = None  # collapse diagnostics of the train features (diagnostics.py)
    feature_std: float | None = None
    few_label: list[dict] = field(default_factory=list)  # percent, images, linear_acc1/5


@dataclass
class EvalData:
    """The labelled splits an evaluation fits on (``train``, already subset) and reports on."""

    train: Split
    test: Split
    num_classes: int
    hflip: bool = True  # False where a mirror image changes the class (digits)
    few_label: dict[float, Split] = field(default_factory=dict)  # percent -> its fixed subset


@dataclass
class EvalPlan:
    """How to evaluate: the ``eval`` config, its resolved linear-probe optimization, a seed,
    and where the per-epoch figures go."""

    cfg: EvalConfig
    linear: Optimization
    seed: int
    metrics: MetricsLog
    reporter: Reporter


@torch.no_grad()
def extract_features(encoder: FrozenEncoder, split: Split,
                     batch_size: int = 512) -> torch.Tensor:
    """Features ``[N, D]`` (float32, on ``device``) of the frozen backbone in eval mode.

    Under torchrun each process computes a contiguous shard and every process gets all ``N``
    features back in order; kNN and the linear probe then run on every process alike (same
    seeds, same result; rank 0 records it), so no process waits idle for another.
    """
    e = encoder
    e.backbone.eval()
    chunks = []
    lo, hi = distributed.shard(len(split))
    for images in _eval_images(split, e, lo, hi, batch_size):
        x = prepare_eval(images, e.image_size, e.mean, e.std)
        with autocast(e.device, e.dtype):
            chunks.append(e.backbone(x.contiguous(memory_format=torch.channels_last)).float())
    part = (torch.cat(chunks) if chunks
            else torch.zeros(0, e.backbone.feature_dim, device=e.device))
    return distributed.gather_shards(part, len(split))


def _eval_images(split: Split | StreamSplit, e: FrozenEncoder, lo: int, hi: int,
                 batch_size: int):
    """uint8 batches of images ``lo..hi-1`` on the device; a streamed split is decoded (and
    centre-cropped) in DataLoader workers as it goes, never held whole."""
    if isinstance(split, StreamSplit):
        from sslbench.engine.stream import eval_batches

        with contextlib.closing(eval_batches(split, e.image_size, lo, hi, batch_size,
                                             e.device)) as batches:
            for images, _ in batches:
                yield images
        return
    for start in range(lo, hi, batch_size):
        yield split.images[start:min(start + batch_size, hi)].to(e.device)


@torch.no_grad()
def knn_accuracy(train_x, train_y, test_x, test_y, num_classes: int, k: int = 200,
                 temperature: float = 0.1, chunk: int = 1024) -> float:
    """Weighted kNN (Wu et al. 2018): cosine similarity, votes weighted by ``exp(sim / T)``.

    Returns top-1 accuracy in percent. ``k`` is capped at the size of the memory bank.
    """
    bank = F.normalize(train_x, dim=1)
    k = min(k, len(bank))
    correct = 0
    for start in range(0, len(test_x), chunk):
        q = F.normalize(test_x[start:start + chunk], dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        weights = (sim / temperature).exp()
        votes = torch.zeros(len(q), num_classes, device=q.device)
        votes.scatter_add_(1, train_y[idx], weights)
        correct += (votes.argmax(1) == test_y[start:start + chunk]).sum().item()
    return 100.0 * correct / len(test_x)


def topk_correct(logits: torch.Tensor, y: torch.Tensor, ks=(1, 5)) -> list[int]:
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == y.view(-1, 1)
    return [int(hits[:, :k].any(dim=1).sum()) for k in ks]


def linear_probe(train_x, train_y, test_x, test_y, num_classes: int,
                 plan: EvalPlan, phase: str = "linear") -> tuple[float, float]:
    """Train a linear classifier on cached, standardised features; return final (Acc@1, Acc@5).

    Features are standardised with the train split's mean and std (test uses the same numbers),
    which makes one lr work across backbones of different feature scales.
    """
    scale = standardiser(train_x)
    train_x, test_x = scale(train_x), scale(test_x)

    size = plan.cfg.linear.batch_size

    def batches(order):
        for start in range(0, len(order), size):
            index = order[start:start + size]
            yield train_x[index], train_y[index]

    return train_linear(batches, len(train_x), test_x, test_y, num_classes, plan, phase)


@dataclass
class FrozenEncoder:
    """The frozen backbone and how images reach it (size, normalisation, device, autocast)."""

    backbone: nn.Module
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    dtype: torch.dtype | None = None


def linear_probe_augmented(encoder: FrozenEncoder, data: EvalData, train_x, test_x, test_y,
                           plan: EvalPlan) -> tuple[float, float]:
    """Linear probe with training augmentation: a fresh random resized crop + flip of every
    train image each epoch, through the frozen backbone (eval mode), as in the original's
    ``main_linear.py`` (torchvision's ``RandomResizedCrop`` defaults: scale 0.08-1, ratio 3/4-4/3;
    no colour jitter, no grayscale). Test images are only resized (their cached ``test_x``).

    ``train_x`` are the un-augmented train features: their mean and std standardise every
    augmented batch (the same scaling as the cached probe, so the same lr works for both).
    """
    spec = ViewSpec(scale=(0.08, 1.0), flip=0.5 if data.hflip else 0.0, jitter_p=0.0,
                    grayscale_p=0.0)
    scale = standardiser(train_x)
    encoder.backbone.eval()
    if isinstance(data.train, StreamSplit):
        batches = _streamed_augmented(encoder, data.train, spec, scale, plan)
        return train_linear(batches, len(data.train), scale(test_x), test_y, data.num_classes,
                            plan)
    images, labels = data.train.images.to(encoder.device), data.train.labels.to(encoder.device)
    gen = torch.Generator(encoder.device).manual_seed(plan.seed)
    size = plan.cfg.linear.batch_size

    def batches(order):
        for start in range(0, len(order), size):
            index = order[start:start + size]
            x = augment_view(images[index], spec, encoder.image_size, encoder.mean, encoder.std,
                             gen)
            with torch.no_grad(), autocast(encoder.device, encoder.dtype):
                features = encoder.backbone(x.contiguous(memory_format=torch.channels_last))
            yield scale(features.float()), labels[index]

    return train_linear(batches, len(data.train), scale(test_x), test_y, data.num_classes, plan)


def _streamed_augmented(encoder: FrozenEncoder, split: StreamSplit, spec: ViewSpec, scale,
                        plan: EvalPlan):
    """The augmented probe's batches for a streamed train split: the crop and flip are taken
    in the decoding workers (seeded by seed, epoch, image), the features on the device."""
    from sslbench.engine.stream import augmented_batches

    e, epochs = encoder, iter(range(plan.cfg.linear.epochs))
    mean = torch.tensor(e.mean, device=e.device).view(1, -1, 1, 1)
    std = torch.tensor(e.std, device=e.device).view(1, -1, 1, 1)

    def batches(order):
        for crops, y in augmented_batches(split, spec, e.image_size, order.tolist(),
                                          plan.cfg.linear.batch_size, plan.seed, next(epochs),
                                          e.device):
            x = (crops.float().div_(255) - mean) / std
            with torch.no_grad(), autocast(e.device, e.dtype):
                features = e.backbone(x.contiguous(memory_format=torch.channels_last))
            yield scale(features.float()), y
    return batches


def standardiser(train_x: torch.Tensor):
    """``x -> (x - mean) / std`` with the train features' per-dimension statistics."""
    mu, sigma = train_x.mean(0, keepdim=True), train_x.std(0, keepdim=True) + 1e-6
    return lambda x: (x - mu) / sigma


def train_linear(batches, n_train: int, test_x, test_y, num_classes: int,
                 plan: EvalPlan, phase: str = "linear") -> tuple[float, float]:
    """The linear-probe loop shared by both variants; ``batches(order)`` yields ``(x, y)``
    feature batches of one epoch in the given order of train indices. A non-finite train or
    test loss stops it: chance accuracy from a diverged probe is not a result."""
    cfg: LinearConfig = plan.cfg.linear
    metrics, reporter = plan.metrics, plan.reporter
    torch.manual_seed(plan.seed)
    head = nn.Linear(test_x.shape[1], num_classes).to(test_x.device)
    steps_per_epoch = max(1, -(-n_train // cfg.batch_size))
    optimizer = plan.linear.build_optimizer(head)
    lr_at = plan.linear.build_schedule(steps_per_epoch * cfg.epochs, steps_per_epoch)
    gen = torch.Generator().manual_seed(plan.seed)
    acc1 = acc5 = 0.0
    reporter.start(phase, cfg.epochs)
    try:
        for epoch in range(cfg.epochs):
            order = torch.randperm(n_train, generator=gen).to(test_x.device)
            loss = _linear_epoch(head, optimizer, lr_at, batches(order), epoch * steps_per_epoch)
            test_loss, acc1, acc5 = _linear_test(head, test_x, test_y)
            if not (math.isfinite(loss) and math.isfinite(test_loss)):
                raise TrainingError(f"linear probe diverged at epoch {epoch + 1}: train loss "
                                    f"{loss}, test loss {test_loss}; lower eval.linear."
                                    f"optimizer.lr (now {cfg.optimizer.lr:g})")
            metrics.write(phase=phase, epoch=epoch + 1, step=(epoch + 1) * steps_per_epoch,
                          loss=loss, lr=lr_at((epoch + 1) * steps_per_epoch - 1),
                          test_loss=test_loss, test_acc1=acc1, test_acc5=acc5)
            reporter.update(epoch + 1, f"{phase} {epoch + 1}/{cfg.epochs}", loss=loss,
                            acc1=round(acc1, 2))
    finally:
        reporter.stop()
    return acc1, acc5


def _linear_epoch(head, optimizer, lr_at, batches, step: int) -> float:
    head.train()
    total, count = 0.0, 0
    for i, (x, y) in enumerate(batches):
        total = total + linear_step(head, optimizer, lr_at(step + i), x, y) * len(y)
        count += len(y)
    return float(total) / max(count, 1)


def linear_step(head, optimizer, lr: float, x, y) -> torch.Tensor:
    """One SGD step of the classifier on a feature batch; returns the detached batch loss."""
    set_lr(optimizer, lr)
    loss = F.cross_entropy(head(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def _linear_test(head, x, y) -> tuple[float, float, float]:
    head.eval()
    logits = head(x)
    loss = F.cross_entropy(logits, y).item()
    c1, c5 = topk_correct(logits, y)
    return loss, 100.0 * c1 / len(y), 100.0 * c5 / len(y)


def evaluate(encoder: FrozenEncoder, data: EvalData, plan: EvalPlan) -> EvalResult:
    """kNN and linear probe of the frozen backbone; ``plan.cfg.linear.cached`` selects the
    probe on cached features, else the augmented one."""
    start = time.perf_counter()
    train_x, test_x = extract_features(encoder, data.train), extract_features(encoder, data.test)
    check_features(train_x, "train")
    check_features(test_x, "test")
    train_y, test_y = data.train.labels.to(encoder.device), data.test.labels.to(encoder.device)
    cfg = plan.cfg
    knn = knn_accuracy(train_x, train_y, test_x, test_y, data.num_classes, cfg.knn_k,
                       cfg.knn_temperature)
    acc1 = acc5 = None
    if cfg.linear.epochs > 0 and cfg.linear.cached:
        acc1, acc5 = linear_probe(train_x, train_y, test_x, test_y, data.num_classes, plan)
    elif cfg.linear.epochs > 0:
        acc1, acc5 = linear_probe_augmented(encoder, data, train_x, test_x, test_y, plan)
    few = [few_label_probe(encoder, subset, percent, test_x, test_y, data.num_classes, plan)
           for percent, subset in sorted(data.few_label.items())]
    diag = diagnose(train_x)
    return EvalResult(acc1, acc5, knn, time.perf_counter() - start, diag.rankme,
                      diag.feature_std, few)


def few_label_probe(encoder: FrozenEncoder, subset: Split, percent: float, test_x, test_y,
                    num_classes: int, plan: EvalPlan) -> dict:
    """The cached linear probe (``eval.linear``'s recipe) trained on a few-label subset only;
    its rows go to ``metrics.csv`` as phase ``linear_<percent>pct``."""
    x = extract_features(encoder, subset)
    check_features(x, f"{percent:g}% subset")
    y = subset.labels.to(encoder.device)
    acc1 = acc5 = None
    if plan.cfg.linear.epochs > 0:
        acc1, acc5 = linear_probe(x, y, test_x, test_y, num_classes, plan,
                                  phase=f"linear_{percent:g}pct")
    return {"percent": percent, "images": len(subset), "linear_acc1": acc1,
            "linear_acc5": acc5}


def check_features(x: torch.Tensor, split: str) -> None:
    """Diverged weights give NaN/inf features while a pretraining loss can stay bounded: stop
    here rather than report chance accuracy as a result."""
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise TrainingError(f"evaluation: {bad} of {x.numel()} {split} feature values are not "
                            "finite (the backbone's weights diverged during pretraining)")
