"""Online monitoring during pretraining: a linear probe trained on detached features, and a
kNN accuracy on a fixed held-out slice every few epochs, so that a collapsing run shows at
epoch 5 rather than after the last one.

* The **online probe** (BatchNorm without affine + linear, zero-initialised: no random draw, so
  the run's random streams are those of a run without it) is trained with its own SGD on the
  backbone's features of the first view of every step, detached: it never sends a gradient to
  the backbone, and the backbone's optimizer never sees its parameters.
* The **held-out slice** is part of the pretraining split, never the test split: a fixed
  ``bank`` slice (the kNN memory, labels used) and a disjoint ``queries`` slice whose images the
  probe never trains on (their labels are only ever used to score). Every ``knn_every`` epochs
  and at the last one, the kNN accuracy of the queries against the bank and the probe's
  accuracy on the queries are written to ``metrics.csv`` (phases ``online_knn``,
  ``online_linear``); the last values go into the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.core.components import Split
from sslbench.core.config import OnlineConfig
from sslbench.engine.evaluate import FrozenEncoder, extract_features, knn_accuracy
from sslbench.engine.monitor import MetricsLog

SLICE_SEED = 1  # the held-out slice: the same images for every method and run seed


@dataclass
class OnlineFigures:
    knn_acc1: float | None = None
    linear_acc1: float | None = None


@dataclass
class OnlineMonitor:
    """The online probe and kNN of one pretraining run; the loop calls the ``on_*`` methods."""

    cfg: OnlineConfig
    encoder: FrozenEncoder  # the backbone being trained, and how images reach it
    bank: Split
    queries: Split
    num_classes: int
    held_out: torch.Tensor  # bool [N]: the query images of the pretraining split
    probe: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    last: OnlineFigures = field(default_factory=OnlineFigures)
    _captured: torch.Tensor | None = None
    _loss: torch.Tensor | None = None
    _steps: int = 0
    _hook: object = None

    @classmethod
    def build(cls, cfg: OnlineConfig, encoder: FrozenEncoder, split: Split, num_classes: int,
              probe: bool = True) -> OnlineMonitor:
        """The monitor of pretraining on ``split``; ``probe`` False: kNN only."""
        n = len(split)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(SLICE_SEED))
        queries = order[:min(cfg.queries, n // 2)]
        bank = order[len(queries):len(queries) + cfg.bank]
        held_out = torch.zeros(n, dtype=torch.bool)
        held_out[queries] = True
        monitor = cls(cfg, encoder, split.take(bank), split.take(queries), num_classes,
                      held_out.to(encoder.device))
        if probe and cfg.linear:
            dim = encoder.backbone.feature_dim
            monitor.probe = nn.Sequential(nn.BatchNorm1d(dim, affine=False),
                                          nn.Linear(dim, num_classes)).to(encoder.device)
            nn.init.zeros_(monitor.probe[1].weight)
            nn.init.zeros_(monitor.probe[1].bias)
            monitor.optimizer = torch.optim.SGD(monitor.probe.parameters(), lr=cfg.lr,
                                                momentum=0.9)
        return monitor

    def start(self) -> None:
        """Listen to the backbone's forward passes (the first of each step is kept)."""
        if self.probe is not None:
            self._hook = self.encoder.backbone.register_forward_hook(self._capture)
        self._loss = torch.zeros((), device=self.encoder.device)

    def stop(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _capture(self, module, inputs, output) -> None:
        if self._captured is None and torch.is_grad_enabled():
            self._captured = output.detach()

    def on_step(self, index: torch.Tensor, labels: torch.Tensor) -> None:
        """Train the probe on the captured features of this step's first view (not on the
        held-out queries), then forget them."""
        z, self._captured = self._captured, None
        if self.probe is None or z is None:
            return
        z = z[:len(index)].float()  # views may come concatenated: the first is this batch
        keep = ~self.held_out[index]
        if int(keep.sum()) < 2:  # BatchNorm needs two samples
            return
        self.probe.train()
        loss = F.cross_entropy(self.probe(z[keep]), labels[keep])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self._loss += loss.detach()
        self._steps += 1

    def on_epoch_end(self, epoch: int, epochs: int, step: int, metrics: MetricsLog) -> None:
        """Every ``knn_every`` epochs and at the last: kNN and probe accuracy on the queries."""
        due = self.cfg.knn_every > 0 and (epoch % self.cfg.knn_every == 0 or epoch == epochs)
        queries = self._features(self.queries) if due else None
        if self.probe is not None and self._steps:
            if due:
                self.last.linear_acc1 = self._probe_accuracy(queries)
            metrics.write(phase="online_linear", epoch=epoch, step=step,
                          loss=float(self._loss) / self._steps,
                          test_acc1=self.last.linear_acc1 if due else None)
            self._loss.zero_()
            self._steps = 0
        if due:
            device = self.encoder.device
            self.last.knn_acc1 = knn_accuracy(
                self._features(self.bank), self.bank.labels.to(device), queries,
                self.queries.labels.to(device), self.num_classes,
                k=min(self.cfg.knn_k, len(self.bank)))
            metrics.write(phase="online_knn", epoch=epoch, step=step,
                          test_acc1=self.last.knn_acc1)

    @torch.no_grad()
    def _features(self, split: Split) -> torch.Tensor:
        was_training = self.encoder.backbone.training
        features = extract_features(self.encoder, split)
        self.encoder.backbone.train(was_training)
        return features

    @torch.no_grad()
    def _probe_accuracy(self, queries: torch.Tensor) -> float:
        self.probe.eval()
        predicted = self.probe(queries).argmax(1)
        return 100.0 * float((predicted == self.queries.labels.to(predicted.device)).float()
                             .mean())

    def state_dict(self) -> dict:
        """What a checkpoint keeps, so that a resumed run continues the same curves."""
        return {"probe": self.probe.state_dict() if self.probe is not None else None,
                "optimizer": self.optimizer.state_dict() if self.optimizer else None,
                "last": [self.last.knn_acc1, self.last.linear_acc1]}

    def load_state_dict(self, state: dict) -> None:
        if self.probe is not None and state.get("probe") is not None:
            self.probe.load_state_dict(state["probe"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.last = OnlineFigures(*state.get("last", [None, None]))
