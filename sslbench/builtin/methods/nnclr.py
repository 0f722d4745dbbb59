"""NNCLR: contrastive learning whose positive is the nearest neighbour from a support set.

Dwibedi et al. 2021, "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning
of Visual Representations", https://arxiv.org/abs/2104.14548. For embeddings ``z_i`` (view 1)
and predictions ``p_i^+`` (view 2), with ``NN(z, Q)`` the nearest neighbour of ``z`` in the
support set Q (Eq. 2):

    L_i = -log exp(NN(z_i, Q) . p_i^+ / tau) / sum_k exp(NN(z_i, Q) . p_k^+ / tau)

symmetrised over the two views. Paper defaults: support set (a FIFO queue of past view-1
embeddings) of 98,304, temperature 0.1, projector 3 x 2048 -> 256 with BN, predictor
256 -> 4096 -> 256, LARS lr 4.8 at batch 4096, wd 1e-6, 1000 epochs, 10 warm-up epochs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from sslbench import RingBuffer, StrictModel, ViewSpec, fp32_loss, gather, hookimpl, mlp

from ._recipes import ASYMMETRIC, paper_pretrain, solo_imagenet100, solo_optimizer


@fp32_loss
@torch.no_grad()
def nearest_neighbour(z: torch.Tensor, support: torch.Tensor,
                      filled: torch.Tensor | int | None = None) -> torch.Tensor:
    """``NN(z, Q)``: for each row of ``z`` ``[N, D]``, the most cosine-similar of the first
    ``filled`` rows (default: all) of ``support`` ``[M, D]`` (unit norm), as a constant
    ``[N, D]``. Unfilled rows are masked on the device: no host sync."""
    z = F.normalize(z.float(), dim=1)
    sim = z @ support.float().T
    if filled is not None:
        unfilled = torch.arange(len(support), device=z.device) >= filled
        sim = sim.masked_fill(unfilled, float("-inf"))
    return support[sim.argmax(dim=1)].float()


@fp32_loss
def nnclr_loss(nn_z: torch.Tensor, p: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Cross entropy of ``NN(z_i) . p_k / tau`` with target k = i, averaged over i
    (``nn_z``, ``p``: ``[N, D]``; both normalised here)."""
    a = F.normalize(nn_z.detach().float(), dim=1)
    b = F.normalize(p.float(), dim=1)
    logits = a @ b.T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


class NNCLRConfig(StrictModel):
    proj_hidden_dim: int = Field(2048, ge=1)
    proj_dim: int = Field(256, ge=1)
    pred_hidden_dim: int = Field(4096, ge=1)
    temperature: float = Field(0.1, gt=0.0)
    support_size: int = Field(98304, ge=1)


class NNCLR(nn.Module):
    """NNCLR (Dwibedi et al. 2021): the nearest neighbour in a support set as the positive."""

    Config = NNCLRConfig
    stop_gradient_at = "predictor"  # the target branch is constant: every gradient passes here
    # the paper uses BYOL's augmentation
    views = [ViewSpec(count=1, scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.2, 0.1), blur_p=1.0),
             ViewSpec(count=1, scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.2, 0.1), blur_p=0.1,
                      solarize_p=0.2)]
    _cpu = {"method": {"support_size": 1024, "proj_dim": 128, "pred_hidden_dim": 1024}}
    recipes = {
        "digits": _cpu,
        # the projector's hidden layers at a quarter of 2048, like the quarter-width backbone:
        # 40 epochs then fit 10 minutes on 2 fp32-only cores
        "fashion-mnist": {"method": {**_cpu["method"], "support_size": 8192,
                                     "proj_hidden_dim": 512}},
        "cifar10": {
            "method": {"support_size": 16384},  # fewer images than ImageNet: a fresher set
            "pretrain": {
                "epochs": 1000, "batch_size": 256,
                # the paper's lr 4.8 at batch 4096, scaled linearly to batch 256
                "optimizer": {"name": "lars", "lr": 0.3, "weight_decay": 1e-6,
                              "momentum": 0.9},
                "schedule": {"name": "cosine", "warmup_epochs": 10, "warmup_lr": 0.0,
                             "final_lr": 0.0},
            },
        },
        # solo-learn scripts/pretrain/imagenet-100/nnclr.yaml (see _recipes.py): ResNet-18,
        # projector 2048 -> 256, predictor 4096, temperature 0.2, support set (queue) 65536,
        # LARS lr 0.4 at batch 256, wd 1e-5, asymmetric views; linear probe lr 0.3 (the
        # dataset's, as scripts/linear/imagenet-100/nnclr.yaml)
        "imagenet100": solo_imagenet100(
            solo_optimizer("lars", 0.4, 1e-5), ASYMMETRIC, linear_lr=0.3,
            method={"proj_hidden_dim": 2048, "proj_dim": 256, "pred_hidden_dim": 4096,
                    "temperature": 0.2, "support_size": 65536}),
        # the paper (Dwibedi et al. 2021), ResNet-50, §4 "Implementation details" (no code was
        # released): LARS lr 4.8 at batch 4096 (0.3 x batch / 256), wd 1e-6, 10 warm-up
        # epochs then cosine, 1000 epochs, temperature 0.1, support set 98,304, BYOL's views
        # (the method's defaults); biases and BN excluded from LARS as in BYOL's code
        "imagenet": {
            "method": {"proj_hidden_dim": 2048, "proj_dim": 256, "pred_hidden_dim": 4096,
                       "temperature": 0.1, "support_size": 98304},
            "pretrain": paper_pretrain(
                {"name": "lars", "lr": 0.3, "scale_lr_with_batch": True, "weight_decay": 1e-6,
                 "momentum": 0.9}, epochs=1000, batch_size=4096),
        },
    }

    def __init__(self, backbone: nn.Module, cfg: NNCLRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.projector = mlp(backbone.feature_dim, cfg.proj_hidden_dim, cfg.proj_dim,
                             layers=3, last_bn=True)
        self.predictor = mlp(cfg.proj_dim, cfg.pred_hidden_dim, cfg.proj_dim)
        self.support = RingBuffer(cfg.support_size, cfg.proj_dim)  # FIFO of past embeddings

    @torch.no_grad()
    def neighbours(self, z: torch.Tensor) -> torch.Tensor:
        """NN of each embedding among the filled support set (itself while it is empty)."""
        nn_z = nearest_neighbour(z, self.support.items, self.support.filled)
        return torch.where(self.support.filled > 0, nn_z, F.normalize(z.float(), dim=1))

    def forward(self, views, labels=None):
        z1, z2 = (self.projector(self.backbone(v)) for v in views[:2])
        p1, p2 = self.predictor(z1), self.predictor(z2)
        nn1, nn2 = self.neighbours(z1), self.neighbours(z2)
        # cross-batch: the other images of the global batch are the negatives
        loss = (nnclr_loss(gather(nn1), gather(p2), self.cfg.temperature)
                + nnclr_loss(gather(nn2), gather(p1), self.cfg.temperature)) / 2
        self.support.push(gather(F.normalize(z1.detach().float(), dim=1)))
        return loss, {"nnclr": loss.detach()}



@hookimpl
def sslbench_register_methods(register):
    register("nnclr", NNCLR, display="NNCLR")
