"""EfficientNet-B0 ... B7 from torchvision, without the classifier.

Tan & Le 2019. ``[B, 3, H, W] -> [B, C]`` with C the width of the final 1x1 convolution
(1280 for B0/B1, 1408, 1536, 1792, 2048, 2304, 2560 for B2...B7): torchvision's own forward
(MBConv stages, global average pool) with the classifier (dropout + linear) replaced by an
identity. Stochastic depth stays as torchvision configures it (0.2 over the blocks). The
compound-scaled input resolutions (224...600 px) are not imposed: the backbone runs at the
dataset's image size.

Small-image variant (inputs of at most 64 px): the stem convolution and the first stride-2
MBConv block (the first block of stage 3) get stride 1, so there are three 2x downsamplings
instead of five and a 32x32 image reaches the last stages at 4x4 instead of 1x1 (16 px: 2x2;
8 px: 1x1). Kernel sizes, widths and depths are unchanged.
"""

from __future__ import annotations

import torchvision
from torch import nn

from sslbench import hookimpl

SMALL_IMAGE_MAX = 64
ARCHS = {f"efficientnet_b{i}": f"EfficientNet-B{i}" for i in range(8)}


def first_downsampling_convs(features: nn.Sequential, count: int = 2) -> list[nn.Conv2d]:
    """The first ``count`` stride-2 convolutions of the trunk, stem included, in order."""
    strided = [m for m in features.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    return strided[:count]


def build_efficientnet(arch: str, image_size: int, small_stem: bool | None = None) -> nn.Module:
    """torchvision's ``arch`` without its classifier; ``feature_dim`` set to the pooled width."""
    model = getattr(torchvision.models, arch)(weights=None)
    if small_stem if small_stem is not None else image_size <= SMALL_IMAGE_MAX:
        for conv in first_downsampling_convs(model.features):
            conv.stride = (1, 1)  # padding is (k - 1) // 2, so the map keeps its size
    model.feature_dim = model.classifier[-1].in_features
    model.classifier = nn.Identity()
    return model


def _factory(arch: str):
    def factory(image_size: int, small_stem: bool | None = None) -> nn.Module:
        return build_efficientnet(arch, image_size, small_stem)

    factory.__doc__ = f"{ARCHS[arch]} (torchvision); small-image variant for inputs <= 64 px."
    return factory


@hookimpl
def sslbench_register_backbones(register):
    for arch, display in ARCHS.items():
        register(arch, _factory(arch), display=display)
