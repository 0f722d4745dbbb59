"""AlexNet from torchvision, as a pooled feature extractor.

Krizhevsky et al. 2012 (torchvision's one-GPU variant: 64-192-384-256-256 filters). The backbone
is the five-convolution trunk (``features``) and a global average pool, so
``[B, 3, H, W] -> [B, 256]``; the fully connected classifier (sized for a 6x6 map of 224 px
images) is not part of it, as for the other backbones.

Small-image variant (inputs of at most 64 px): the 11x11 stride-4 first convolution becomes a
3x3 stride-1 one (64 filters, as before), and the three 3x3 stride-2 max-pools get a padding of
1 so each halves the map exactly and never shrinks it below 1x1. A 32x32 image then reaches
conv3-5 at 8x8 and leaves the trunk at 4x4 (16 px: 2x2; 8 px: 1x1). The unmodified trunk shrinks
32 px to 7x7 at once and crashes on its last pool (a 1x1 map), as the original project's
AlexNet did.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision
from torch import nn

from sslbench import hookimpl

SMALL_IMAGE_MAX = 64
FEATURE_DIM = 256  # filters of conv5


def alexnet_trunk() -> nn.Sequential:
    """torchvision's ``features``, with torchvision's (PyTorch's default) initialisation.

    Built on the meta device so the dropped 58M-parameter classifier is never allocated.
    """
    with torch.device("meta"):
        features = torchvision.models.alexnet(weights=None).features
    features = features.to_empty(device="cpu")
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            module.reset_parameters()
    return features


def small_image_trunk(features: nn.Sequential) -> None:
    """3x3 stride-1 first convolution; max-pools padded so each exactly halves the map."""
    first = features[0]
    features[0] = nn.Conv2d(3, first.out_channels, kernel_size=3, stride=1, padding=1)
    for index, module in enumerate(features):
        if isinstance(module, nn.MaxPool2d):
            features[index] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


def build_alexnet(image_size: int, small_stem: bool | None = None) -> nn.Module:
    """``[B, 3, H, W] -> [B, 256]``: the trunk, then global average pooling."""
    features = alexnet_trunk()
    if small_stem if small_stem is not None else image_size <= SMALL_IMAGE_MAX:
        small_image_trunk(features)
    model = nn.Sequential(OrderedDict(
        features=features, pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten()))
    model.feature_dim = FEATURE_DIM
    return model


def alexnet(image_size: int, small_stem: bool | None = None) -> nn.Module:
    """AlexNet (torchvision) trunk + global pool, 256-d; small-image variant for inputs <= 64 px."""
    return build_alexnet(image_size, small_stem)


@hookimpl
def sslbench_register_backbones(register):
    register("alexnet", alexnet, display="AlexNet")
