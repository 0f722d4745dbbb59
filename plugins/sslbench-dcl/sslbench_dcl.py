"""DCL and DCLW: contrastive learning with the positive pair decoupled from the denominator.

Yeh et al. 2022, "Decoupled Contrastive Learning", ECCV 2022, https://arxiv.org/abs/2110.06848.
SimCLR's NT-Xent puts the positive pair in its own denominator, which couples the gradient of
the positive with that of the negatives (the "negative-positive coupling" the paper analyses);
DCL removes it. For unit embeddings ``z_i`` (view 1) and ``z'_i`` (view 2) of ``N`` images:

    L_i = -<z_i, z'_i> / tau + log sum_{k != i} [exp(<z_i, z_k> / tau) + exp(<z_i, z'_k> / tau)]

i.e. SimCLR's 2N - 2 negatives without the positive, symmetrised over both views. DCLW
weights the positive term by ``w_i = 2 - N exp(<z_i, z'_i> / sigma) / sum_k exp(<z_k, z'_k> /
sigma)`` (a von Mises-Fisher weighting), emphasising hard positives. The loss is summed over
the two directions, as in the authors' code.

Paper defaults: temperature 0.1 (CIFAR, batch 256; larger batches 0.1-0.3), sigma 0.5 for
DCLW; SimCLR's projector (2048 -> 128) and augmentation. A plugin of its own: ``pip install
./plugins/sslbench-dcl`` registers ``dcl`` and ``dclw`` through the ``sslbench`` entry point
group, with no change to sslbench.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from sslbench import StrictModel, ViewSpec, fp32_loss, gather, hookimpl, mlp, rank


def positive_weights(z1: torch.Tensor, z2: torch.Tensor, sigma: float) -> torch.Tensor:
    """DCLW's ``w_i = 2 - N softmax_i(<z_i, z'_i> / sigma)`` over the batch (mean weight 1)."""
    similarity = (z1 * z2).sum(dim=1) / sigma
    return 2 - len(z1) * F.softmax(similarity, dim=0)


@fp32_loss
def decoupled_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1,
                               sigma: float | None = None) -> torch.Tensor:
    """DCL of anchors ``z1`` ``[N, D]`` (this process) against the global batch of both views;
    ``sigma`` set: DCLW. One direction; :func:`symmetric_dcl` adds the other."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    all1, all2 = F.normalize(gather(z1), dim=1), F.normalize(gather(z2), dim=1)
    n, offset = len(z1), rank() * len(z1)
    own = torch.arange(n, device=z1.device) + offset
    same_view = z1 @ all1.T / temperature  # [N, M]: the anchor itself is excluded below
    other_view = z1 @ all2.T / temperature  # [N, M]: its positive is excluded below
    rows = torch.arange(n, device=z1.device)
    same_view[rows, own] = float("-inf")
    positive = other_view[rows, own].clone()
    other_view[rows, own] = float("-inf")
    negatives = torch.logsumexp(torch.cat([same_view, other_view], dim=1), dim=1)
    weight = positive_weights(z1, z2, sigma) if sigma is not None else 1.0
    return (-weight * positive + negatives).mean()


def symmetric_dcl(z1, z2, temperature: float = 0.1, sigma: float | None = None) -> torch.Tensor:
    """Both views as anchors, the two directions summed (the authors' code)."""
    return (decoupled_contrastive_loss(z1, z2, temperature, sigma)
            + decoupled_contrastive_loss(z2, z1, temperature, sigma))


class DCLConfig(StrictModel):
    proj_hidden_dim: int = Field(2048, ge=1)
    proj_dim: int = Field(128, ge=1)
    temperature: float = Field(0.1, gt=0.0)


class DCLWConfig(DCLConfig):
    sigma: float = Field(0.5, gt=0.0, description="the von Mises-Fisher weighting's scale")


class DCL(nn.Module):
    """DCL (Yeh et al. 2022): SimCLR's loss without the positive in the denominator."""

    Config = DCLConfig
    views = [ViewSpec(count=2, scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8,
                      grayscale_p=0.2)]
    recipes = {"digits": {"method": {"proj_hidden_dim": 512}},
               "fashion-mnist": {"method": {"proj_hidden_dim": 512}}}

    def __init__(self, backbone: nn.Module, cfg: DCLConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.projector = mlp(backbone.feature_dim, cfg.proj_hidden_dim, cfg.proj_dim)

    def forward(self, views, labels=None):
        z1, z2 = (self.projector(self.backbone(v)) for v in views[:2])
        loss = symmetric_dcl(z1, z2, self.cfg.temperature, getattr(self.cfg, "sigma", None))
        return loss, {"dcl": loss.detach()}


class DCLW(DCL):
    """DCLW (Yeh et al. 2022): DCL with hard positives weighted up (von Mises-Fisher)."""

    Config = DCLWConfig


@hookimpl
def sslbench_register_methods(register):
    register("dcl", DCL, display="DCL")
    register("dclw", DCLW, display="DCLW")
