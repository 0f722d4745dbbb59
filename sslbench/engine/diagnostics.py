"""Collapse diagnostics of an embedding: RankMe and the per-dimension feature std.

Both are label-free, so they tell a collapsed backbone (all images mapped near one point, or
onto a few directions) from one that is merely slow to learn, whatever the probes say.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

RANKME_SAMPLES = 25_600  # Garrido et al. 2023 estimate RankMe on 25,600 images
EPS = 1e-7  # the paper's epsilon in p_k = sigma_k / ||sigma||_1 + eps


@dataclass(frozen=True)
class Diagnostics:
    rankme: float  # effective rank, 1 <= rankme <= min(N, D)
    feature_std: float  # mean over dimensions of the std of the L2-normalised features


def rankme(z: torch.Tensor, eps: float = EPS) -> float:
    """RankMe (Garrido et al. 2023, "RankMe: assessing the downstream performance of pretrained
    self-supervised representations by their rank"): ``exp(-sum_k p_k log p_k)`` with
    ``p_k = sigma_k / ||sigma||_1 + eps``, ``sigma`` the singular values of ``z`` ``[N, D]``.

    A matrix of rank ``k`` with ``k`` equal singular values has RankMe ``k``; a collapsed one
    (all rows equal) has RankMe 1.
    """
    sigma = torch.linalg.svdvals(z.double())
    total = sigma.sum()
    if total <= 0:
        return 1.0  # the zero matrix: nothing spans any direction
    p = sigma / total + eps
    # the epsilon can take a one-column matrix a hair below 1, its least possible rank
    return max(1.0, float(torch.exp(-(p * p.log()).sum())))


def feature_std(z: torch.Tensor) -> float:
    """Mean per-dimension std of the L2-normalised rows of ``z`` (SimSiam, Chen & He 2021, §4):
    0 for a collapsed embedding, about ``1 / sqrt(D)`` for one spread evenly over the sphere."""
    return float(F.normalize(z.double(), dim=1).std(0).mean())


def diagnose(z: torch.Tensor, samples: int = RANKME_SAMPLES, seed: int = 0) -> Diagnostics:
    """Both diagnostics of the features ``z`` ``[N, D]``, on a fixed (seeded) sample of at most
    ``samples`` rows: the same rows for every method."""
    if len(z) > samples:
        z = z[torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))[:samples]]
    return Diagnostics(rankme(z), feature_std(z))
