"""Evaluation of a frozen backbone: weighted kNN and a linear probe, on the held-out test split.

Protocol (stated in every record): the classifier and the kNN memory bank are fit on the train
split only; the figures reported are those after the final linear epoch, never a best epoch
picked on the test split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.core.catalog import Catalog
from sslbench.core.components import Split
from sslbench.core.config import EvalConfig, LinearConfig
from sslbench.engine.augment import prepare_eval
from sslbench.engine.device import autocast
from sslbench.engine.monitor import MetricsLog, Reporter
from sslbench.engine.optim import base_lr, build_optimizer, build_schedule, set_lr


@dataclass
class EvalResult:
    linear_acc1: float | None
    linear_acc5: float | None
    knn_acc1: float | None
    seconds: float


@torch.no_grad()
def extract_features(backbone: nn.Module, split: Split, image_size: int, mean, std,
                     device: torch.device, dtype=None, batch_size: int = 512) -> torch.Tensor:
    """Features ``[N, D]`` (float32, on ``device``) of the frozen backbone in eval mode."""
    backbone.eval()
    chunks = []
    for start in range(0, len(split), batch_size):
        x = prepare_eval(split.images[start:start + batch_size].to(device), image_size, mean, std)
        with autocast(device, dtype):
            chunks.append(backbone(x.contiguous(memory_format=torch.channels_last)).float())
    return torch.cat(chunks)


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


def linear_probe(train_x, train_y, test_x, test_y, num_classes: int, cfg: LinearConfig,
                 catalog: Catalog, seed: int, metrics: MetricsLog,
                 reporter: Reporter) -> tuple[float, float]:
    """Train a linear classifier on cached, standardised features; return final (Acc@1, Acc@5).

    Features are standardised with the train split's mean and std (test uses the same numbers),
    which makes one lr work across backbones of different feature scales.
    """
    mu, sigma = train_x.mean(0, keepdim=True), train_x.std(0, keepdim=True) + 1e-6
    train_x, test_x = (train_x - mu) / sigma, (test_x - mu) / sigma
    torch.manual_seed(seed)
    head = nn.Linear(train_x.shape[1], num_classes).to(train_x.device)
    steps_per_epoch = max(1, -(-len(train_x) // cfg.batch_size))
    optimizer = build_optimizer(catalog, head, cfg.optimizer, cfg.batch_size)
    lr_at = build_schedule(catalog, cfg.schedule, base_lr(cfg.optimizer, cfg.batch_size),
                           steps_per_epoch * cfg.epochs, steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    acc1 = acc5 = 0.0
    reporter.start("linear", cfg.epochs)
    try:
        for epoch in range(cfg.epochs):
            order = torch.randperm(len(train_x), generator=gen).to(train_x.device)
            loss = _linear_epoch(head, optimizer, lr_at, train_x[order], train_y[order],
                                 epoch * steps_per_epoch, cfg.batch_size)
            test_loss, acc1, acc5 = _linear_test(head, test_x, test_y)
            metrics.write(phase="linear", epoch=epoch + 1, step=(epoch + 1) * steps_per_epoch,
                          loss=loss, lr=lr_at((epoch + 1) * steps_per_epoch - 1),
                          test_loss=test_loss, test_acc1=acc1, test_acc5=acc5)
            reporter.update(epoch + 1, f"linear {epoch + 1}/{cfg.epochs}", loss=loss,
                            acc1=round(acc1, 2))
    finally:
        reporter.stop()
    return acc1, acc5


def _linear_epoch(head, optimizer, lr_at, x, y, step: int, batch_size: int) -> float:
    head.train()
    total = torch.zeros((), device=x.device)
    for i, start in enumerate(range(0, len(x), batch_size)):
        set_lr(optimizer, lr_at(step + i))
        loss = F.cross_entropy(head(x[start:start + batch_size]), y[start:start + batch_size])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(y[start:start + batch_size])
    return total.item() / len(x)


@torch.no_grad()
def _linear_test(head, x, y) -> tuple[float, float, float]:
    head.eval()
    logits = head(x)
    loss = F.cross_entropy(logits, y).item()
    c1, c5 = topk_correct(logits, y)
    return loss, 100.0 * c1 / len(y), 100.0 * c5 / len(y)


def evaluate(backbone: nn.Module, train: Split, test: Split, num_classes: int, image_size: int,
             mean, std, cfg: EvalConfig, catalog: Catalog, device: torch.device, dtype,
             seed: int, metrics: MetricsLog, reporter: Reporter) -> EvalResult:
    """kNN and linear probe of the frozen ``backbone``; ``train`` is already subset if asked."""
    start = time.perf_counter()
    train_x = extract_features(backbone, train, image_size, mean, std, device, dtype)
    test_x = extract_features(backbone, test, image_size, mean, std, device, dtype)
    train_y, test_y = train.labels.to(device), test.labels.to(device)
    knn = knn_accuracy(train_x, train_y, test_x, test_y, num_classes, cfg.knn_k,
                       cfg.knn_temperature)
    acc1 = acc5 = None
    if cfg.linear.epochs > 0:
        acc1, acc5 = linear_probe(train_x, train_y, test_x, test_y, num_classes, cfg.linear,
                                  catalog, seed, metrics, reporter)
    return EvalResult(acc1, acc5, knn, time.perf_counter() - start)
