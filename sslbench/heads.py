"""Small building blocks that several methods share: MLP projection and prediction heads."""

from __future__ import annotations

from torch import nn


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    *,
    layers: int = 2,
    last_bn: bool = False,
    last_bn_affine: bool = True,
    bias: bool = True,
) -> nn.Sequential:
    """``layers`` Linear layers; BN + ReLU after each but the last (optionally BN after it too).

    SimCLR's projector is ``mlp(d, 2048, 128)``; SimSiam's is
    ``mlp(d, 2048, 2048, layers=3, last_bn=True, last_bn_affine=False)`` minus biases before BN.
    """
    if layers < 1:
        raise ValueError(f"an MLP needs at least one layer, got layers={layers}")
    blocks: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        blocks += [nn.Linear(dim, hidden_dim, bias=bias), nn.BatchNorm1d(hidden_dim),
                   nn.ReLU(inplace=True)]
        dim = hidden_dim
    blocks.append(nn.Linear(dim, out_dim, bias=bias and not last_bn))
    if last_bn:
        blocks.append(nn.BatchNorm1d(out_dim, affine=last_bn_affine))
    return nn.Sequential(*blocks)
