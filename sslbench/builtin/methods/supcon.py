"""SupCon: supervised contrastive learning, every same-label sample in the batch is a positive.

Khosla et al. 2020, "Supervised Contrastive Learning", https://arxiv.org/abs/2004.11362.
The "L_out" form (Eq. 2, the better of the two in the paper): for each anchor i,

    L_i = -(tau / tau_base) * 1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / tau)
                                                           / sum_{a in A(i)} exp(z_i.z_a / tau) )

with A(i) every other view in the batch and P(i) those with the label of i. Defaults as the
authors' code: temperature 0.07, base temperature 0.07, projector 2048 -> 128; their CIFAR-10
command line: temperature 0.1, SGD lr 0.5, batch 1024, wd 1e-4, 1000 epochs, cosine schedule,
linear probe lr 5 at batch 512.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from sslbench import StrictModel, ViewSpec, fp32_loss, gather, hookimpl, mlp

from ._recipes import SYMMETRIC, solo_imagenet100, solo_optimizer


def positive_mask(labels: torch.Tensor) -> torch.Tensor:
    """``P[i, j]``: j != i and j has the label of i (``labels`` ``[M]`` -> bool ``[M, M]``)."""
    same = labels.view(-1, 1) == labels.view(1, -1)
    return same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)


@fp32_loss
def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07,
                base_temperature: float = 0.07) -> torch.Tensor:
    """L_out averaged over all anchors.

    ``z``: ``[M, D]`` projections of every view (M = views x batch), ``labels``: ``[M]``.
    Anchors without any positive (a label seen once, one view) are left out of the mean.
    """
    z = F.normalize(z.float(), dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))  # A(i) excludes the anchor itself
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
    pos = positive_mask(labels)
    n_pos = pos.sum(dim=1)
    mean_log_prob_pos = log_prob.masked_fill(~pos, 0.0).sum(dim=1) / n_pos.clamp(min=1)
    has_pos = n_pos > 0
    return -(temperature / base_temperature) * mean_log_prob_pos[has_pos].mean()


class SupConConfig(StrictModel):
    proj_hidden_dim: int = Field(2048, ge=1)
    proj_dim: int = Field(128, ge=1)
    temperature: float = Field(0.07, gt=0.0)
    base_temperature: float = Field(0.07, gt=0.0)


class SupCon(nn.Module):
    """SupCon (Khosla et al. 2020): contrastive loss whose positives are all same-label views."""

    Config = SupConConfig
    needs_labels = True
    # the authors' CIFAR augmentation: SimCLR's without blur
    views = [ViewSpec(count=2, scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8,
                      grayscale_p=0.2)]
    recipes = {
        "cifar10": {  # the authors' SupContrast command line (--temp 0.1, base stays 0.07)
            "method": {"temperature": 0.1},
            "pretrain": {
                "epochs": 1000, "batch_size": 1024,
                "optimizer": {"name": "sgd", "lr": 0.5, "weight_decay": 1e-4, "momentum": 0.9},
                "schedule": {"name": "cosine", "warmup_epochs": 10, "warmup_lr": 0.0,
                             "final_lr": 0.0},
            },
            "eval": {"linear": {"epochs": 100, "batch_size": 512,
                                "optimizer": {"name": "sgd", "lr": 5.0, "weight_decay": 0.0,
                                              "momentum": 0.9}}},
        },
        # solo-learn scripts/pretrain/imagenet-100/supcon.yaml (see _recipes.py): ResNet-18,
        # projector 2048 -> 512, temperature 0.2 (solo-learn's loss has no base temperature:
        # base_temperature = temperature leaves it unscaled), SGD lr 0.5 at batch 256, wd 1e-5,
        # symmetric views. solo-learn publishes no SupCon linear config: the dataset's probe
        "imagenet100": solo_imagenet100(
            solo_optimizer("sgd", 0.5, 1e-5), SYMMETRIC,
            method={"proj_hidden_dim": 2048, "proj_dim": 512, "temperature": 0.2,
                    "base_temperature": 0.2}),
    }

    def __init__(self, backbone: nn.Module, cfg: SupConConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.projector = mlp(backbone.feature_dim, cfg.proj_hidden_dim, cfg.proj_dim)

    def forward(self, views, labels=None):
        if labels is None:
            raise ValueError("SupCon needs labels: the engine passes them to needs_labels methods")
        z = torch.cat([self.projector(self.backbone(v)) for v in views])
        labels = labels.repeat(len(views))  # view-major, as torch.cat above
        loss = supcon_loss(gather(z), gather(labels), self.cfg.temperature,
                           self.cfg.base_temperature)
        return loss, {"supcon": loss.detach()}


@hookimpl
def sslbench_register_methods(register):
    register("supcon", SupCon, display="SupCon")
