"""ResNets from torchvision, with the small-image stem used for 32 px data.

He et al. 2016. For inputs of at most 64 px the 7x7 stride-2 stem and the max-pool are replaced
by a 3x3 stride-1 convolution (as in SimCLR's CIFAR-10 experiments), so a 32x32 image still
reaches the last stage at 4x4 instead of collapsing to 1x1.
"""

from __future__ import annotations

import torchvision
from torch import nn

from sslbench import hookimpl

SMALL_IMAGE_MAX = 64
DEPTHS = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50",
          "resnet101": "ResNet-101", "resnet152": "ResNet-152"}


def build_resnet(arch: str, image_size: int, small_stem: bool | None = None) -> nn.Module:
    """torchvision's ``arch`` without its classifier; ``feature_dim`` set to the pooled width."""
    model = getattr(torchvision.models, arch)(weights=None)
    if small_stem if small_stem is not None else image_size <= SMALL_IMAGE_MAX:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    model.feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    return model


def _factory(arch: str):
    def factory(image_size: int, small_stem: bool | None = None) -> nn.Module:
        return build_resnet(arch, image_size, small_stem)

    factory.__doc__ = f"{DEPTHS[arch]} (torchvision); small-image stem for inputs <= 64 px."
    return factory


@hookimpl
def sslbench_register_backbones(register):
    for arch, display in DEPTHS.items():
        register(arch, _factory(arch), display=display)
