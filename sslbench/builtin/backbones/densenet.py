"""DenseNet-121/161/169/201 from torchvision, without the classifier.

Huang et al. 2017. ``[B, 3, H, W] -> [B, C]`` with C the width after the last dense block
(1024, 2208, 1664, 1920): torchvision's own forward (final batch norm, ReLU, global average
pool) with the classifier replaced by an identity.

Small-image variant (inputs of at most 64 px): the 7x7 stride-2 stem convolution becomes a 3x3
stride-1 one (same width) and the stem's max-pool is removed, as in the ResNet small stem. Only
the three transition layers then downsample, so a 32x32 image reaches the last dense block at
4x4 instead of 1x1 (16 px: 2x2; 8 px: 1x1).
"""

from __future__ import annotations

import torchvision
from torch import nn

from sslbench import hookimpl

SMALL_IMAGE_MAX = 64
ARCHS = {"densenet121": "DenseNet-121", "densenet161": "DenseNet-161",
         "densenet169": "DenseNet-169", "densenet201": "DenseNet-201"}


def build_densenet(arch: str, image_size: int, small_stem: bool | None = None) -> nn.Module:
    """torchvision's ``arch`` without its classifier; ``feature_dim`` set to the pooled width."""
    model = getattr(torchvision.models, arch)(weights=None)
    if small_stem if small_stem is not None else image_size <= SMALL_IMAGE_MAX:
        width = model.features.conv0.out_channels
        model.features.conv0 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1,
                                         bias=False)
        nn.init.kaiming_normal_(model.features.conv0.weight)  # as torchvision inits DenseNet
        model.features.pool0 = nn.Identity()
    model.feature_dim = model.classifier.in_features
    model.classifier = nn.Identity()
    return model


def _factory(arch: str):
    def factory(image_size: int, small_stem: bool | None = None) -> nn.Module:
        return build_densenet(arch, image_size, small_stem)

    factory.__doc__ = f"{ARCHS[arch]} (torchvision); small-image stem for inputs <= 64 px."
    return factory


@hookimpl
def sslbench_register_backbones(register):
    for arch, display in ARCHS.items():
        register(arch, _factory(arch), display=display)
