"""The plain torchvision model an exported backbone loads into, and the changes it takes.

sslbench's ResNet, DenseNet and EfficientNet backbones are torchvision's models with the
classifier removed (and, for small images, a changed stem); its VGG and AlexNet backbones are
torchvision's ``features`` trunk and a global average pool. In every case the parameter names
are torchvision's, so the exported weights load with ``strict=True`` into
``torchvision.models.<name>(weights=None)`` once a few attributes are set: the classifier to an
identity, the pool to a global one where the trunk was pooled, and the small-image stem where
the run used it. :func:`describe` lists those changes as data (written to ``model.json`` and,
as Python, to the model card); :func:`build` applies them (to whitelisted module types, never
by evaluating text). Which variant a run used is read off the built backbone, not re-derived.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
import torchvision
from torch import nn

MODULES = {"Identity": nn.Identity, "Conv2d": nn.Conv2d, "MaxPool2d": nn.MaxPool2d,
           "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d}
IDENTITY = {"module": "Identity", "args": {}}
GLOBAL_POOL = {"module": "AdaptiveAvgPool2d", "args": {"output_size": 1}}


def _conv(in_channels: int, out_channels: int, bias: bool) -> dict:
    return {"module": "Conv2d", "args": {"in_channels": in_channels, "out_channels": out_channels,
                                         "kernel_size": 3, "stride": 1, "padding": 1,
                                         "bias": bias}}


def _resnet(name: str, backbone: nn.Module, options: dict) -> tuple[bool, list[dict]]:
    if options.get("width", 1.0) != 1.0:
        raise ValueError(f"torchvision has no ResNet of width {options['width']:g}")
    small = isinstance(backbone.maxpool, nn.Identity)
    stem = [{"set": "conv1", "to": _conv(3, backbone.conv1.out_channels, False)},
            {"set": "maxpool", "to": IDENTITY}] if small else []
    return small, [*stem, {"set": "fc", "to": IDENTITY}]


def _densenet(name: str, backbone: nn.Module, options: dict) -> tuple[bool, list[dict]]:
    small = isinstance(backbone.features.pool0, nn.Identity)
    width = backbone.features.conv0.out_channels
    stem = [{"set": "features.conv0", "to": _conv(3, width, False)},
            {"set": "features.pool0", "to": IDENTITY}] if small else []
    return small, [*stem, {"set": "classifier", "to": IDENTITY}]


def _efficientnet(name: str, backbone: nn.Module, options: dict) -> tuple[bool, list[dict]]:
    strides = {name: m.stride for name, m in backbone.features.named_modules()
               if isinstance(m, nn.Conv2d)}
    small = strides.get("0.0") == (1, 1)  # the stem: stride 2 in torchvision's model
    changes = []
    if small:  # the stem and the first stride-2 block, as in the small-image variant
        with torch.device("meta"):
            trunk = getattr(torchvision.models, name)(weights=None).features
        strided = [name for name, m in trunk.named_modules()
                   if isinstance(m, nn.Conv2d) and m.stride == (2, 2)][:2]
        changes = [{"set": f"features.{name}.stride", "to": [1, 1]} for name in strided]
    return small, [*changes, {"set": "classifier", "to": IDENTITY}]


def _vgg(name: str, backbone: nn.Module, options: dict) -> tuple[bool, list[dict]]:
    pools = [i for i, m in enumerate(backbone.features) if isinstance(m, nn.MaxPool2d)]
    dropped = [i for i, m in enumerate(backbone.features) if isinstance(m, nn.Identity)]
    small = len(pools) < 5
    stem = [{"set": f"features.{i}", "to": IDENTITY} for i in dropped]
    return small, [*stem, {"set": "avgpool", "to": GLOBAL_POOL},
                   {"set": "classifier", "to": IDENTITY}]


def _alexnet(name: str, backbone: nn.Module, options: dict) -> tuple[bool, list[dict]]:
    small = backbone.features[0].kernel_size == (3, 3)
    stem = []
    if small:
        stem = [{"set": "features.0", "to": _conv(3, backbone.features[0].out_channels, True)}]
        stem += [{"set": f"features.{i}", "to": {"module": "MaxPool2d", "args": {
            "kernel_size": 3, "stride": 2, "padding": 1}}}
            for i, m in enumerate(backbone.features) if isinstance(m, nn.MaxPool2d)]
    return small, [*stem, {"set": "avgpool", "to": GLOBAL_POOL},
                   {"set": "classifier", "to": IDENTITY}]


FAMILIES: list[tuple[str, Callable]] = [
    (r"resnet(18|34|50|101|152)", _resnet), (r"densenet(121|161|169|201)", _densenet),
    (r"efficientnet_b[0-7]", _efficientnet), (r"vgg(11|13|16|19)(_bn)?", _vgg),
    (r"alexnet", _alexnet)]


def describe(name: str, options: dict[str, Any], backbone: nn.Module,
             builtin: bool) -> dict[str, Any]:
    """``{"model": name, "small_image_variant": bool, "changes": [...]}`` for a built-in
    torchvision-family backbone; ``{"model": None, "reason": ...}`` for any other."""
    family = next((f for pattern, f in FAMILIES if re.fullmatch(pattern, name)), None)
    if family is None or not builtin:
        return {"model": None, "reason": f"{name!r} is not one of sslbench's built-in "
                                         "torchvision backbones"}
    try:
        small, changes = family(name, backbone, options)
    except ValueError as exc:
        return {"model": None, "reason": str(exc)}
    return {"model": name, "small_image_variant": small, "changes": changes}


def build(spec: dict[str, Any], weights: dict[str, torch.Tensor]) -> nn.Module:
    """``torchvision.models.<model>(weights=None)``, the changes applied, the weights loaded
    (strictly). Built on the meta device, so the classifier it drops is never allocated."""
    with torch.device("meta"):
        model = getattr(torchvision.models, spec["model"])(weights=None)
        for change in spec["changes"]:
            _apply(model, change)
    model.load_state_dict(weights, strict=True, assign=True)
    return model.eval()


def _apply(model: nn.Module, change: dict) -> None:
    *parents, attr = change["set"].split(".")
    owner = model
    for part in parents:
        owner = getattr(owner, part)
    value = change["to"]
    if isinstance(value, dict):
        value = MODULES[value["module"]](**value["args"])
    elif isinstance(value, list):
        value = tuple(value)
    setattr(owner, attr, value)


def as_python(spec: dict[str, Any]) -> list[str]:
    """The changes as the lines a user writes: ``model.features[0][0].stride = (1, 1)``."""
    lines = []
    for change in spec["changes"]:
        path = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in change["set"].split("."))
        value = change["to"]
        if isinstance(value, dict):
            args = ", ".join(f"{k}={v!r}" for k, v in value["args"].items())
            text = f"nn.{value['module']}({args})"
        else:
            text = repr(tuple(value))
        lines.append(f"model{path} = {text}")
    return lines
