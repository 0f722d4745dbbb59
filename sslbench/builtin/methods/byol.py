"""BYOL: an online network predicts a slowly moving target network's projection of another view.

Grill et al. 2020, "Bootstrap Your Own Latent", https://arxiv.org/abs/2006.07733.
Paper defaults: projector and predictor MLPs 4096 -> 256 (Linear, BN, ReLU, Linear); loss
``2 - 2 cos(q, z')`` symmetrised over the two views (Eq. 2, summed); target weights updated
after every step by EMA with ``tau`` rising from 0.996 to 1 on a cosine schedule; asymmetric
views (blur p 1.0 / 0.1, solarize p 0 / 0.2); LARS lr 0.2 x batch/256, wd 1.5e-6, 1000 epochs,
10 warm-up epochs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from sslbench import (
    StrictModel,
    ViewSpec,
    cosine_momentum,
    ema_update,
    fp32_loss,
    frozen_copy,
    hookimpl,
    mlp,
)

from ._recipes import ASYMMETRIC, solo_imagenet100, solo_optimizer, solo_pretrain


@fp32_loss
def regression_loss(q: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``||q/|q| - z/|z|||^2 = 2 - 2 cos(q, z)`` averaged over the batch; z is a constant.

    ``q``: ``[N, D]`` online predictions, ``z``: ``[N, D]`` target projections of the other view.
    """
    return (2 - 2 * F.cosine_similarity(q.float(), z.detach().float(), dim=1)).mean()


def symmetric_regression_loss(q1, q2, z1, z2) -> torch.Tensor:
    """``L + L~``: view 1 predicts the target of view 2 and vice versa (range [0, 8])."""
    return regression_loss(q1, z2) + regression_loss(q2, z1)


class BYOLConfig(StrictModel):
    proj_hidden_dim: int = Field(4096, ge=1)
    proj_dim: int = Field(256, ge=1)
    pred_hidden_dim: int = Field(4096, ge=1)
    base_momentum: float = Field(0.996, ge=0.0, le=1.0)
    final_momentum: float = Field(1.0, ge=0.0, le=1.0)


_BYOL_VIEW = dict(scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.2, 0.1), jitter_p=0.8, grayscale_p=0.2)


class BYOL(nn.Module):
    """BYOL (Grill et al. 2020): predictor on the online side, EMA target, no negatives."""

    Config = BYOLConfig
    stop_gradient_at = "predictor"  # the target branch is constant: every gradient passes here
    # the two views differ (Table 6 of the paper): one always blurred, the other sometimes
    # solarized; each spec yields one view, in this order
    views = [ViewSpec(count=1, blur_p=1.0, solarize_p=0.0, **_BYOL_VIEW),
             ViewSpec(count=1, blur_p=0.1, solarize_p=0.2, **_BYOL_VIEW)]
    # short CPU schedules (a few hundred steps): a faster-moving target, as CIFAR
    # reproductions use (0.99). The datasets' SGD lr (0.1 digits, 0.3 Fashion-MNIST) was set
    # for SimCLR; the paper-form loss (two directions summed, 2 - 2 cos each) has 4x the
    # gradient of the averaged negative cosine, so BYOL takes a quarter of it: the step the
    # averaged form would take at the dataset's lr (LARS, the paper's optimizer, is blind to
    # the loss's scale, so the GPU recipes keep the paper's lr)
    _cpu = {"method": {"base_momentum": 0.99}}
    recipes = {
        "digits": {**_cpu, "pretrain": {"optimizer": {"lr": 0.025}}},
        # heads at a quarter of the paper's width, like the quarter-width backbone (as SimSiam's
        # and MoCo v3's CPU recipes): 4096-d heads on 128-d features cost as much as the
        # network, and the narrow ones keep 40 epochs in 10 minutes on 2 fp32-only cores
        "fashion-mnist": {"method": {**_cpu["method"], "proj_hidden_dim": 1024,
                                     "pred_hidden_dim": 1024},
                          "pretrain": {"optimizer": {"lr": 0.075}}},
        "cifar10": {
            "pretrain": {
                "epochs": 1000, "batch_size": 512,
                "optimizer": {"name": "lars", "lr": 0.2, "scale_lr_with_batch": True,
                              "weight_decay": 1.5e-6, "momentum": 0.9},
                "schedule": {"name": "cosine", "warmup_epochs": 10, "warmup_lr": 0.0,
                             "final_lr": 0.0},
            },
        },
        # solo-learn scripts/pretrain/imagenet-100/byol.yaml (see _recipes.py): ResNet-18,
        # projector 4096 -> 256, predictor 8192, tau 0.99 -> 1, LARS lr 0.5 at batch 256, wd 1e-6,
        # asymmetric views; linear probe lr 0.3 (scripts/linear/imagenet-100/byol.yaml)
        "imagenet100": solo_imagenet100(
            solo_optimizer("lars", 0.5, 1e-6), ASYMMETRIC, linear_lr=0.3,
            method={"proj_hidden_dim": 4096, "proj_dim": 256, "pred_hidden_dim": 8192,
                    "base_momentum": 0.99, "final_momentum": 1.0}),
        # solo-learn scripts/pretrain/imagenet/byol.yaml: ResNet-50, 100 epochs, batch 64 on 2
        # devices with 16 accumulated steps, i.e. 2048 images per step, lr 0.45 x 2048 / 256 (solo
        # scales by devices and by accumulation), warm-up from 3e-5 x 16; LARS eta 0.001 without
        # clip_lr, wd 1e-6, predictor 4096. One 2048-image batch here, so batch norm sees 2048
        # images where solo-learn's saw 64; the linear probe is the dataset's (lr 0.1, as
        # scripts/linear/imagenet/byol.yaml)
        "imagenet": {
            "method": {"proj_hidden_dim": 4096, "proj_dim": 256, "pred_hidden_dim": 4096,
                       "base_momentum": 0.99, "final_momentum": 1.0},
            "pretrain": solo_pretrain(
                solo_optimizer("lars", 0.45, 1e-6, eta=0.001, clip_lr=False), ASYMMETRIC,
                epochs=100, batch_size=2048, warmup_lr=3e-5 * 16),
        },
    }

    def __init__(self, backbone: nn.Module, cfg: BYOLConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.projector = mlp(backbone.feature_dim, cfg.proj_hidden_dim, cfg.proj_dim)
        self.predictor = mlp(cfg.proj_dim, cfg.pred_hidden_dim, cfg.proj_dim)
        self.target_backbone = frozen_copy(backbone)
        self.target_projector = frozen_copy(self.projector)

    def forward(self, views, labels=None):
        v1, v2 = views[:2]
        q1 = self.predictor(self.projector(self.backbone(v1)))
        q2 = self.predictor(self.projector(self.backbone(v2)))
        with torch.no_grad():
            z1 = self.target_projector(self.target_backbone(v1))
            z2 = self.target_projector(self.target_backbone(v2))
        loss = symmetric_regression_loss(q1, q2, z1, z2)
        return loss, {"regression": loss.detach()}

    def momentum(self, step: int, total_steps: int) -> float:
        return cosine_momentum(step, total_steps, self.cfg.base_momentum, self.cfg.final_momentum)

    def after_step(self, step: int, total_steps: int) -> None:
        """Move the target towards the online network (``step``: the step just taken, from 0)."""
        tau = self.momentum(step, total_steps)
        ema_update(self.target_backbone, self.backbone, tau)
        ema_update(self.target_projector, self.projector, tau)


@hookimpl
def sslbench_register_methods(register):
    register("byol", BYOL, display="BYOL")
