"""SimCLR: contrastive learning with the NT-Xent loss over 2N augmented views.

Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations",
https://arxiv.org/abs/2002.05709. Paper defaults: projector 2048 -> 128, temperature 0.5 on
CIFAR-10 (0.1 on ImageNet), LARS lr 1.0 (batch 512), weight decay 1e-6 (1e-4 in the seed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from sslbench import StrictModel, ViewSpec, fp32_loss, gather, hookimpl, mlp

from ._recipes import SYMMETRIC, paper_pretrain, solo_imagenet100, solo_optimizer


@fp32_loss
def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised temperature-scaled cross entropy, averaged over all 2N anchors.

    ``z1, z2``: ``[N, D]`` projections of two views of the same N images. For anchor i its
    positive is the other view of image i; the 2N - 2 other views are its negatives. Under
    torchrun they are this process's share, gathered first (with gradients), so the negatives
    and the loss are those of the global batch.
    """
    z1, z2 = gather(z1), gather(z2)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))  # an anchor is not its own negative
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, positives)


class SimCLRConfig(StrictModel):
    proj_hidden_dim: int = Field(2048, ge=1)
    proj_dim: int = Field(128, ge=1)
    temperature: float = Field(0.5, gt=0.0)


SIMCLR_VIEW = ViewSpec(count=2, scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8,
                       grayscale_p=0.2, blur_p=0.5)


class SimCLR(nn.Module):
    """SimCLR (Chen et al. 2020): NT-Xent between two views through an MLP projector."""

    Config = SimCLRConfig
    views = [SIMCLR_VIEW]
    recipes = {
        # measured on 2 CPU cores: +18 kNN points over the random floor in about 3 minutes
        "digits": {"method": {"temperature": 0.2},
                   "pretrain": {"views": [{"count": 2, "scale": [0.2, 1.0], "blur_p": 0.5}]}},
        "fashion-mnist": {"method": {"temperature": 0.2},
                          "pretrain": {"views": [{"count": 2, "scale": [0.2, 1.0],
                                                  "blur_p": 0.5}]}},
        "cifar10": {  # the seed's command lines
            "pretrain": {
                "epochs": 1000, "batch_size": 512,
                "optimizer": {"name": "lars_simclr", "lr": 1.0, "weight_decay": 1e-4,
                              "momentum": 0.9},
                "schedule": {"name": "cosine", "warmup_epochs": 10, "warmup_lr": 0.0,
                             "final_lr": 0.0},
            },
        },
        # solo-learn scripts/pretrain/imagenet-100/simclr.yaml (see _recipes.py for the commit and
        # what every such file shares): ResNet-18, projector 4096 -> 512, temperature 0.2, LARS
        # lr 0.3 at batch 256, wd 1e-4, symmetric views; linear probe lr 1.0
        # (scripts/linear/imagenet-100/simclr.yaml)
        "imagenet100": solo_imagenet100(
            solo_optimizer("lars", 0.3, 1e-4), SYMMETRIC, linear_lr=1.0,
            method={"proj_hidden_dim": 4096, "proj_dim": 512, "temperature": 0.2}),
        # the paper (Chen et al. 2020), ResNet-50: §2.3's default setting (LARS lr 0.3 x batch/256,
        # i.e. 4.8 at batch 4096, wd 1e-6, 10 warm-up epochs then cosine), §6's 1000 epochs (the
        # schedule of its headline 69.3% linear accuracy, Table 6), Appendix A's colour
        # distortion of strength 1 (jitter 0.8, 0.8, 0.8, 0.2) and blur p 0.5, projector 2048 ->
        # 128; temperature 0.1 as the authors' ImageNet command (google-research/simclr README at
        # 383d4143). Biases and BN excluded from LARS as in their code (lars_simclr).
        "imagenet": {
            "method": {"proj_hidden_dim": 2048, "proj_dim": 128, "temperature": 0.1},
            "pretrain": paper_pretrain(
                {"name": "lars_simclr", "lr": 0.3, "scale_lr_with_batch": True,
                 "weight_decay": 1e-6, "momentum": 0.9},
                epochs=1000, batch_size=4096,
                views=[SIMCLR_VIEW.model_copy(update={"jitter": (0.8, 0.8, 0.8, 0.2)})
                       .model_dump()]),
        },
    }

    def __init__(self, backbone: nn.Module, cfg: SimCLRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.projector = mlp(backbone.feature_dim, cfg.proj_hidden_dim, cfg.proj_dim)

    def forward(self, views, labels=None):
        z1, z2 = (self.projector(self.backbone(v)) for v in views[:2])
        loss = nt_xent(z1, z2, self.cfg.temperature)
        return loss, {"nt_xent": loss.detach()}


@hookimpl
def sslbench_register_methods(register):
    register("simclr", SimCLR, display="SimCLR")
