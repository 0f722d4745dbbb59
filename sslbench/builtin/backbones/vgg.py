"""VGG-11/13/16/19 (with and without batch norm) from torchvision, as a pooled feature extractor.

Simonyan & Zisserman 2015. The backbone is torchvision's convolutional trunk (``features``: five
blocks of 3x3 convolutions, each followed by a 2x2 max-pool) and a global average pool, so
``[B, 3, H, W] -> [B, 512]``. The three fully connected layers of the classifier (about 120M of
the 138M parameters, sized for a 7x7 map of 224 px images) are not part of it: SSL methods put
their own projector on the pooled features, as they do on a ResNet.

Small-image variant (inputs of at most 64 px): the max-pools after blocks 4 and 5 are removed,
so there are three 2x downsamplings instead of five and a 32x32 image reaches blocks 4 and 5 at
4x4 (as the ResNet small stem does) instead of 2x2 and 1x1 (a 16 px image: 2x2; 8 px: 1x1,
where the full trunk would fail on a zero-sized pool). The convolutions, their widths and their
indices in ``features`` are unchanged, so torchvision's checkpoints still load into the trunk.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision
from torch import nn

from sslbench import hookimpl

SMALL_IMAGE_MAX = 64
FEATURE_DIM = 512  # width of VGG's last block, whatever the depth
ARCHS = {"vgg11": "VGG-11", "vgg13": "VGG-13", "vgg16": "VGG-16", "vgg19": "VGG-19",
         "vgg11_bn": "VGG-11-BN", "vgg13_bn": "VGG-13-BN", "vgg16_bn": "VGG-16-BN",
         "vgg19_bn": "VGG-19-BN"}


def vgg_trunk(arch: str) -> nn.Sequential:
    """torchvision's ``features`` for ``arch``, initialised as torchvision initialises VGG.

    The model is built on the meta device so that the dropped classifier is never allocated
    (initialising its 120M weights took seconds); only the trunk is materialised.
    """
    with torch.device("meta"):
        features = getattr(torchvision.models, arch)(weights=None).features
    features = features.to_empty(device="cpu")
    for module in features.modules():
        if isinstance(module, nn.Conv2d):  # He et al. 2015 (fan-out), as torchvision's VGG
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()  # weight 1, bias 0 and fresh running statistics
    return features


def drop_last_pools(features: nn.Sequential, count: int = 2) -> None:
    """Replace the last ``count`` max-pools by identities (indices, hence names, are kept)."""
    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    for index in pools[-count:]:
        features[index] = nn.Identity()


def build_vgg(arch: str, image_size: int, small_stem: bool | None = None) -> nn.Module:
    """``[B, 3, H, W] -> [B, 512]``: the trunk, then global average pooling."""
    features = vgg_trunk(arch)
    if small_stem if small_stem is not None else image_size <= SMALL_IMAGE_MAX:
        drop_last_pools(features)
    model = nn.Sequential(OrderedDict(
        features=features, pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten()))
    model.feature_dim = FEATURE_DIM
    return model


def _factory(arch: str):
    def factory(image_size: int, small_stem: bool | None = None) -> nn.Module:
        return build_vgg(arch, image_size, small_stem)

    factory.__doc__ = (f"{ARCHS[arch]} (torchvision) trunk + global pool, 512-d; "
                       "small-image variant for inputs <= 64 px.")
    return factory


@hookimpl
def sslbench_register_backbones(register):
    for arch, display in ARCHS.items():
        register(arch, _factory(arch), display=display)
