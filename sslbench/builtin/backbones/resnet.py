"""ResNets from torchvision, with the small-image stem used for 32 px data and a width option.

He et al. 2016. For inputs of at most 64 px the 7x7 stride-2 stem and the max-pool are replaced
by a 3x3 stride-1 convolution (as in SimCLR's CIFAR-10 experiments), so a 32x32 image still
reaches the last stage at 4x4 instead of collapsing to 1x1.

``width`` multiplies every stage's channel count (the stem's 64 included), as in the wide/narrow
ResNets of Zagoruyko & Komodakis 2016 and the SimCLR paper's width study: ``width=0.5`` gives a
ResNet-18 with 32-64-128-256 channels, about 4x fewer FLOPs and a 256-d feature. CPU recipes use
it to afford more steps; it is part of the run's config, so the table shows it.
"""

from __future__ import annotations

import torchvision
from torch import nn
from torchvision.models import resnet

from sslbench import hookimpl

SMALL_IMAGE_MAX = 64
DEPTHS = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50",
          "resnet101": "ResNet-101", "resnet152": "ResNet-152"}
MAX_WIDTH = 4.0


class ScaledResNet(resnet.ResNet):
    """torchvision's ResNet with every stage's channel count multiplied by ``width``."""

    def __init__(self, block, layers, width: float) -> None:
        self.width = width  # read by _make_layer, which the parent's __init__ calls
        super().__init__(block, layers)
        stem = self.scaled(64)
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.fc = nn.Linear(self.scaled(512) * block.expansion, 1000)

    def scaled(self, channels: int) -> int:
        return max(1, round(channels * self.width))

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:  # the first stage: its input is the (scaled) stem, not 64 channels
            self.inplanes = self.scaled(64)
        return super()._make_layer(block, self.scaled(planes), blocks, stride, dilate)


def build_resnet(arch: str, image_size: int, small_stem: bool | None = None,
                 width: float = 1.0) -> nn.Module:
    """torchvision's ``arch`` without its classifier; ``feature_dim`` set to the pooled width."""
    if isinstance(width, bool) or not isinstance(width, int | float) or not 0 < width <= MAX_WIDTH:
        raise ValueError(f"width must be a number in (0, {MAX_WIDTH:g}], got {width!r}")
    if width == 1.0:
        model = getattr(torchvision.models, arch)(weights=None)
    else:
        reference = getattr(torchvision.models, arch)(weights=None)
        block, layers = type(reference.layer1[0]), [len(reference.layer1), len(reference.layer2),
                                                    len(reference.layer3), len(reference.layer4)]
        model = ScaledResNet(block, layers, width)
    if small_stem if small_stem is not None else image_size <= SMALL_IMAGE_MAX:
        model.conv1 = nn.Conv2d(3, model.bn1.num_features, kernel_size=3, stride=1, padding=1,
                                bias=False)
        model.maxpool = nn.Identity()
    model.feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    return model


def _factory(arch: str):
    def factory(image_size: int, small_stem: bool | None = None, width: float = 1.0) -> nn.Module:
        return build_resnet(arch, image_size, small_stem, width)

    factory.__doc__ = (f"{DEPTHS[arch]} (torchvision); small-image stem for inputs <= 64 px; "
                       "`width` scales every stage's channels.")
    return factory


# CPU recipe on Fashion-MNIST (measured on 2 cores, SimCLR x ResNet-18, 16 px, 10k images):
# at full width 6 epochs fit in the budget and SimCLR's kNN stayed within 1 point of the random
# floor; at quarter width (~10x cheaper per image) 40 epochs fit and SimCLR's kNN is 9 points
# over the (quarter-width) floor. Half width, 20 epochs: +6 in about the same time.
# On digits (8 px), to fit 90 s on 2 fp32-only cores: full width at 30 epochs took 5 minutes;
# quarter width, 80 epochs, is about as accurate (SimCLR linear ~98%, kNN ~97%) in about 1 minute.
RECIPES = {"fashion-mnist": {"backbone": {"width": 0.25}, "pretrain": {"epochs": 40}},
           "digits": {"backbone": {"width": 0.25}, "pretrain": {"epochs": 80}}}


@hookimpl
def sslbench_register_backbones(register):
    for arch, display in DEPTHS.items():
        register(arch, _factory(arch), display=display, recipes=RECIPES)
