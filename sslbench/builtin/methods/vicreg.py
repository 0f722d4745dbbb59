"""VICReg: variance-invariance-covariance regularisation of two views' embeddings.

Bardes, Ponce & LeCun 2022, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", https://arxiv.org/abs/2105.04906. For embeddings ``Z, Z'`` of shape
``[N, D]`` (Eq. 6):

    l(Z, Z') = lambda * s(Z, Z') + mu * [v(Z) + v(Z')] + nu * [c(Z) + c(Z')]

with the invariance ``s`` (mean squared distance, Eq. 5), the variance ``v`` (hinge on the
standard deviation of each dimension, Eq. 1-2) and the covariance ``c`` (sum of squared
off-diagonal covariances over ``D``, Eq. 3-4). The variance term is computed as in the
authors' code (facebookresearch/vicreg), ``mu * [v(Z) + v(Z')] / 2``: their published weights
25 / 25 / 1 were tuned with that halved term, so Eq. 6 taken literally would double the
effective ``mu``.

Paper defaults: lambda = mu = 25, nu = 1, gamma = 1, epsilon = 1e-4; an expander of three
8192-d linear layers (BN + ReLU after the first two); BYOL's asymmetric views; LARS, base lr
0.2 x batch / 256, weight decay 1e-6, batch 2048, 1000 epochs with 10 warm-up epochs. The CPU
recipes below (digits, Fashion-MNIST) shrink the expander to 512 so one epoch takes seconds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from sslbench import StrictModel, ViewSpec, fp32_loss, gather, hookimpl, mlp

from ._recipes import VICREG, paper_pretrain, solo_imagenet100, solo_optimizer


def invariance(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """``s(Z, Z') = 1/N sum_i ||z_i - z'_i||^2``, as the paper's code: the mean over N x D."""
    return F.mse_loss(z_a, z_b)


def variance(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """``v(Z) = 1/D sum_j max(0, gamma - sqrt(Var(z^j) + eps))`` over the batch of ``[N, D]``.

    ``eps`` keeps the gradient of the square root finite when a dimension has collapsed.
    """
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance(z: torch.Tensor) -> torch.Tensor:
    """``c(Z) = 1/D sum_{i != j} C(Z)_ij^2`` with ``C(Z)`` the ``[D, D]`` covariance matrix."""
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / (n - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


@fp32_loss
def vicreg_loss(z_a: torch.Tensor, z_b: torch.Tensor, lam: float = 25.0, mu: float = 25.0,
                nu: float = 1.0, gamma: float = 1.0, eps: float = 1e-4):
    """Eq. 6 on ``[N, D]`` embeddings, the variance term halved as in the authors' code;
    returns ``(loss, {"invariance", "variance", "covariance"})``. Statistics span the global
    batch: both are gathered across processes."""
    z_a, z_b = gather(z_a.float()), gather(z_b.float())
    s = invariance(z_a, z_b)
    v = (variance(z_a, gamma, eps) + variance(z_b, gamma, eps)) / 2
    c = covariance(z_a) + covariance(z_b)
    loss = lam * s + mu * v + nu * c
    return loss, {"invariance": s.detach(), "variance": v.detach(), "covariance": c.detach()}


class VICRegConfig(StrictModel):
    expander_dim: int = Field(8192, ge=1, description="width of the expander's three layers")
    expander_layers: int = Field(3, ge=1)
    invariance_weight: float = Field(25.0, ge=0.0, description="lambda")
    variance_weight: float = Field(25.0, ge=0.0, description="mu")
    covariance_weight: float = Field(1.0, ge=0.0, description="nu")
    gamma: float = Field(1.0, gt=0.0, description="target standard deviation")
    eps: float = Field(1e-4, gt=0.0)


# BYOL's asymmetric pair (the paper's Appendix C): always blur the first view, sometimes
# solarize the second.
VIEWS = [
    ViewSpec(count=1, scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.2, 0.1), jitter_p=0.8,
             grayscale_p=0.2, blur_p=1.0, solarize_p=0.0),
    ViewSpec(count=1, scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.2, 0.1), jitter_p=0.8,
             grayscale_p=0.2, blur_p=0.1, solarize_p=0.2),
]
CPU_RECIPE = {"method": {"expander_dim": 512},
              "pretrain": {"views": [{"count": 2, "scale": [0.2, 1.0], "blur_p": 0.5}]}}


class VICReg(nn.Module):
    """VICReg (Bardes et al. 2022): invariance, variance and covariance terms, no negatives."""

    Config = VICRegConfig
    views = VIEWS
    recipes = {
        "digits": CPU_RECIPE,
        # Fashion-MNIST: the dataset's SGD lr 0.3 (set for SimCLR) made the loss non-finite
        # within the first epoch; at digits' 0.1 ten epochs measured kNN +5.6 over the floor
        "fashion-mnist": {"method": {"expander_dim": 512}, "pretrain": {"optimizer": {"lr": 0.1}}},
        # solo-learn scripts/pretrain/imagenet-100/vicreg.yaml (see _recipes.py): ResNet-18,
        # expander 2048 -> 2048 (sslbench's expander is one width), weights 25 / 25 / 1, LARS
        # lr 0.3 at batch 256, wd 1e-4, its own views (crop scale 0.2-1, blur p 0.5, solarize
        # p 0.1 on both); linear probe lr 0.3 (the dataset's, as
        # scripts/linear/imagenet-100/vicreg.yaml)
        "imagenet100": solo_imagenet100(
            solo_optimizer("lars", 0.3, 1e-4), VICREG, linear_lr=0.3,
            method={"expander_dim": 2048, "invariance_weight": 25.0, "variance_weight": 25.0,
                    "covariance_weight": 1.0}),
        # the paper (Bardes et al. 2022), ResNet-50, its 1000-epoch run (Table 1) as the authors'
        # command (facebookresearch/vicreg README at 4e12602f: batch 2048, base lr 0.2 x batch /
        # 256, wd 1e-6; main_vicreg.py: 10 warm-up epochs from 0, cosine to 0.001 x the peak lr,
        # i.e. 0.0016 here, LARS eta 0.001 with the update's norm in the ratio and biases and
        # norms excluded: lars_simclr), expander 3 x 8192, BYOL's views (the method's default)
        "imagenet": {
            "method": {"expander_dim": 8192, "invariance_weight": 25.0, "variance_weight": 25.0,
                       "covariance_weight": 1.0},
            "pretrain": paper_pretrain(
                {"name": "lars_simclr", "lr": 0.2, "scale_lr_with_batch": True,
                 "weight_decay": 1e-6, "momentum": 0.9},
                epochs=1000, batch_size=2048, final_lr=0.2 * 2048 / 256 * 0.001),
        },
    }

    def __init__(self, backbone: nn.Module, cfg: VICRegConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        d = cfg.expander_dim
        self.expander = mlp(backbone.feature_dim, d, d, layers=cfg.expander_layers)

    def forward(self, views, labels=None):
        z_a, z_b = (self.expander(self.backbone(v)) for v in views[:2])
        c = self.cfg
        return vicreg_loss(z_a, z_b, c.invariance_weight, c.variance_weight,
                           c.covariance_weight, c.gamma, c.eps)


@hookimpl
def sslbench_register_methods(register):
    register("vicreg", VICReg, display="VICReg")
