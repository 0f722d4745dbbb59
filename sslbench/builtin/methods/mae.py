"""MAE: a ViT encodes a random 25% of an image's patches; a light decoder reconstructs the rest.

He et al. 2021, "Masked Autoencoders Are Scalable Vision Learners",
https://arxiv.org/abs/2111.06377. Each image is cut into patches; a random ``mask_ratio``
(75%) of them is removed and the encoder sees only the visible ones (Section 3, "MAE
encoder"); the decoder takes the encoded visible tokens plus a shared, learned mask token at
every removed position, adds its own position embeddings, and predicts each patch's pixels.
The loss is the mean squared error on the removed patches only, against the pixels normalised
per patch by their own mean and standard deviation ("Reconstruction target", the paper's
``norm_pix_loss``, its better-performing variant).

Paper defaults: mask ratio 0.75; decoder 8 blocks of 512-d (16 heads) for ViT-L (a light
decoder: <10% of the encoder's compute); augmentation random resized crop (scale 0.2-1) and
flip only; AdamW lr 1.5e-4 x batch / 256, betas (0.9, 0.95), wd 0.05, 40 warm-up epochs,
800-1600 epochs, batch 4096. The decoder's position embeddings are learned here (the paper
fixes them to 2-d sin-cos). After pretraining only the encoder is kept: its [CLS] feature is
evaluated by the same linear / kNN protocol as every other method.

The backbone must expose the patch layout and an encoder of a subset of patches
(``backbone_requires``): the built-in ViTs do, a CNN does not (a usage error at resolution).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from sslbench import StrictModel, ViewSpec, fp32_loss, hookimpl

from ._recipes import RECONSTRUCTION, solo_imagenet100, solo_optimizer, solo_pretrain


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, N, p * p * C]``, patches in row-major order (as the ViT's)."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def random_masking(batch: int, num_patches: int, mask_ratio: float,
                   device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample random subsets: kept patch indices ``[B, K]`` (sorted) and the boolean mask
    ``[B, N]`` of removed patches, ``K = round(N (1 - mask_ratio))``, at least 1."""
    keep_count = max(1, round(num_patches * (1 - mask_ratio)))
    noise = torch.rand(batch, num_patches, device=device)
    keep = noise.argsort(dim=1)[:, :keep_count].sort(dim=1).values
    mask = torch.ones(batch, num_patches, dtype=torch.bool, device=device)
    mask.scatter_(1, keep, False)
    return keep, mask


def normalised_pixels(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each patch ``[..., P]`` standardised by its own mean and (unbiased) variance."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


@fp32_loss
def masked_reconstruction_loss(pred: torch.Tensor, target: torch.Tensor,
                               mask: torch.Tensor) -> torch.Tensor:
    """Mean over removed patches of the per-patch mean squared error.

    ``pred``, ``target``: ``[B, N, P]``; ``mask``: ``[B, N]``, true where a patch was removed.
    """
    per_patch = (pred - target.detach()).pow(2).mean(dim=-1)
    weight = mask.float()
    return (per_patch * weight).sum() / weight.sum()


class MAEConfig(StrictModel):
    mask_ratio: float = Field(0.75, gt=0.0, lt=1.0)
    decoder_dim: int = Field(512, ge=1)
    decoder_depth: int = Field(8, ge=1)
    decoder_heads: int = Field(16, ge=1)
    norm_pix_loss: bool = True


class MAEDecoder(nn.Module):
    """Mask tokens scattered among the encoded visible tokens, transformer blocks, pixels."""

    def __init__(self, embed_dim: int, num_patches: int, patch_dim: int,
                 cfg: MAEConfig) -> None:
        super().__init__()
        if cfg.decoder_dim % cfg.decoder_heads:
            raise ValueError(f"decoder_dim {cfg.decoder_dim} is not a multiple of "
                             f"decoder_heads {cfg.decoder_heads}")
        d = cfg.decoder_dim
        self.embed = nn.Linear(embed_dim, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, d))
        layer = nn.TransformerEncoderLayer(d, cfg.decoder_heads, 4 * d, dropout=0.0,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.decoder_depth,
                                            enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.pred = nn.Linear(d, patch_dim)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent: torch.Tensor, keep: torch.Tensor, num_patches: int):
        """``latent``: ``[B, 1 + K, D]`` ([CLS] first) -> predicted patches ``[B, N, P]``."""
        tokens = self.embed(latent)
        cls, visible = tokens[:, :1], tokens[:, 1:]
        b, _, d = visible.shape
        full = self.mask_token.to(visible.dtype).expand(b, num_patches, d)
        full = full.scatter(1, keep.unsqueeze(-1).expand(-1, -1, d), visible)
        x = torch.cat([cls, full], dim=1) + self.pos_embed
        return self.pred(self.norm(self.blocks(x)))[:, 1:]


