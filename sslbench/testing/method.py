"""``check_method``: the contract between a method and the pretraining loop, checked small.

What the engine relies on, in the order checked: ``loss, logs = method(views, labels)`` gives a
finite scalar loss and scalar logs; every trainable backbone parameter gets a gradient; the same
seed gives the same loss; parameters with ``requires_grad=False`` are never changed by an
optimizer step; a momentum target (a parameter initialised as a copy of another and moved by
``after_step``) is not trainable; the state survives ``torch.save`` / ``torch.load(...,
weights_only=True)``; batch size 2, a constant batch and bf16 autocast still give finite
values; and, if the method names where its stop-gradient sits, no gradient bypasses it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sslbench.core.components import MethodTraits
from sslbench.core.config import deep_merge
from sslbench.testing.tiny import backbone_factory, expect, fail, resolve


def check_method(method: Any, *, backbone: Any = None, image_size: int = 16,
                 batch_size: int = 8, options: dict | None = None, recipe: str | None = "digits",
                 num_classes: int = 4, seed: int = 0, stop_gradient_at: str | None = None,
                 catalog=None) -> None:
    """Run every method check; raise ``AssertionError("check_method(name) <check>: ...")``.

    ``method``: a registered name or the method class. ``backbone``: a registered name or a
    factory ``(image_size) -> nn.Module`` (default: :class:`~sslbench.testing.TinyConvNet`).
    ``options`` override the method's config; by default its ``recipe`` entry (the CPU recipe
    of ``digits``) applies, so the paper's 8192-wide heads are not built. ``stop_gradient_at``
    (or a ``stop_gradient_at`` class attribute) names the submodule every gradient must pass
    through (SimSiam's and BYOL's ``"predictor"``).
    """
    name, cls = resolve("methods", method, catalog)
    where = f"check_method({name!r})"
    try:
        traits = MethodTraits.of(cls)  # what registration checks: a plugin fails it there too
    except ValueError as exc:
        raise fail(f"{where} contract", str(exc)) from None
    if backbone is None and traits.backbone_requires:
        backbone = _capable_backbone(traits.backbone_requires, image_size, catalog, where)
    make_backbone = backbone_factory(backbone, catalog)
    config = _method_options(cls, recipe, options)

    def build(build_seed: int) -> nn.Module:
        torch.manual_seed(build_seed)
        return _build(cls, make_backbone(image_size), config, num_classes, where)

    model = build(seed)
    expect(isinstance(getattr(model, "backbone", None), nn.Module), where,
           "the method must keep its backbone as `self.backbone` (evaluation reads it)")
    if not traits.pretrains:
        return
    batch = _Batch(cls, image_size, batch_size, num_classes, seed)
    loss = _loss(model, batch.views, batch.labels, seed, f"{where} loss")
    loss.backward()
    _check_gradients(model, f"{where} gradients")
    again = _loss(build(seed), batch.views, batch.labels, seed, f"{where} determinism")
    expect(torch.allclose(loss.detach(), again.detach(), rtol=1e-5, atol=1e-6),
           f"{where} determinism",
           f"the same seed gave two losses, {loss.item()} and {again.item()}")
    _check_optimizer_step(model, batch, seed, f"{where} targets")
    _check_round_trip(model, build(seed + 1), batch, seed, f"{where} state_dict round-trip")
    _check_variants(build(seed), cls, image_size, num_classes, seed, where)
    stop = stop_gradient_at or getattr(cls, "stop_gradient_at", None)
    if stop:
        _check_stop_gradient(build(seed), stop, batch, seed, f"{where} stop-gradient")


class _Batch:
    """Random views in the method's declared order and sizes, and labels with repeats."""

    def __init__(self, cls, image_size: int, batch_size: int, num_classes: int, seed: int,
                 constant: bool = False) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.views = []
        traits = MethodTraits.of(cls)
        for spec in traits.views:
            size = max(4, round(spec.size * image_size))
            for _ in range(spec.count):
                shape = (batch_size, 3, size, size)
                self.views.append(torch.full(shape, 0.5) if constant
                                  else torch.randn(shape, generator=gen))
        self.labels = None
        if traits.needs_labels:
            self.labels = torch.arange(batch_size) % min(num_classes, max(1, batch_size // 2))


def _capable_backbone(requires: tuple[str, ...], image_size: int, catalog, where: str) -> str:
    """The first registered backbone that has every attribute a method requires (MAE: a ViT),
    found by building each on the meta device (no memory); ViTs are tried first."""
    if catalog is None:
        from sslbench.core.plugins import load_plugins

        catalog = load_plugins().catalog
    for name in sorted(catalog.names("backbones"), key=lambda n: "vit" not in n):
        try:
            with torch.device("meta"):
                model = catalog.get("backbones", name)(image_size)
        except Exception:  # noqa: BLE001 - a backbone that needs options or an extra: skip it
            continue
        if all(hasattr(model, attr) for attr in requires):
            return name
    raise fail(where, f"no registered backbone has {', '.join(requires)}; pass backbone=")


def _method_options(cls, recipe: str | None, options: dict | None) -> dict:
    recipes = MethodTraits.of(cls).recipes
    layers = [recipes.get("*", {}), recipes.get(recipe, {}) if recipe else {}]
    merged = deep_merge({}, *(layer.get("method", {}) for layer in layers), options or {})
    return merged


def _build(cls, backbone: nn.Module, options: dict, num_classes: int, where: str) -> nn.Module:
    traits = MethodTraits.of(cls)
    if traits.config is None and options:
        raise fail(where, f"options {sorted(options)} given but the method has no Config")
    config = traits.config(**options) if traits.config is not None else None
    model = traits.build(cls, backbone, config, num_classes)  # as the engine builds it
    expect(isinstance(model, nn.Module), where, "a method must be an nn.Module")
    model.train()
    if hasattr(model, "on_epoch_start"):
        model.on_epoch_start(0, 2)  # what the engine calls before the first step
    return model


def _loss(model, views, labels, seed: int, check: str) -> torch.Tensor:
    """One forward pass, seeded; the result must be ``(finite scalar loss, dict of scalars)``."""
    torch.manual_seed(seed)
    out = model(list(views), labels)
    expect(isinstance(out, tuple) and len(out) == 2, check,
           f"forward must return (loss, logs), got {type(out).__name__}")
    loss, logs = out
    expect(torch.is_tensor(loss) and loss.dim() == 0, check,
           f"the loss must be a scalar tensor, got {getattr(loss, 'shape', type(loss))}")
    expect(bool(torch.isfinite(loss)), check, f"the loss is not finite ({loss.item()})")
    expect(isinstance(logs, dict), check, "logs must be a dict of scalar tensors")
    for key, value in logs.items():
        expect(torch.is_tensor(value) and value.numel() == 1, check,
               f"logs[{key!r}] must be a scalar tensor")
    return loss


def _check_gradients(model: nn.Module, check: str) -> None:
    missing = [n for n, p in model.backbone.named_parameters()
               if p.requires_grad and p.grad is None]
    expect(not missing, check, f"no gradient reaches backbone parameter {missing[0]!r}"
           if missing else "")
    bad = [n for n, p in model.named_parameters() if p.grad is not None
           and not torch.isfinite(p.grad).all()]
    expect(not bad, check, f"the gradient of {bad[0]!r} is not finite" if bad else "")
    total = sum(p.grad.abs().sum() for p in model.backbone.parameters() if p.grad is not None)
    expect(float(total) > 0, check, "every backbone gradient is zero")


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _copies(params: dict[str, torch.Tensor]) -> set[str]:
    """Parameters equal to another parameter of the same shape (a target made by deepcopy)."""
    names = list(params)
    found = set()
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if params[a].shape == params[b].shape and torch.equal(params[a], params[b]):
                found.update((a, b))
    return found


def _check_optimizer_step(model: nn.Module, batch: _Batch, seed: int, check: str) -> None:
    """Frozen parameters survive an optimizer step; momentum targets are frozen."""
    before = _snapshot(model)
    copies = _copies(before)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    optimizer.zero_grad(set_to_none=True)
    _loss(model, batch.views, batch.labels, seed, check).backward()
    optimizer.step()
    stepped = _snapshot(model)
    params = dict(model.named_parameters())
    for n, p in params.items():
        expect(p.requires_grad or torch.equal(before[n], stepped[n]), check,
               f"frozen parameter {n!r} (requires_grad=False) was changed by the optimizer")
    if hasattr(model, "after_step"):
        with torch.no_grad():
            model.after_step(0, 100)
    moved = [n for n, p in params.items() if not torch.equal(stepped[n], p.detach())]
    targets = [n for n in moved if n in copies]
    trainable_targets = [n for n in targets if params[n].requires_grad]
    expect(not trainable_targets, check,
           f"momentum target {trainable_targets[0]!r} is trainable (requires_grad=True), so the "
           "optimizer updates it too; call .requires_grad_(False) on the target network"
           if trainable_targets else "")


def _check_round_trip(model: nn.Module, fresh: nn.Module, batch: _Batch, seed: int,
                      check: str) -> None:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    try:
        state = torch.load(buffer, weights_only=True)
    except Exception as exc:
        raise fail(check, f"state_dict does not load with weights_only=True: "
                          f"{' '.join(str(exc).split())[:200]}") from None
    expected = _loss(model, batch.views, batch.labels, seed, check)
    fresh.load_state_dict(state)
    got = _loss(fresh, batch.views, batch.labels, seed, check)
    expect(torch.allclose(expected.detach(), got.detach(), rtol=1e-5, atol=1e-6), check,
           f"the reloaded method gives loss {got.item()}, the original {expected.item()}")


def _check_variants(model: nn.Module, cls, image_size: int, num_classes: int, seed: int,
                    where: str) -> None:
    """Batch size 2, a constant batch (zero variance) and bf16 autocast stay finite."""
    cases: list[tuple[str, _Batch, Callable]] = [
        ("batch size 2", _Batch(cls, image_size, 2, num_classes, seed), _no_autocast),
        ("constant batch", _Batch(cls, image_size, 8, num_classes, seed, constant=True),
         _no_autocast),
        ("bf16 autocast", _Batch(cls, image_size, 8, num_classes, seed),
         lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
    ]
    for label, batch, context in cases:
        model.zero_grad(set_to_none=True)
        with context():
            loss = _loss(model, batch.views, batch.labels, seed, f"{where} {label}")
        loss.backward()
        bad = [n for n, p in model.named_parameters()
               if p.grad is not None and not torch.isfinite(p.grad).all()]
        expect(not bad, f"{where} {label}",
               f"the gradient of {bad[0]!r} is not finite" if bad else "")


def _no_autocast():
    return torch.autocast("cpu", enabled=False)


def _check_stop_gradient(model: nn.Module, module_name: str, batch: _Batch, seed: int,
                         check: str) -> None:
    """Cut the graph at ``module_name``'s input: with a stop-gradient on the target branch no
    gradient can then reach the backbone; any that does bypassed the stop-gradient."""
    try:
        module = model.get_submodule(module_name)
    except AttributeError:
        raise fail(check, f"the method has no submodule {module_name!r}") from None

    def detach_inputs(_module, args):
        return tuple(a.detach() if torch.is_tensor(a) else a for a in args)

    handle = module.register_forward_pre_hook(detach_inputs)
    try:
        loss = _loss(model, batch.views, batch.labels, seed, check)
    finally:
        handle.remove()
    if not loss.requires_grad:
        return
    loss.backward()
    leaked = [n for n, p in model.backbone.named_parameters()
              if p.grad is not None and bool(p.grad.abs().sum() > 0)]
    expect(not leaked, check,
           f"backbone parameter {leaked[0]!r} gets gradient that bypasses {module_name!r}: the "
           "target branch is missing its stop-gradient (.detach())" if leaked else "")
