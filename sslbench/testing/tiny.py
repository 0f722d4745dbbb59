"""What every check shares: a tiny backbone, name resolution and the failure message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class TinyConvNet(nn.Module):
    """The checks' default backbone: two conv-BN-ReLU blocks and global average pooling.

    ``[B, 3, H, W] -> [B, 2 * width]``. It has batch norm (as every real backbone does), so a
    method is checked against the batch-statistics effects that bite at batch size 2, yet it
    builds and runs in milliseconds.
    """

    def __init__(self, image_size: int = 16, width: int = 8) -> None:
        super().__init__()
        self.feature_dim = 2 * width
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def fail(check: str, message: str) -> AssertionError:
    return AssertionError(f"{check}: {message}")


def expect(condition: bool, check: str, message: str) -> None:
    if not condition:
        raise fail(check, message)


def resolve(kind: str, component: Any, catalog=None) -> tuple[str, Any]:
    """A registered name (looked up in ``catalog`` or a fresh one) or the component itself."""
    if isinstance(component, str):
        if catalog is None:
            from sslbench.core.plugins import load_plugins

            catalog = load_plugins().catalog
        return component, catalog.get(kind, component)
    return getattr(component, "__name__", type(component).__name__), component


def backbone_factory(backbone: Any, catalog=None) -> Callable[[int], nn.Module]:
    """``None`` -> :class:`TinyConvNet`; a name -> the registered factory; else a factory."""
    if backbone is None:
        return TinyConvNet
    return resolve("backbones", backbone, catalog)[1]


def registered(kind: str, *, distribution: str | None = None, autoload: bool | None = None,
               first_per_plugin: bool = False) -> list[str]:
    """Names registered for ``kind`` (for ``@pytest.mark.parametrize``), in catalog order.

    ``distribution`` keeps the components of one plugin distribution (its name as installed,
    e.g. ``"sslbench-dcl"``) or, for ``"builtin"``, sslbench's own. ``first_per_plugin``
    keeps the first name each plugin module registered (one per family: cheap coverage).
    """
    from sslbench.core.plugins import load_plugins

    plugins = load_plugins(autoload=autoload)
    keep = []
    for info in plugins.loaded:
        source = "builtin" if info.builtin else info.distribution
        if distribution is not None and source != distribution and info.name != distribution:
            continue
        names = info.registered.get(kind, [])
        keep += names[:1] if first_per_plugin else names
    order = plugins.catalog.names(kind)
    return [name for name in order if name in keep]
