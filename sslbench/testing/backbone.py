"""``check_backbone``: images ``[B, 3, H, W]`` in, features ``[B, feature_dim]`` out."""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import nn

from sslbench.testing.tiny import expect, resolve


def check_backbone(backbone: Any, *, image_size: int = 16, batch_size: int = 2,
                   options: dict | None = None, seed: int = 0, catalog=None) -> None:
    """Build ``backbone`` (a registered name or a factory) at ``image_size`` (with ``options``,
    by default the ``example_options`` it was registered with) and check that it
    reports an int ``feature_dim``; maps a batch (of 2, channels_last too) to finite
    ``[B, feature_dim]`` features; sends a gradient to every parameter; is deterministic for a
    seed; runs under bf16 autocast; and gives the same features after a state_dict round-trip.
    """
    name, factory = resolve("backbones", backbone, catalog)
    where = f"check_backbone({name!r})"
    if options is None and isinstance(backbone, str):
        options = _example_options(backbone, catalog)

    def build(build_seed: int) -> nn.Module:
        torch.manual_seed(build_seed)
        return factory(image_size, **(options or {}))

    model = build(seed)
    expect(isinstance(model, nn.Module), where, "the factory must return an nn.Module")
    dim = getattr(model, "feature_dim", None)
    expect(isinstance(dim, int) and dim > 0, where,
           f"the module must report an int feature_dim > 0, got {dim!r}")
    x = torch.randn(batch_size, 3, image_size, image_size,
                    generator=torch.Generator().manual_seed(seed))
    features = _features(model, x, dim, f"{where} forward")
    features.float().square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    expect(not missing, f"{where} gradients",
           f"no gradient reaches parameter {missing[0]!r}" if missing else "")
    again = _features(build(seed), x, dim, f"{where} determinism")
    expect(torch.allclose(features, again, rtol=1e-5, atol=1e-6), f"{where} determinism",
           "the same seed gave two different outputs")
    _features(model, x.contiguous(memory_format=torch.channels_last), dim,
              f"{where} channels_last")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _features(model, x, dim, f"{where} bf16 autocast")
    _check_round_trip(model, build(seed + 1), x, where)


def _example_options(name: str, catalog) -> dict:
    """The options a backbone registered as its example (``example_options=``), if any."""
    if catalog is None:
        from sslbench.core.plugins import load_plugins

        catalog = load_plugins().catalog
    return dict(catalog.entry("backbones", name).metadata.get("example_options") or {})


def _features(model: nn.Module, x: torch.Tensor, dim: int, check: str) -> torch.Tensor:
    out = model(x)
    expect(torch.is_tensor(out) and tuple(out.shape) == (x.shape[0], dim), check,
           f"expected features of shape {(x.shape[0], dim)}, got "
           f"{tuple(out.shape) if torch.is_tensor(out) else type(out).__name__}")
    expect(bool(torch.isfinite(out).all()), check, "the features are not finite")
    return out


def _check_round_trip(model: nn.Module, fresh: nn.Module, x: torch.Tensor, where: str) -> None:
    check = f"{where} state_dict round-trip"
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    model.eval()
    fresh.eval()
    with torch.no_grad():
        expect(torch.allclose(model(x), fresh(x), rtol=1e-5, atol=1e-6), check,
               "the reloaded backbone gives different features (eval mode)")
