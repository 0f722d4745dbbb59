"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017, arXiv:1708.03888).

Each parameter tensor w (a "layer") with gradient g gets a local learning rate, the *trust
ratio* ``eta * ||w|| / (||g|| + wd * ||w||)``, which scales its weight-decayed gradient before
momentum SGD (the paper's Algorithm 1)::

    d = trust_ratio * (g + wd * w);   v = momentum * v + d;   w = w - lr * v

Paper defaults: ``eta`` (trust coefficient) 0.001, momentum 0.9. The ratio
is 1 where ``||w||`` or the denominator is 0 (a zero-initialised layer still moves). As in
``torch.optim.SGD``, the global lr multiplies the momentum buffer at the step instead of being
folded into it, so a schedule's new lr applies at once and an lr of 0 never moves a weight.

Biases and normalisation parameters (every parameter whose name ends in ``bias``, and every
1-d one: batch-norm and layer-norm scales and shifts) get neither weight decay nor the trust
ratio, plain momentum SGD: as the reference code of BYOL and Barlow Twins and solo-learn's
LARS (``exclude_bias_n_norm``) do. Adapting a bias by ``||b|| / ||g||`` stalls it near zero and
decaying a norm's scale fights the normalisation.

``options``: ``eta`` (0.001), ``exclude_bias_and_norm`` (true; false adapts and decays every
parameter, as sslbench 0.2 did) and ``clip_lr`` (false; true gives each layer the rate
``min(lr, trust_ratio)`` instead of ``lr * trust_ratio``, the ratio becoming
``min(trust_ratio / lr, 1)``: the ``clip_lr`` of solo-learn's LARS, which its ImageNet-100
recipes use with eta 0.02). Parameter groups may also set ``adapt=False`` (plain momentum SGD
for that group) and ``simclr_norm=True`` (the ratio's denominator is ``||g + wd * w||``, as
SimCLR's implementation computes it: ``lars_simclr``).
"""

from __future__ import annotations

import torch

from sslbench import OptimizerConfig, hookimpl

from ._options import positive, read_options

DEFAULTS = {"eta": 0.001, "exclude_bias_and_norm": True, "clip_lr": False}


def excluded(name: str, param: torch.Tensor) -> bool:
    """Biases and normalisation parameters: no weight decay, no trust ratio."""
    return name.endswith("bias") or param.ndim <= 1


def exclusion_groups(named_params, weight_decay: float) -> list[dict]:
    """Two parameter groups: adapted and decayed weights, then the excluded parameters."""
    named = list(named_params)
    adapted = [p for n, p in named if not excluded(n, p)]
    plain = [p for n, p in named if excluded(n, p)]
    return [group for group in (
        {"params": adapted, "weight_decay": weight_decay, "adapt": True},
        {"params": plain, "weight_decay": 0.0, "adapt": False},
    ) if group["params"]]


def trust_ratio(weight_norm: torch.Tensor, update_norm: torch.Tensor,
                eta: float) -> torch.Tensor:
    """``eta * ||w|| / update_norm``, or 1 where either norm is 0 (a scalar tensor)."""
    ratio = eta * weight_norm / update_norm
    usable = (weight_norm > 0) & (update_norm > 0)
    return torch.where(usable, ratio, torch.ones_like(ratio))  # no host sync on GPU


def lars_direction(weight: torch.Tensor, grad: torch.Tensor, group: dict) -> torch.Tensor:
    """The weight-decayed gradient, scaled by its trust ratio where the group adapts."""
    wd = group["weight_decay"]
    decayed = grad.add(weight, alpha=wd) if wd else grad
    if not group["adapt"]:
        return decayed
    w_norm = weight.norm()
    denominator = decayed.norm() if group["simclr_norm"] else grad.norm() + wd * w_norm
    ratio = trust_ratio(w_norm, denominator, group["eta"])
    if group.get("clip_lr", False):  # .get: groups restored from checkpoints before the option
        # lr 0 (a warm-up's first step) gives inf, clamped to 1: the step is 0 anyway
        ratio = torch.clamp(ratio / group["lr"], max=1.0)
    return decayed * ratio


class LARS(torch.optim.Optimizer):
    """Momentum SGD on the trust-ratio-scaled directions (see the module docstring)."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4,
                 eta: float = 0.001, nesterov: bool = False, adapt: bool = True,
                 simclr_norm: bool = False, clip_lr: bool = False) -> None:
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta,
                    "nesterov": nesterov, "adapt": adapt, "simclr_norm": simclr_norm,
                    "clip_lr": clip_lr}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, lars_direction(p, p.grad, group), group)
        return loss

    def _update(self, p: torch.Tensor, direction: torch.Tensor, group: dict) -> None:
        momentum = group["momentum"]
        if momentum:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = direction.clone()
            else:
                state["momentum_buffer"].mul_(momentum).add_(direction)
            buffer = state["momentum_buffer"]
            direction = direction.add(buffer, alpha=momentum) if group["nesterov"] else buffer
        p.add_(direction, alpha=-group["lr"])


def lars(named_params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """LARS (You et al. 2017): layer-wise trust ratio, momentum, weight decay; biases and norms
    excluded (options: eta, exclude_bias_and_norm, clip_lr)."""
    options = read_options(cfg.options, DEFAULTS)
    positive(options, "eta")
    params = (exclusion_groups(named_params, cfg.weight_decay)
              if options["exclude_bias_and_norm"] else [p for _, p in named_params])
    return LARS(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                eta=options["eta"], nesterov=cfg.nesterov, clip_lr=options["clip_lr"])


@hookimpl
def sslbench_register_optimizers(register):
    register("lars", lars)