class MAE(nn.Module):
    """MAE (He et al. 2021): reconstruct the masked 75% of the patches from the visible 25%."""

    Config = MAEConfig
    backbone_requires = ("encode_visible", "patch_size", "num_patches")
    views = [ViewSpec(count=1, scale=(0.2, 1.0), jitter_p=0.0, grayscale_p=0.0)]
    _cpu = {"method": {"decoder_dim": 128, "decoder_depth": 2, "decoder_heads": 4},
            "pretrain": {"optimizer": {"name": "adamw", "lr": 1e-3, "momentum": 0.9,
                                       "weight_decay": 0.05, "options": {"beta2": 0.95}}}}
    recipes = {
        "digits": _cpu,
        "fashion-mnist": _cpu,
        # solo-learn's CIFAR config (scripts/pretrain/cifar/mae.yaml): ViT-S, patch 4,
        # decoder 8 x 512-d (16 heads), AdamW lr 2e-4, betas (0.9, 0.95), wd 0.05, 1000 epochs
        "cifar10": {
            "pretrain": {
                "epochs": 1000, "batch_size": 256,
                "optimizer": {"name": "adamw", "lr": 2e-4, "scale_lr_with_batch": True,
                              "momentum": 0.9, "weight_decay": 0.05,
                              "options": {"beta2": 0.95}},
                "schedule": {"name": "cosine", "warmup_epochs": 10, "warmup_lr": 0.0,
                             "final_lr": 0.0},
            },
        },
        # solo-learn scripts/pretrain/imagenet-100/mae.yaml (see _recipes.py): decoder 8 x 512-d,
        # 16 heads, mask ratio 0.75, normalised pixel targets, AdamW lr 2e-4 at batch 256,
        # betas (0.9, 0.95), wd 0.05, warm-up from 0, crop + flip views, 400 epochs. solo-learn
        # trains a ViT-B/16, which sslbench does not build: use vit_small. No linear config is
        # published for it: the dataset's probe
        "imagenet100": solo_imagenet100(
            solo_optimizer("adamw", 2e-4, 0.05, beta2=0.95), RECONSTRUCTION, warmup_lr=0.0,
            method={"decoder_dim": 512, "decoder_depth": 8, "decoder_heads": 16,
                    "mask_ratio": 0.75, "norm_pix_loss": True}),
        # solo-learn scripts/pretrain/imagenet/mae.yaml: the same, batch 64 on 2 devices (128),
        # so lr 2e-4 x 128 / 256 (ViT-B/16 there too)
        "imagenet": {
            "method": {"decoder_dim": 512, "decoder_depth": 8, "decoder_heads": 16,
                       "mask_ratio": 0.75, "norm_pix_loss": True},
            "pretrain": solo_pretrain(solo_optimizer("adamw", 2e-4, 0.05, beta2=0.95),
                                      RECONSTRUCTION, epochs=400, batch_size=128, warmup_lr=0.0),
        },
    }

    def __init__(self, backbone: nn.Module, cfg: MAEConfig) -> None:
        super().__init__()
        missing = [a for a in self.backbone_requires if not hasattr(backbone, a)]
        if missing:
            raise ValueError(f"MAE needs a ViT backbone (vit_tiny, vit_small): the backbone "
                             f"has no {missing[0]!r}")
        self.cfg = cfg
        self.backbone = backbone
        patch_dim = backbone.patch_size ** 2 * 3
        self.decoder = MAEDecoder(backbone.feature_dim, backbone.num_patches, patch_dim, cfg)

    def forward(self, views, labels=None):
        x = views[0]
        n = self.backbone.num_patches
        keep, mask = random_masking(len(x), n, self.cfg.mask_ratio, x.device)
        latent = self.backbone.encode_visible(x, keep)
        pred = self.decoder(latent, keep, n)
        target = patchify(x.float(), self.backbone.patch_size)
        if self.cfg.norm_pix_loss:
            target = normalised_pixels(target)
        loss = masked_reconstruction_loss(pred, target, mask)
        return loss, {"reconstruction": loss.detach()}


@hookimpl
def sslbench_register_methods(register):
    register("mae", MAE, display="MAE")
