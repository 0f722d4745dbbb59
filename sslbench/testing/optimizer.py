"""``check_optimizer`` and ``check_scheduler``: what the pretraining loop and the probes call."""

from __future__ import annotations

import io
import math
from typing import Any

import torch
from torch import nn

from sslbench.core.config import OptimizerConfig, ScheduleConfig
from sslbench.testing.tiny import expect, resolve


def _problem(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small least-squares problem with a weight and a bias (optimizers treat them apart)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    x = torch.randn(32, 8, generator=gen)
    return model, x, x @ torch.randn(8, 1, generator=gen)


def _build(factory, model: nn.Module, cfg: OptimizerConfig, where: str):
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = factory(named, cfg)
    expect(isinstance(optimizer, torch.optim.Optimizer), where,
           f"the factory must return a torch.optim.Optimizer, got {type(optimizer).__name__}")
    got = [id(p) for group in optimizer.param_groups for p in group["params"]]
    expect(sorted(got) == sorted(id(p) for _, p in named), where,
           "the optimizer must hold every parameter it was given, each once")
    for group in optimizer.param_groups:  # as engine.optim.build_optimizer does
        group.setdefault("lr_scale", group["lr"] / cfg.lr if cfg.lr else 1.0)
    return optimizer


def _steps(model, optimizer, x, y, n: int, lr: float) -> list[float]:
    losses = []
    for _ in range(n):
        for group in optimizer.param_groups:  # what engine.optim.set_lr does every step
            group["lr"] = lr * group.get("lr_scale", 1.0)
        loss = (model(x) - y).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def check_optimizer(optimizer: Any, *, lr: float = 0.01, options: dict | None = None,
                    seed: int = 0, catalog=None) -> None:
    """``factory(named_params, cfg)`` holds every parameter once; a step at lr 0 changes
    nothing (schedules own the lr); steps reduce a least-squares loss; the state survives a
    ``weights_only`` state_dict round-trip, so a resumed run continues identically."""
    name, factory = resolve("optimizers", optimizer, catalog)
    where = f"check_optimizer({name!r})"
    cfg = OptimizerConfig(name=name, lr=lr, weight_decay=1e-4, options=options or {})
    model, x, y = _problem(seed)
    opt = _build(factory, model, cfg, where)
    before = [p.detach().clone() for p in model.parameters()]
    _steps(model, opt, x, y, 1, lr=0.0)
    expect(all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True)),
           f"{where} lr", "a step with the lr set to 0 changed the parameters")
    losses = _steps(model, opt, x, y, 30, lr)
    expect(all(math.isfinite(v) for v in losses), f"{where} steps", "the loss became non-finite")
    expect(losses[-1] < losses[0], f"{where} steps",
           f"30 steps did not reduce a least-squares loss ({losses[0]:.4g} -> {losses[-1]:.4g})")
    _check_round_trip(factory, cfg, model, opt, x, y, lr, seed, where)


def _check_round_trip(factory, cfg, model, opt, x, y, lr, seed, where) -> None:
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    twin, _, _ = _problem(seed + 1)
    twin.load_state_dict(state["model"])
    twin_opt = _build(factory, twin, cfg, where)
    twin_opt.load_state_dict(state["opt"])
    _steps(model, opt, x, y, 3, lr)
    _steps(twin, twin_opt, x, y, 3, lr)
    same = all(torch.allclose(a, b, rtol=1e-6, atol=1e-7)
               for a, b in zip(model.parameters(), twin.parameters(), strict=True))
    expect(same, f"{where} state_dict round-trip",
           "an optimizer restored from its state_dict takes different steps (momentum lost?)")


def check_scheduler(scheduler: Any, *, base_lr: float = 0.1, total_steps: int = 100,
                    steps_per_epoch: int = 10, options: dict | None = None,
                    catalog=None) -> None:
    """``factory(cfg, base_lr, total_steps, steps_per_epoch)`` returns ``lr_at(step)``: a pure
    function giving a finite lr in ``[0, base_lr]`` at every step of the run."""
    name, factory = resolve("schedulers", scheduler, catalog)
    where = f"check_scheduler({name!r})"
    cfg = ScheduleConfig(name=name, warmup_epochs=1, options=options or {})
    lr_at = factory(cfg, base_lr, total_steps, steps_per_epoch)
    expect(callable(lr_at), where, "the factory must return a function lr_at(step)")
    lrs = [lr_at(step) for step in range(total_steps)]
    bad = [(s, v) for s, v in enumerate(lrs) if not (math.isfinite(v) and 0 <= v <= base_lr)]
    expect(not bad, where, f"lr_at({bad[0][0]}) = {bad[0][1]} is outside [0, base_lr]"
           if bad else "")
    expect(lrs == [lr_at(step) for step in range(total_steps)], where,
           "lr_at is not a pure function of the step (a resumed run would differ)")
    expect(max(lrs) > 0, where, "the lr is 0 at every step")
