"""LARC: layer-wise adaptive rate *control*, a wrapper that rescales gradients before SGD.

NVIDIA's LARC (apex; used by SwAV with ``clip=False``) applies LARS' idea to any optimizer; here
it wraps momentum SGD. For each parameter tensor w with gradient g it computes the local rate
``local = eta * ||w|| / (||g|| + wd * ||w|| + eps)`` and hands SGD the direction
``scale * (g + wd * w)`` (weight decay moved into the gradient, so SGD itself adds none), with

* ``mode="clip"`` (the default): ``scale = min(local / lr, 1)``, i.e. the parameter's effective
  learning rate is ``min(lr, local)``: the global lr is an upper bound that LARC only lowers;
* ``mode="scale"``: ``scale = local``, i.e. the effective rate is ``lr * local``, as in LARS.

The scale is 1 where ``||w||`` or ``||g||`` is 0. ``options``: ``eta`` (trust coefficient,
0.02 as apex's LARC; SwAV uses 0.001 with ``mode="scale"``), ``mode`` and ``eps`` (1e-8).
Momentum, Nesterov and the momentum buffer are ``torch.optim.SGD``'s own.
"""

from __future__ import annotations

import torch

from sslbench import OptimizerConfig, hookimpl

from ._options import positive, read_options

DEFAULTS = {"eta": 0.02, "mode": "clip", "eps": 1e-8}
MODES = ("clip", "scale")


def larc_scale(weight: torch.Tensor, grad: torch.Tensor, group: dict) -> torch.Tensor:
    """The factor applied to ``g + wd * w`` (a scalar tensor), in clip or scale mode."""
    w_norm, g_norm, wd = weight.norm(), grad.norm(), group["weight_decay"]
    local = group["eta"] * w_norm / (g_norm + wd * w_norm + group["eps"])
    if group["clip"]:
        # lr 0 (a warm-up's first step) gives inf, clamped to 1: the step is 0 anyway
        local = torch.clamp(local / group["lr"], max=1.0)
    usable = (w_norm > 0) & (g_norm > 0)
    return torch.where(usable, local, torch.ones_like(local))


class LARC(torch.optim.SGD):
    """SGD stepping along LARC-rescaled gradients; the caller's gradients are left intact."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = False, eta: float = 0.02, clip: bool = True,
                 eps: float = 1e-8) -> None:
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         nesterov=nesterov)
        for group in self.param_groups:
            group.setdefault("eta", eta)
            group.setdefault("clip", clip)
            group.setdefault("eps", eps)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        originals, decays = {}, []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    originals[p] = p.grad
                    decayed = p.grad.add(p, alpha=group["weight_decay"])
                    p.grad = decayed.mul_(larc_scale(p, originals[p], group))
            decays.append(group["weight_decay"])
            group["weight_decay"] = 0.0  # already in the rescaled gradient
        try:
            super().step()
        finally:
            for group, decay in zip(self.param_groups, decays, strict=True):
                group["weight_decay"] = decay
            for p, grad in originals.items():
                p.grad = grad
        return loss


def larc(named_params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """LARC over momentum SGD, clip or scale mode (options: eta, mode, eps)."""
    options = read_options(cfg.options, DEFAULTS)
    positive(options, "eta", "eps")
    if options["mode"] not in MODES:
        raise ValueError(f"option 'mode' must be one of {', '.join(MODES)}, "
                         f"got {options['mode']!r}")
    return LARC([p for _, p in named_params], lr=cfg.lr, momentum=cfg.momentum,
                weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, eta=options["eta"],
                clip=options["mode"] == "clip", eps=options["eps"])


@hookimpl
def sslbench_register_optimizers(register):
    register("larc", larc)
