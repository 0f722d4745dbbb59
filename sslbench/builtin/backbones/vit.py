"""Vision Transformers (Dosovitskiy et al. 2021) sized for small images, written in plain torch.

``vit_tiny`` (192-d, 12 blocks, 3 heads; Touvron et al. 2021's DeiT-Ti) and ``vit_small``
(384-d, 12 blocks, 6 heads; DeiT-S, the backbone of DINO and MoCo v3). The patch size follows
the image size, like the ResNets' stem: 4 px up to 64 px images (8 x 8 tokens at 32 px, as in
the CIFAR ViTs of solo-learn), 16 px above (14 x 14 tokens at 224 px, as in the papers);
``patch_size`` overrides it, and must divide the image size. Pre-norm blocks, a learnable
[CLS] token and learnable position embeddings (truncated normal, std 0.02); the feature is the
final-normed [CLS] token (``pool="mean"`` averages the patch tokens instead).

Masked image modelling (MAE) needs more than features: :meth:`VisionTransformer.encode_visible`
encodes only a subset of the patches, and ``patch_size`` / ``grid`` tell the decoder the layout.
A method that needs it declares ``backbone_requires = ("encode_visible",)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslbench import UsageError, hookimpl

SMALL_IMAGE_MAX = 64
SIZES = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6)}  # dim, depth, heads
DISPLAY = {"vit_tiny": "ViT-Tiny", "vit_small": "ViT-Small"}


def default_patch_size(image_size: int) -> int:
    return 4 if image_size <= SMALL_IMAGE_MAX else 16


class VisionTransformer(nn.Module):
    """A ViT encoder: patch embedding, [CLS] + position embeddings, pre-norm blocks, norm."""

    def __init__(self, image_size: int, patch_size: int, dim: int, depth: int, heads: int,
                 mlp_ratio: float = 4.0, pool: str = "cls") -> None:
        super().__init__()
        if patch_size < 1 or image_size % patch_size:
            raise UsageError(f"patch_size {patch_size} does not divide the image size "
                             f"{image_size}; pick a divisor with --set backbone.patch_size=N")
        if pool not in ("cls", "mean"):
            raise UsageError(f"pool must be 'cls' or 'mean', got {pool!r}")
        self.patch_size, self.grid, self.pool = patch_size, image_size // patch_size, pool
        self.embed_dim = self.feature_dim = dim
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid ** 2 + 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout=0.0,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    @property
    def num_patches(self) -> int:
        return self.grid ** 2

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, N, D]`` patch embeddings plus their position embeddings.

        A view of another size (multi-crop's small crops) gets the position embeddings
        resampled bicubically to its grid, as DINO's ViT does.
        """
        tokens = self.patch_embed(x)
        h, w = tokens.shape[-2:]
        pos = self.pos_embed[:, 1:]
        if (h, w) != (self.grid, self.grid):
            grid = pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
            pos = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
            pos = pos.permute(0, 2, 3, 1).reshape(1, h * w, -1)
        return tokens.flatten(2).transpose(1, 2) + pos

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prepend [CLS], run the blocks and the final norm: ``[B, 1 + K, D]``."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(len(tokens), -1, -1)
        return self.norm(self.blocks(torch.cat([cls, tokens], dim=1)))

    def encode_visible(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Encode only the patches ``keep`` (``[B, K]`` indices, row-major): ``[B, 1 + K, D]``
        with the [CLS] token first (MAE's encoder sees the visible patches alone)."""
        tokens = self.patch_tokens(x)
        index = keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
        return self.encode(torch.gather(tokens, 1, index))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.encode(self.patch_tokens(x))
        return out[:, 0] if self.pool == "cls" else out[:, 1:].mean(dim=1)


def _factory(arch: str):
    dim, depth, heads = SIZES[arch]

    def factory(image_size: int, patch_size: int | None = None, pool: str = "cls",
                depth: int = depth) -> nn.Module:
        return VisionTransformer(image_size, patch_size or default_patch_size(image_size),
                                 dim, depth, heads, pool=pool)

    factory.__doc__ = (f"{DISPLAY[arch]} ({dim}-d, {heads} heads); patch 4 up to 64 px, 16 "
                       "above (`patch_size` overrides); [CLS] feature.")
    return factory


# CPU recipes: the datasets' SGD at lr 0.1-0.3 suits ResNets; ViTs train with AdamW (DeiT's
# lr 5e-4 and wd 0.05). Digits are 8 px: patch 2 gives 16 tokens (patch 4 would leave 4).
_ADAMW = {"optimizer": {"name": "adamw", "lr": 5e-4, "momentum": 0.9, "weight_decay": 0.05}}
RECIPES = {"digits": {"backbone": {"patch_size": 2}, "pretrain": _ADAMW},
           "fashion-mnist": {"pretrain": _ADAMW}}


@hookimpl
def sslbench_register_backbones(register):
    for arch, display in DISPLAY.items():
        register(arch, _factory(arch), display=display, recipes=RECIPES)
