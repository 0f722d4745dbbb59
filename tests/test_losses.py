"""Losses against values worked out by hand or by a direct, slow formula."""

import math

import pytest
import torch
import torch.nn.functional as F

from sslbench.builtin.methods.simclr import nt_xent
from sslbench.builtin.methods.simsiam import negative_cosine, symmetric_loss


def test_nt_xent_two_pairs_by_hand():
    # Two images, orthogonal unit projections; each view equals its pair partner.
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = z1.clone()
    t = 0.5
    # anchor 0: positive sim 1, negatives: z1[1] (0) and z2[1] (0)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * math.exp(0)))
    assert nt_xent(z1, z2, t).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_matches_direct_formula():
    torch.manual_seed(0)
    z1, z2, t = torch.randn(5, 7), torch.randn(5, 7), 0.2
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = 5
    losses = []
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        num = math.exp(float(z[i] @ z[pos]) / t)
        den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(2 * n) if k != i)
        losses.append(-math.log(num / den))
    assert nt_xent(z1, z2, t).item() == pytest.approx(sum(losses) / len(losses), rel=1e-5)


def test_negative_cosine_by_hand_and_stop_gradient():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    z = torch.tensor([[0.0, 1.0], [2.0, 2.0]], requires_grad=True)
    loss = negative_cosine(p, z)
    assert loss.item() == pytest.approx(-(0.0 + 1.0) / 2)
    loss.backward()
    assert z.grad is None  # z is treated as a constant (stop-gradient)
    assert p.grad is not None


def test_symmetric_loss_is_mean_of_both_directions():
    torch.manual_seed(1)
    p1, p2, z1, z2 = (torch.randn(4, 3) for _ in range(4))
    expected = (negative_cosine(p1, z2) + negative_cosine(p2, z1)) / 2
    assert symmetric_loss(p1, p2, z1, z2).item() == pytest.approx(expected.item())
    assert symmetric_loss(z2, z1, z1, z2).item() == pytest.approx(-1.0)  # perfect prediction
