"""SwAV: predict the cluster assignment (code) of one view from the other views.

Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments", https://arxiv.org/abs/2006.09882. Paper defaults: projector 2048 -> 128 onto the
unit sphere, 3000 prototypes re-normalised after every step, codes from Sinkhorn-Knopp
(epsilon 0.05, 3 iterations) on stop-gradient scores of the two global crops, swapped
prediction with temperature 0.1, multi-crop 2 x 224 px (scale 0.14-1) + 6 x 96 px (scale
0.05-0.14), prototypes frozen during the first epoch, optional queue of past embeddings
(3840 for batch 256) started after 15 epochs. LARS lr 0.6 at batch 256, wd 1e-6.
"""

from __future__ import annotations

from itertools import groupby

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from sslbench import RingBuffer, StrictModel, ViewSpec, fp32_loss, gather, hookimpl, mlp, rank

from ._recipes import SYMMETRIC, paper_pretrain, solo_imagenet100, solo_optimizer


@fp32_loss
@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, eps: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Codes ``[B, K]`` for scores ``[B, K]`` (Eq. 3 of the paper, Sinkhorn-Knopp iterations).

    ``Q = exp(C^T Z / eps)`` (``[K, B]``) is rescaled alternately so that every prototype gets
    ``1/K`` of the mass and every sample ``1/B``; the result, times B, has rows (samples) that
    sum to exactly 1 and columns (prototypes) that sum to about B/K.
    """
    scores = scores.float()
    q = torch.exp((scores - scores.max()) / eps).T  # the max shift cancels in the normalisation
    q /= q.sum()
    k, b = q.shape
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True)  # each prototype: total mass 1/K
        q /= k
        q /= q.sum(dim=0, keepdim=True)  # each sample: total mass 1/B
        q /= b
    return (q * b).T


@fp32_loss
def swapped_prediction(scores: torch.Tensor, codes: torch.Tensor,
                       temperature: float = 0.1) -> torch.Tensor:
    """``-sum_k q_k log softmax(z . c_k / T)`` averaged over the batch (Eq. 2, one term).

    ``scores``: ``[B, K]`` of the view that predicts, ``codes``: ``[B, K]`` of another view.
    """
    return -(codes * F.log_softmax(scores.float() / temperature, dim=1)).sum(dim=1).mean()


def global_codes(scores: torch.Tensor, batch: int, eps: float, iterations: int) -> torch.Tensor:
    """Codes of the last ``batch`` rows of this process's ``scores`` (queue rows first),
    with the equipartition taken over every process's scores."""
    codes = sinkhorn_knopp(gather(scores), eps, iterations)
    start = rank() * len(scores)
    return codes[start:start + len(scores)][-batch:]


class SwAVConfig(StrictModel):
    proj_hidden_dim: int = Field(2048, ge=1)
    proj_dim: int = Field(128, ge=1)
    num_prototypes: int = Field(3000, ge=2)
    temperature: float = Field(0.1, gt=0.0)
    sinkhorn_eps: float = Field(0.05, gt=0.0)
    sinkhorn_iterations: int = Field(3, ge=1)
    assign_views: int = Field(2, ge=1)  # codes are computed for the first views (global crops)
    freeze_prototypes_epochs: int = Field(1, ge=0)
    queue_length: int = Field(0, ge=0)  # 0: no queue
    queue_start_epoch: int = Field(15, ge=0)


def multi_crop(small: int, global_size: float = 1.0, small_size: float = 96 / 224,
               global_scale=(0.14, 1.0), small_scale=(0.05, 0.14)) -> list[ViewSpec]:
    """SwAV's augmentation: 2 global crops then ``small`` low-resolution ones (sizes relative)."""
    common = dict(jitter=(0.8, 0.8, 0.8, 0.2), jitter_p=0.8, grayscale_p=0.2, blur_p=0.5)
    views = [ViewSpec(count=2, size=global_size, scale=global_scale, **common)]
    if small:
        views.append(ViewSpec(count=small, size=small_size, scale=small_scale, **common))
    return views


