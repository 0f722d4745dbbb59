"""Barlow Twins: make the cross-correlation matrix of two views' embeddings the identity.

Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction",
https://arxiv.org/abs/2103.03230. With ``C_ij`` the cross-correlation of embedding dimensions
i (view 1) and j (view 2) over the batch (Eq. 2), the loss is (Eq. 1)

    L_BT = sum_i (1 - C_ii)^2  +  lambda * sum_i sum_{j != i} C_ij^2
           (invariance)            (redundancy reduction)

Paper defaults: lambda 5e-3; projector of three 8192-d linear layers (BN + ReLU after the first
two); BYOL's asymmetric views; LARS, batch 2048, wd 1.5e-6, 1000 epochs, 10 warm-up epochs.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from sslbench import StrictModel, ViewSpec, fp32_loss, gather, hookimpl, mlp

from ._recipes import ASYMMETRIC, solo_imagenet100, solo_optimizer, solo_pretrain


def standardise(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each dimension to zero mean, unit (biased) variance over the batch, as BatchNorm does."""
    z = z.float()
    return (z - z.mean(dim=0)) / (z.var(dim=0, unbiased=False) + eps).sqrt()


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """``C`` ``[D, D]`` of embeddings ``[N, D]`` of two views of the same N images (Eq. 2)."""
    return standardise(z1).T @ standardise(z2) / z1.shape[0]


def invariance(c: torch.Tensor) -> torch.Tensor:
    return (1 - c.diagonal()).pow(2).sum()


def redundancy_reduction(c: torch.Tensor) -> torch.Tensor:
    off_diagonal = c - torch.diag_embed(c.diagonal())
    return off_diagonal.pow(2).sum()


@fp32_loss
def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3):
    """``(loss, invariance, redundancy_reduction)`` for embeddings ``[N, D]`` of two views."""
    c = cross_correlation(z1, z2)
    inv, red = invariance(c), redundancy_reduction(c)
    return inv + lambd * red, inv, red


class BarlowTwinsConfig(StrictModel):
    proj_hidden_dim: int = Field(8192, ge=1)
    proj_dim: int = Field(8192, ge=1)
    lambd: float = Field(5e-3, ge=0.0)  # the paper's lambda, spelled as in the authors' code


_VIEW = dict(scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.2, 0.1), jitter_p=0.8, grayscale_p=0.2)


class BarlowTwins(nn.Module):
    """Barlow Twins (Zbontar et al. 2021): invariance + redundancy reduction, no negatives."""

    Config = BarlowTwinsConfig
    views = [ViewSpec(count=1, blur_p=1.0, solarize_p=0.0, **_VIEW),
             ViewSpec(count=1, blur_p=0.1, solarize_p=0.2, **_VIEW)]
    _cpu = {"method": {"proj_hidden_dim": 512, "proj_dim": 512}}
    recipes = {
        "digits": _cpu,
        "fashion-mnist": _cpu,
        "cifar10": {  # 2048-d projector at 32 px, as common CIFAR reproductions
            "method": {"proj_hidden_dim": 2048, "proj_dim": 2048},
            "pretrain": {
                "epochs": 1000, "batch_size": 256,
                "optimizer": {"name": "lars", "lr": 0.3, "weight_decay": 1e-4, "momentum": 0.9},
                "schedule": {"name": "cosine", "warmup_epochs": 10, "warmup_lr": 0.0,
                             "final_lr": 0.0},
            },
        },
        # solo-learn scripts/pretrain/imagenet-100/barlow.yaml (see _recipes.py): ResNet-18,
        # projector 2048 -> 2048, lambda 0.0051 (solo-learn's default), LARS lr 0.3 at batch 256,
        # wd 1e-4, asymmetric views; linear probe lr 0.1 (scripts/linear/imagenet-100/
        # barlow.yaml). Not expressed: its scale_loss 0.1 (the loss x 0.1; sslbench's Barlow
        # Twins has no such factor, and LARS with clip_lr is not blind to it)
        "imagenet100": solo_imagenet100(
            solo_optimizer("lars", 0.3, 1e-4), ASYMMETRIC, linear_lr=0.1,
            method={"proj_hidden_dim": 2048, "proj_dim": 2048, "lambd": 0.0051}),
        # solo-learn scripts/pretrain/imagenet/barlow.yaml: ResNet-50, 100 epochs, batch 64 on 4
        # devices (256), lr 0.8 at batch 256, wd 1.5e-6, LARS eta 0.001 without clip_lr,
        # projector 4096 -> 4096, lambda 0.0051 (scale_loss 0.048 not expressed); linear probe
        # scripts/linear/imagenet/barlow.yaml: lr 0.3, wd 1e-5
        "imagenet": {
            "method": {"proj_hidden_dim": 4096, "proj_dim": 4096, "lambd": 0.0051},
            "pretrain": solo_pretrain(
                solo_optimizer("lars", 0.8, 1.5e-6, eta=0.001, clip_lr=False), ASYMMETRIC,
                epochs=100, batch_size=256),
            "eval": {"linear": {"optimizer": {"name": "sgd", "lr": 0.3, "weight_decay": 1e-5,
                                              "momentum": 0.9}}},
        },
    }

    def __init__(self, backbone: nn.Module, cfg: BarlowTwinsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.projector = mlp(backbone.feature_dim, cfg.proj_hidden_dim, cfg.proj_dim, layers=3,
                             bias=False)

    def forward(self, views, labels=None):
        z1, z2 = (self.projector(self.backbone(v)) for v in views[:2])
        loss, inv, red = barlow_twins_loss(gather(z1), gather(z2), self.cfg.lambd)
        return loss, {"invariance": inv.detach(), "redundancy_reduction": red.detach()}


@hookimpl
def sslbench_register_methods(register):
    register("barlow_twins", BarlowTwins, display="Barlow Twins")
