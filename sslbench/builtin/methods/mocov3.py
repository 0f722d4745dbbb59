"""MoCo v3: a query predicts its momentum-encoded key among the keys of the whole batch.

Chen, Xie & He 2021, "An Empirical Study of Training Self-Supervised Vision Transformers",
https://arxiv.org/abs/2104.02057. The contrastive loss (Eq. 1, InfoNCE) with the other keys of
the same batch as negatives, no queue:

    ctr(q, k) = -log exp(q . k+ / tau) / sum_{k in batch} exp(q . k / tau)

scaled by ``2 tau`` (the authors' code, so the gradient's size does not depend on tau) and
symmetrised, ``ctr(q1, k2) + ctr(q2, k1)`` (Algorithm 1). The online encoder is backbone +
projector + predictor, the momentum encoder an EMA of backbone + projector.

Paper defaults: projector 3 layers 4096 -> 256, predictor 2 layers 4096 -> 256 (BatchNorm
after every layer, the last one without affine terms); BYOL's asymmetric augmentation. The ViT
recipe (ViT-S/16, ImageNet): temperature 0.2, momentum 0.99 rising to 1 on a cosine, AdamW lr
1.5e-4 x batch / 256, weight decay 0.1, 40 warm-up epochs, 300 epochs, batch 4096.
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
    gather,
    hookimpl,
    mlp,
    rank,
)

from ._recipes import ASYMMETRIC, paper_pretrain, solo_imagenet100, solo_optimizer


@fp32_loss
def contrastive_loss(q: torch.Tensor, k: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """``2 tau * ctr(q, k)``: InfoNCE of queries ``[N, D]`` against the global batch's keys
    (``[N, D]`` here, gathered across processes; stop-gradient), the positive of query ``i``
    being key ``i`` of this process."""
    q = F.normalize(q, dim=1)
    k = F.normalize(gather(k.detach()), dim=1)
    logits = q @ k.T / temperature
    labels = torch.arange(len(q), device=q.device) + rank() * len(q)
    return F.cross_entropy(logits, labels) * (2 * temperature)


def symmetric_contrastive_loss(q1, q2, k1, k2, temperature: float = 0.2) -> torch.Tensor:
    """``ctr(q1, k2) + ctr(q2, k1)`` (Algorithm 1 of the paper): summed, not averaged."""
    return contrastive_loss(q1, k2, temperature) + contrastive_loss(q2, k1, temperature)


class MoCoV3Config(StrictModel):
    proj_hidden_dim: int = Field(4096, ge=1)
    proj_dim: int = Field(256, ge=1)
    pred_hidden_dim: int = Field(4096, ge=1)
    temperature: float = Field(0.2, gt=0.0)
    base_momentum: float = Field(0.99, ge=0.0, le=1.0)
    final_momentum: float = Field(1.0, ge=0.0, le=1.0)


_VIEW = dict(scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.2, 0.1), jitter_p=0.8, grayscale_p=0.2)
_CPU = {"method": {"proj_hidden_dim": 1024, "pred_hidden_dim": 1024}}


class MoCoV3(nn.Module):
    """MoCo v3 (Chen et al. 2021): symmetrised InfoNCE, predictor, momentum encoder."""

    Config = MoCoV3Config
    stop_gradient_at = "predictor"  # keys are constants: every gradient passes the predictor
    views = [ViewSpec(count=1, blur_p=1.0, solarize_p=0.0, **_VIEW),
             ViewSpec(count=1, blur_p=0.1, solarize_p=0.2, **_VIEW)]
    recipes = {
        "digits": _CPU,
        "fashion-mnist": _CPU,
        # solo-learn's CIFAR config (scripts/pretrain/cifar/mocov3.yaml): ResNet-18,
        # temperature 0.2, tau 0.99 -> 1, LARS lr 0.3 (eta 0.02, biases and norms excluded),
        # wd 1e-6, batch 256, 1000 epochs
        "cifar10": {
            "pretrain": {
                "epochs": 1000, "batch_size": 256,
                "optimizer": {"name": "lars", "lr": 0.3, "scale_lr_with_batch": True,
                              "weight_decay": 1e-6, "momentum": 0.9, "options": {"eta": 0.02}},
                "schedule": {"name": "cosine", "warmup_epochs": 10, "warmup_lr": 0.0,
                             "final_lr": 0.0},
            },
        },
        # solo-learn scripts/pretrain/imagenet-100/mocov3.yaml (see _recipes.py): ResNet-18,
        # projector 4096 -> 256, predictor 4096, temperature 0.2, tau 0.99 -> 1, LARS lr 0.3 at
        # batch 256, wd 1e-6, asymmetric views; linear probe lr 0.3 (the dataset's, as
        # scripts/linear/imagenet-100/mocov3.yaml). Its ViT file, mocov3_vit.yaml, is the
        # "imagenet100/vit_small" recipe below.
        "imagenet100": solo_imagenet100(
            solo_optimizer("lars", 0.3, 1e-6), ASYMMETRIC, linear_lr=0.3,
            method={"proj_hidden_dim": 4096, "proj_dim": 256, "pred_hidden_dim": 4096,
                    "temperature": 0.2, "base_momentum": 0.99, "final_momentum": 1.0}),
        # solo-learn scripts/pretrain/imagenet-100/mocov3_vit.yaml: ViT-S/16 on 8 devices x 128 =
        # batch 1024, AdamW lr 3e-4 at batch 256 (1.2e-3 at 1024), wd 0.1, 400 epochs, heads
        # 4096 -> 256, temperature 0.2, tau 0.99 -> 1, the asymmetric views
        "imagenet100/vit_small": solo_imagenet100(
            solo_optimizer("adamw", 3e-4, 0.1), ASYMMETRIC, batch_size=1024,
            method={"proj_hidden_dim": 4096, "proj_dim": 256, "pred_hidden_dim": 4096,
                    "temperature": 0.2, "base_momentum": 0.99, "final_momentum": 1.0}),
        # the paper (Chen, Xie & He 2021), ResNet-50, its longest run (1000 epochs, 74.6%) as the
        # authors' CONFIG.md gives it (facebookresearch/moco-v3 at c349e6e2): batch 4096, LARS
        # lr 0.3 x batch / 256, wd 1.5e-6, momentum 0.996 -> 1 on a cosine, crops from 0.2 of the
        # image; main_moco.py's defaults for the rest: temperature 1.0, heads 4096 -> 256, 10
        # warm-up epochs then cosine. Their LARS puts the decayed gradient's norm in the ratio
        # and skips 1-d parameters: lars_simclr
        "imagenet": {
            "method": {"proj_hidden_dim": 4096, "proj_dim": 256, "pred_hidden_dim": 4096,
                       "temperature": 1.0, "base_momentum": 0.996, "final_momentum": 1.0},
            "pretrain": paper_pretrain(
                {"name": "lars_simclr", "lr": 0.3, "scale_lr_with_batch": True,
                 "weight_decay": 1.5e-6, "momentum": 0.9},
                epochs=1000, batch_size=4096,
                views=[{**view, "scale": (0.2, 1.0)} for view in ASYMMETRIC]),
        },
    }

    def __init__(self, backbone: nn.Module, cfg: MoCoV3Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.projector = mlp(backbone.feature_dim, cfg.proj_hidden_dim, cfg.proj_dim, layers=3,
                             last_bn=True, last_bn_affine=False)
        self.predictor = mlp(cfg.proj_dim, cfg.pred_hidden_dim, cfg.proj_dim, last_bn=True,
                             last_bn_affine=False)
        self.momentum_backbone = frozen_copy(backbone)
        self.momentum_projector = frozen_copy(self.projector)

    def forward(self, views, labels=None):
        v1, v2 = views[:2]
        q1 = self.predictor(self.projector(self.backbone(v1)))
        q2 = self.predictor(self.projector(self.backbone(v2)))
        with torch.no_grad():
            k1 = self.momentum_projector(self.momentum_backbone(v1))
            k2 = self.momentum_projector(self.momentum_backbone(v2))
        loss = symmetric_contrastive_loss(q1, q2, k1, k2, self.cfg.temperature)
        return loss, {"contrastive": loss.detach()}

    def after_step(self, step: int, total_steps: int) -> None:
        tau = cosine_momentum(step, total_steps, self.cfg.base_momentum, self.cfg.final_momentum)
        ema_update(self.momentum_backbone, self.backbone, tau)
        ema_update(self.momentum_projector, self.projector, tau)


@hookimpl
def sslbench_register_methods(register):
    register("mocov3", MoCoV3, display="MoCo v3")