class SwAV(nn.Module):
    """SwAV (Caron et al. 2020): online clustering with swapped prediction and multi-crop."""

    Config = SwAVConfig
    views = multi_crop(6)
    _cpu = {"method": {"num_prototypes": 100},  # ~10x the classes, as the paper advises
            "pretrain": {"views": [v.model_dump() for v in
                                   multi_crop(4, small_size=0.5, global_scale=(0.3, 1.0),
                                              small_scale=(0.1, 0.3))]}}
    recipes = {
        "digits": _cpu,
        # six crops per image cost 1.5x SimCLR's two: 30 epochs keep it within 10 CPU minutes
        "fashion-mnist": {**_cpu, "pretrain": {**_cpu["pretrain"], "epochs": 30}},
        "cifar10": {
            "method": {"queue_length": 3840, "queue_start_epoch": 50},
            "pretrain": {
                "epochs": 800, "batch_size": 256,
                "views": [v.model_dump() for v in multi_crop(6, small_size=0.5)],
                "optimizer": {"name": "lars", "lr": 0.6, "weight_decay": 1e-6, "momentum": 0.9},
                "schedule": {"name": "cosine", "warmup_epochs": 10, "warmup_lr": 0.0,
                             "final_lr": 0.0},
            },
        },
        # solo-learn scripts/pretrain/imagenet-100/swav.yaml (see _recipes.py): ResNet-18, two
        # symmetric 224 px views (no multi-crop), projector 2048 -> 128, 3000 prototypes frozen
        # for 2 epochs, temperature 0.1, queue 3840 from epoch 50, Sinkhorn eps 0.05 x 3
        # (solo-learn's defaults), LARS lr 0.6 at batch 256, wd 1e-6; linear probe lr 0.15
        # (scripts/linear/imagenet-100/swav.yaml)
        "imagenet100": solo_imagenet100(
            solo_optimizer("lars", 0.6, 1e-6), SYMMETRIC, linear_lr=0.15,
            method={"proj_hidden_dim": 2048, "proj_dim": 128, "num_prototypes": 3000,
                    "temperature": 0.1, "queue_length": 3840, "queue_start_epoch": 50,
                    "freeze_prototypes_epochs": 2, "sinkhorn_eps": 0.05,
                    "sinkhorn_iterations": 3}),
        # the paper (Caron et al. 2020), ResNet-50, its headline 800-epoch run (75.3%, Table 1),
        # as facebookresearch/swav scripts/swav_800ep_pretrain.sh (06b1b7cb) runs it: 64 GPUs x 64
        # = batch 4096, multi-crop 2 x 224 (scale 0.14-1) + 6 x 96 (0.05-0.14) (the method's
        # default views), LARC (eta 0.001, clip=False: sslbench's larc in "scale" mode) over SGD,
        # base lr 4.8 = 0.3 x 4096 / 256, final lr 0.0048, 10 warm-up epochs from 0.3, wd 1e-6,
        # 3000 prototypes frozen for 313 iterations (one epoch at this batch), no queue
        "imagenet": {
            "method": {"proj_hidden_dim": 2048, "proj_dim": 128, "num_prototypes": 3000,
                       "temperature": 0.1, "queue_length": 0, "freeze_prototypes_epochs": 1,
                       "sinkhorn_eps": 0.05, "sinkhorn_iterations": 3},
            "pretrain": paper_pretrain(
                {"name": "larc", "lr": 0.3, "scale_lr_with_batch": True, "weight_decay": 1e-6,
                 "momentum": 0.9, "options": {"eta": 0.001, "mode": "scale"}},
                epochs=800, batch_size=4096, warmup_lr=0.3, final_lr=0.0048),
        },
    }

    def __init__(self, backbone: nn.Module, cfg: SwAVConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.projector = mlp(backbone.feature_dim, cfg.proj_hidden_dim, cfg.proj_dim)
        self.prototypes = nn.Linear(cfg.proj_dim, cfg.num_prototypes, bias=False)
        self.normalize_prototypes()
        # past embeddings of each assigned view (row order is irrelevant to Sinkhorn)
        self.queues = nn.ModuleList(RingBuffer(cfg.queue_length, cfg.proj_dim)
                                    for _ in range(cfg.assign_views if cfg.queue_length else 0))
        self.queue_active = False

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        w = self.prototypes.weight
        w.copy_(F.normalize(w, dim=1))

    def embed(self, views) -> list[torch.Tensor]:
        """Unit-norm projections of every view; views of one resolution go through together."""
        out = []
        for _, group in groupby(views, key=lambda v: v.shape[-2:]):
            group = list(group)
            z = F.normalize(self.projector(self.backbone(torch.cat(group))), dim=1)
            out += z.chunk(len(group))
        return out

    def forward(self, views, labels=None):
        n_assign = self.cfg.assign_views
        if len(views) <= n_assign:
            raise ValueError(f"SwAV needs more than assign_views={n_assign} views, "
                             f"got {len(views)}")
        z = self.embed(views)
        scores = [self.prototypes(zi) for zi in z]  # [B, K] per view
        loss = scores[0].new_zeros((), dtype=torch.float32)
        for i in range(n_assign):
            codes = self.codes(i, scores[i].detach(), z[i].detach())
            for v in range(len(views)):
                if v != i:
                    loss = loss + swapped_prediction(scores[v], codes, self.cfg.temperature)
        loss = loss / (n_assign * (len(views) - 1))
        return loss, {"swapped_prediction": loss.detach()}

    @torch.no_grad()
    def codes(self, i: int, scores: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Sinkhorn codes of assigned view ``i``, with the queue's scores once it is full."""
        b = len(scores)
        if self.queue_active and self.queues[i].is_full():
            scores = torch.cat([self.prototypes(self.queues[i].items.to(z.dtype)).float(),
                                scores.float()])
        codes = global_codes(scores, b, self.cfg.sinkhorn_eps, self.cfg.sinkhorn_iterations)
        if self.queue_active:
            self.queues[i].push(z)
        return codes

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        # frozen prototypes get no gradient (grad None), so the optimizer leaves them alone
        self.prototypes.weight.requires_grad_(epoch >= self.cfg.freeze_prototypes_epochs)
        self.queue_active = self.cfg.queue_length > 0 and epoch >= self.cfg.queue_start_epoch

    def after_step(self, step: int, total_steps: int) -> None:
        self.normalize_prototypes()


@hookimpl
def sslbench_register_methods(register):
    register("swav", SwAV, display="SwAV")
