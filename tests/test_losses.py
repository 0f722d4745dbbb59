"""Every built-in loss against values worked out by hand or by a direct, slow formula, and
the method mechanics around them (momentum targets, queues, prototypes)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslbench import RingBuffer, cosine_momentum, ema_update
from sslbench.builtin.methods.barlow_twins import barlow_twins_loss
from sslbench.builtin.methods.byol import BYOL, BYOLConfig, regression_loss
from sslbench.builtin.methods.mocov2 import MoCoV2, MoCoV2Config, info_nce
from sslbench.builtin.methods.nnclr import NNCLR, NNCLRConfig, nearest_neighbour, nnclr_loss
from sslbench.builtin.methods.simclr import nt_xent
from sslbench.builtin.methods.simsiam import negative_cosine, symmetric_loss
from sslbench.builtin.methods.supcon import supcon_loss
from sslbench.builtin.methods.swav import SwAV, SwAVConfig, sinkhorn_knopp, swapped_prediction
from sslbench.engine.optim import trainable
from sslbench.testing import TinyConvNet


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


def dot(a, b) -> float:
    return float((a.double() * b.double()).sum())


def unit(z):
    return F.normalize(z.double(), dim=1)


# ---------------------------------------------------------------- SupCon

def slow_supcon(z, labels, t, base_t):
    z = unit(z)
    m = len(z)
    per_anchor = []
    for i in range(m):
        positives = [p for p in range(m) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        den = sum(math.exp(dot(z[i], z[a]) / t) for a in range(m) if a != i)
        logs = [math.log(math.exp(dot(z[i], z[p]) / t) / den) for p in positives]
        per_anchor.append(-(t / base_t) * sum(logs) / len(positives))
    return sum(per_anchor) / len(per_anchor)


def test_supcon_with_repeated_labels_matches_direct_formula():
    torch.manual_seed(0)
    z = torch.randn(8, 5)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2, 3])  # label 3 once: an anchor with no positive
    expected = slow_supcon(z, labels.tolist(), 0.1, 0.07)
    assert supcon_loss(z, labels, 0.1, 0.07).item() == pytest.approx(expected, rel=1e-5)


def test_supcon_with_distinct_labels_is_nt_xent_scaled():
    # each image's only positive is its other view: L_out reduces to SimCLR's NT-Xent
    torch.manual_seed(1)
    z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    labels = torch.arange(6).repeat(2)
    got = supcon_loss(torch.cat([z1, z2]), labels, 0.5, 0.25).item()
    assert got == pytest.approx(2.0 * nt_xent(z1, z2, 0.5).item(), rel=1e-5)


def test_supcon_needs_labels():
    from sslbench.builtin.methods.supcon import SupCon, SupConConfig

    method = SupCon(TinyConvNet(), SupConConfig(proj_hidden_dim=8, proj_dim=4))
    with pytest.raises(ValueError, match="needs labels"):
        method([torch.randn(4, 3, 8, 8)] * 2, None)


# ---------------------------------------------------------------- BYOL and EMA

def test_regression_loss_by_hand():
    q = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    z = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
    # cos = 0 -> 2 - 0 = 2; cos = 1 -> 0; mean 1
    assert regression_loss(q, z).item() == pytest.approx(1.0)
    assert regression_loss(q, -q).item() == pytest.approx(4.0)


def test_cosine_momentum_by_hand():
    assert cosine_momentum(0, 100) == pytest.approx(0.996)
    assert cosine_momentum(50, 100) == pytest.approx(0.998)
    assert cosine_momentum(100, 100) == pytest.approx(1.0)
    assert cosine_momentum(25, 100, base=0.9, final=1.0) == pytest.approx(
        1 - 0.1 * (math.cos(math.pi / 4) + 1) / 2)


def test_ema_update_formula_and_buffers():
    target, online = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        target.weight.fill_(1.0)
        online.weight.fill_(3.0)
        online.running_mean.fill_(7.0)
    ema_update(target, online, 0.75)
    assert torch.allclose(target.weight, torch.full((3,), 0.75 * 1 + 0.25 * 3))
    assert torch.equal(target.running_mean, online.running_mean)
    with pytest.raises(ValueError, match="tau"):
        ema_update(target, online, 1.5)


def test_byol_target_follows_the_ema_formula_for_k_steps():
    torch.manual_seed(0)
    cfg = BYOLConfig(proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, base_momentum=0.9)
    method = BYOL(TinyConvNet(), cfg)
    online = list(method.backbone.parameters()) + list(method.projector.parameters())
    target = list(method.target_backbone.parameters()) + list(method.target_projector.parameters())
    assert all(not p.requires_grad for p in target)
    assert not {id(p) for p in target} & {id(p) for _, p in trainable(method)}
    expected = [p.detach().clone() for p in target]
    initial = [p.detach().clone() for p in target]
    optimizer = torch.optim.SGD([p for _, p in trainable(method)], lr=0.5)
    views = [torch.randn(16, 3, 8, 8), torch.randn(16, 3, 8, 8)]
    total = 4
    for step in range(3):
        loss, _ = method(views)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in target)
        optimizer.step()
        with torch.no_grad():
            method.after_step(step, total)
        tau = 1 - (1 - 0.9) * (math.cos(math.pi * step / total) + 1) / 2
        expected = [tau * e + (1 - tau) * o.detach() for e, o in zip(expected, online,
                                                                          strict=True)]
    for got, want in zip(target, expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    assert any(not torch.allclose(got, old) for got, old in zip(target, initial, strict=True))


# ---------------------------------------------------------------- SwAV

def slow_sinkhorn(scores, eps, iterations):
    """The paper's algorithm on a K x B list of lists, then transposed and scaled by B."""
    b, k = len(scores), len(scores[0])
    q = [[math.exp(scores[j][i] / eps) for j in range(b)] for i in range(k)]
    total = sum(map(sum, q))
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        q = [[v / sum(row) / k for v in row] for row in q]
        cols = [sum(q[i][j] for i in range(k)) for j in range(b)]
        q = [[q[i][j] / cols[j] / b for j in range(b)] for i in range(k)]
    return [[q[i][j] * b for i in range(k)] for j in range(b)]


def random_scores(b=12, k=4, d=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(b, d, generator=gen), dim=1)
    c = F.normalize(torch.randn(k, d, generator=gen), dim=1)
    return z @ c.T


def test_sinkhorn_matches_the_slow_algorithm():
    scores = random_scores()
    expected = torch.tensor(slow_sinkhorn(scores.double().tolist(), 0.05, 3), dtype=torch.float64)
    assert torch.allclose(sinkhorn_knopp(scores, 0.05, 3).double(), expected, rtol=1e-4,
                          atol=1e-6)


def test_sinkhorn_codes_lie_on_the_transportation_polytope():
    # Q (K x B) has rows summing to 1/K and columns to 1/B; the codes are B * Q^T
    b, k = 12, 4
    codes = sinkhorn_knopp(random_scores(b, k), 0.05, 3)
    assert torch.allclose(codes.sum(dim=1), torch.ones(b), atol=1e-5)  # exact after each pass
    assert (codes >= 0).all()
    converged = sinkhorn_knopp(random_scores(b, k), 0.05, 1000)
    assert torch.allclose(converged.sum(dim=0), torch.full((k,), b / k), atol=1e-4)
    assert torch.allclose(converged.sum(dim=1), torch.ones(b), atol=1e-5)


def test_swapped_prediction_matches_direct_formula():
    scores, codes = random_scores(seed=1), sinkhorn_knopp(random_scores(seed=2))
    t = 0.1
    total = 0.0
    for s, q in zip(scores.double().tolist(), codes.double().tolist(), strict=True):
        den = sum(math.exp(v / t) for v in s)
        total += -sum(qk * math.log(math.exp(sk / t) / den) for qk, sk in zip(q, s, strict=True))
    assert swapped_prediction(scores, codes, t).item() == pytest.approx(total / len(scores),
                                                                        rel=1e-5)


def small_swav(**options):
    cfg = SwAVConfig(proj_hidden_dim=16, proj_dim=8, num_prototypes=6, **options)
    return SwAV(TinyConvNet(), cfg)


def multi_crop_views(b=8):
    return [torch.randn(b, 3, 8, 8), torch.randn(b, 3, 8, 8), torch.randn(b, 3, 4, 4),
            torch.randn(b, 3, 4, 4)]


def test_swav_loss_is_the_mean_of_all_swapped_predictions():
    torch.manual_seed(0)
    method, views = small_swav(), multi_crop_views()
    loss, _ = method(views)
    with torch.no_grad():
        scores = [method.prototypes(z).double().tolist() for z in method.embed(views)]
    terms = []
    for i in (0, 1):  # codes of the two global crops predict every other crop
        codes = slow_sinkhorn(scores[i], 0.05, 3)
        for v in range(4):
            if v != i:
                terms.append(swapped_prediction(torch.tensor(scores[v]), torch.tensor(codes),
                                                0.1).item())
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-4)


def test_swav_gradients_reach_backbone_and_prototypes_freeze_in_epoch_0():
    torch.manual_seed(0)
    method = small_swav()
    optimizer = torch.optim.SGD([p for _, p in trainable(method)], lr=0.1, weight_decay=0.1)
    before = method.prototypes.weight.detach().clone()
    method.on_epoch_start(0, 2)
    loss, _ = method(multi_crop_views())
    loss.backward()
    for name, p in method.backbone.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert method.prototypes.weight.grad is None
    optimizer.step()  # even weight decay must leave the frozen prototypes alone
    assert torch.equal(method.prototypes.weight, before)

    method.on_epoch_start(1, 2)
    optimizer.zero_grad()
    method(multi_crop_views())[0].backward()
    assert method.prototypes.weight.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.allclose(method.prototypes.weight, before)
    method.after_step(0, 10)  # prototypes back on the unit sphere after every step
    assert torch.allclose(method.prototypes.weight.norm(dim=1), torch.ones(6), atol=1e-6)


def test_swav_queue_starts_at_its_epoch_and_keeps_the_newest():
    torch.manual_seed(0)
    method = small_swav(queue_length=12, queue_start_epoch=1)
    views = multi_crop_views(b=8)
    method.on_epoch_start(0, 3)
    method(views)
    queue = method.queues[0]
    assert int(queue.filled) == 0 and not queue.items.any()
    method.on_epoch_start(1, 3)
    method(views)
    with torch.no_grad():
        z0 = method.embed(views)[0]
    assert int(queue.filled) == 8
    assert torch.allclose(queue.items[:8], z0, atol=1e-6)
    method(views)
    assert queue.is_full()  # from now on its scores join the Sinkhorn
    assert torch.allclose(queue.items[8:], z0[:4], atol=1e-6)  # the ring wraps: oldest first
    assert torch.allclose(queue.items[:4], z0[4:], atol=1e-6)


# ---------------------------------------------------------------- Barlow Twins

def slow_barlow_twins(z1, z2, lambd):
    n, d = z1.shape

    def standardised(z):
        cols = []
        for j in range(d):
            col = [float(z[b, j]) for b in range(n)]
            mean = sum(col) / n
            std = math.sqrt(sum((v - mean) ** 2 for v in col) / n + 1e-5)
            cols.append([(v - mean) / std for v in col])
        return cols  # [d][n]

    a, b = standardised(z1), standardised(z2)
    c = [[sum(a[i][k] * b[j][k] for k in range(n)) / n for j in range(d)] for i in range(d)]
    on = sum((1 - c[i][i]) ** 2 for i in range(d))
    off = sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j)
    return on + lambd * off


def test_barlow_twins_matches_direct_formula():
    torch.manual_seed(0)
    z1, z2 = torch.randn(10, 4), torch.randn(10, 4)
    loss, _, _ = barlow_twins_loss(z1, z2, 5e-3)
    assert loss.item() == pytest.approx(slow_barlow_twins(z1, z2, 5e-3), rel=1e-5)


def test_barlow_twins_is_zero_for_identical_decorrelated_embeddings():
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # C = identity
    loss, inv, red = barlow_twins_loss(z, z.clone(), 5e-3)
    assert loss.item() == pytest.approx(0.0, abs=1e-4)
    assert red.item() == pytest.approx(0.0, abs=1e-8)


# ---------------------------------------------------------------- MoCo v2

def test_info_nce_matches_direct_formula():
    torch.manual_seed(0)
    q, k = torch.randn(4, 3), torch.randn(4, 3)
    queue = F.normalize(torch.randn(5, 3), dim=1)
    t = 0.2
    qn, kn = unit(q), unit(k)
    total = 0.0
    for i in range(4):
        pos = math.exp(dot(qn[i], kn[i]) / t)
        neg = sum(math.exp(dot(qn[i], queue[j]) / t) for j in range(5))
        total += -math.log(pos / (pos + neg))
    assert info_nce(q, k, queue, t).item() == pytest.approx(total / 4, rel=1e-5)


def test_ring_buffer_replaces_the_oldest_first():
    buffer = RingBuffer(5, 1)
    buffer.push(torch.tensor([[7.0], [8.0], [9.0]]))
    assert buffer.items.flatten().tolist() == [7.0, 8.0, 9.0, 0.0, 0.0]
    assert int(buffer.filled) == 3 and buffer.valid_mask().tolist() == [True] * 3 + [False] * 2
    buffer.push(torch.tensor([[1.0], [2.0], [3.0], [4.0]]))  # wraps: 1, 2 at the end
    assert buffer.items.flatten().tolist() == [3.0, 4.0, 9.0, 1.0, 2.0] and int(buffer.ptr) == 2
    assert buffer.is_full()
    buffer.push(torch.arange(10.0).view(10, 1))  # more keys than room: the last 5
    assert sorted(buffer.items.flatten().tolist()) == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert set(buffer.state_dict()) == {"items", "ptr", "filled"}


def test_random_ring_buffer_starts_full_of_unit_vectors():
    buffer = RingBuffer(6, 3, random=True)
    assert buffer.is_full() and torch.allclose(buffer.items.norm(dim=1), torch.ones(6))


def test_moco_enqueues_keys_and_key_encoder_follows_momentum():
    torch.manual_seed(0)
    cfg = MoCoV2Config(proj_hidden_dim=16, proj_dim=8, queue_size=32, momentum=0.5)
    method = MoCoV2(TinyConvNet(), cfg)
    views = [torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8)]
    with torch.no_grad():
        keys = method.keys(views[1])
    method(views)
    assert torch.allclose(method.queue.items[:8], keys, atol=1e-6)
    assert int(method.queue.ptr) == 8
    key_before = method.key_projector[0].weight.detach().clone()
    with torch.no_grad():
        method.projector[0].weight.add_(1.0)
        method.after_step(0, 10)
    expected = 0.5 * key_before + 0.5 * method.projector[0].weight
    assert torch.allclose(method.key_projector[0].weight, expected)


# ---------------------------------------------------------------- NNCLR

def test_nearest_neighbour_by_hand_ignores_unfilled_rows():
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
    z = torch.tensor([[2.0, 0.1], [0.1, -3.0], [0.5, 0.9]])
    # cosines of z[2] ~ (0.49, 0.87): 0.49, 0.87, -0.49, 0.99 -> the last row
    assert torch.allclose(nearest_neighbour(z, support),
                          torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]]))
    # rows 2 and 3 not filled yet: only the first two are candidates
    got = nearest_neighbour(z, support, filled=torch.tensor(2))
    assert got.tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]


def test_nnclr_loss_matches_direct_formula():
    torch.manual_seed(0)
    a, p, t = torch.randn(5, 3), torch.randn(5, 3), 0.1
    an, pn = unit(a), unit(p)
    total = 0.0
    for i in range(5):
        den = sum(math.exp(dot(an[i], pn[k]) / t) for k in range(5))
        total += -math.log(math.exp(dot(an[i], pn[i]) / t) / den)
    assert nnclr_loss(a, p, t).item() == pytest.approx(total / 5, rel=1e-5)


def test_nnclr_support_set_fills_first_in_first_out():
    torch.manual_seed(0)
    cfg = NNCLRConfig(proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, support_size=12)
    method = NNCLR(TinyConvNet(), cfg)
    views = [torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8)]
    method(views)
    assert int(method.support.filled) == 8 and int(method.support.ptr) == 8
    assert torch.allclose(method.support.items[:8].norm(dim=1), torch.ones(8), atol=1e-5)
    method(views)
    assert int(method.support.filled) == 12 and int(method.support.ptr) == 4


def test_moco_symmetric_loss_is_the_sum_of_both_directions_as_in_the_demo():
    torch.manual_seed(0)
    cfg = MoCoV2Config(proj_hidden_dim=16, proj_dim=8, queue_size=32, symmetric=True,
                       temperature=0.1)
    method = MoCoV2(TinyConvNet(), cfg)
    views = [torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8)]
    queue = method.queue.items.clone()
    with torch.no_grad():
        k1, k2 = method.keys(views[0]), method.keys(views[1])
        q1, q2 = (method.projector(method.backbone(v)) for v in views)
        expected = info_nce(q1, k2, queue, 0.1) + info_nce(q2, k1, queue, 0.1)
        loss, _ = method(views)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


# ---------------------------------------------------------------- DINO

def test_dino_distillation_is_cross_entropy_by_hand():
    from sslbench.builtin.methods.dino import distillation_loss

    # teacher (1, 0), student logits (0, 0) at temperature 1: -log(1/2)
    p_t = torch.tensor([[1.0, 0.0]])
    assert distillation_loss(torch.zeros(1, 2), p_t, 1.0).item() == pytest.approx(math.log(2))
    # student logits (2, 0) at temperature 2 -> softmax(1, 0); teacher (0.5, 0.5)
    s = torch.tensor([[2.0, 0.0]])
    log_p = [1 - math.log(math.e + 1), -math.log(math.e + 1)]
    expected = -(0.5 * log_p[0] + 0.5 * log_p[1])
    got = distillation_loss(s, torch.tensor([[0.5, 0.5]]), 2.0).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_dino_multi_crop_pairs_skip_the_same_view():
    """Eq. 3: teacher views x in {g1, g2}, student views x' != x; 2 x 4 - 2 = 6 terms."""
    from sslbench.builtin.methods.dino import distillation_loss, multi_crop_loss

    torch.manual_seed(0)
    student = [torch.randn(3, 5) for _ in range(4)]
    teacher = [F.softmax(torch.randn(3, 5), dim=1) for _ in range(2)]
    terms = [distillation_loss(student[j], teacher[i], 0.1).item()
             for i in range(2) for j in range(4) if j != i]
    assert len(terms) == 6
    assert multi_crop_loss(student, teacher, 0.1).item() == pytest.approx(sum(terms) / 6,
                                                                         rel=1e-6)


def test_dino_centering_sharpening_and_temperature_warmup():
    from sslbench.builtin.methods.dino import (
        teacher_probabilities,
        teacher_temperature,
        updated_center,
    )

    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    center = updated_center(torch.zeros(1, 2), logits, 0.9)
    assert center[0].tolist() == pytest.approx([0.1, 0.0])  # 0.9 * 0 + 0.1 * mean (1, 0)
    # centring subtracts c, then softmax at tau_t: row 2 is (-0.1, 0) / 0.5
    probs = teacher_probabilities(logits, center, 0.5)
    assert probs[1, 1].item() == pytest.approx(1 / (1 + math.exp(-0.2)), rel=1e-6)
    assert [teacher_temperature(e, 0.04, 0.07, 30) for e in (0, 15, 30, 99)] == pytest.approx(
        [0.04, 0.055, 0.07, 0.07])


def test_dino_last_layer_is_frozen_during_the_first_epoch_and_weight_normalised():
    from sslbench.builtin.methods.dino import DINO, DINOConfig

    cfg = DINOConfig(hidden_dim=16, bottleneck_dim=8, out_dim=32,
                     warmup_teacher_temperature_epochs=2)
    model = DINO(TinyConvNet(), cfg)
    model.on_epoch_start(0, 10)
    views = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16), torch.randn(4, 3, 8, 8)]
    loss, logs = model(views)
    loss.backward()
    assert model.head.last_layer.grad is None and model.head.mlp[0].weight.grad is not None
    assert model.center.abs().sum() > 0  # updated by the step's teacher outputs
    model.on_epoch_start(1, 10)
    assert model.head.last_layer.requires_grad and model.epoch.item() == 1
    # the last layer's rows have norm 1 whatever v's scale: scaling v changes nothing
    x = torch.randn(2, 16)
    before = model.head(x)
    with torch.no_grad():
        model.head.last_layer.mul_(3.0)
    assert torch.allclose(model.head(x), before, atol=1e-6)


# ---------------------------------------------------------------- MoCo v3

def slow_ctr(q, k, t):
    q, k = unit(q), unit(k)
    total = 0.0
    for i in range(len(q)):
        den = sum(math.exp(dot(q[i], k[j]) / t) for j in range(len(k)))
        total += -math.log(math.exp(dot(q[i], k[i]) / t) / den)
    return 2 * t * total / len(q)


def test_mocov3_contrastive_loss_matches_the_loop_formula_and_is_summed():
    from sslbench.builtin.methods.mocov3 import contrastive_loss, symmetric_contrastive_loss

    torch.manual_seed(0)
    q1, q2, k1, k2 = (torch.randn(5, 4) for _ in range(4))
    assert contrastive_loss(q1, k2, 0.2).item() == pytest.approx(slow_ctr(q1, k2, 0.2), rel=1e-5)
    expected = slow_ctr(q1, k2, 1.0) + slow_ctr(q2, k1, 1.0)
    assert symmetric_contrastive_loss(q1, q2, k1, k2, 1.0).item() == pytest.approx(expected,
                                                                                  rel=1e-5)


# ---------------------------------------------------------------- MAE

def test_mae_patchify_is_row_major_like_the_vit():
    from sslbench.builtin.methods.mae import patchify

    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    patches = patchify(x, 2)  # [2, 4 patches, 2 * 2 * 3]
    assert patches.shape == (2, 4, 12)
    # patch 1 is the top-right 2x2 block; values ordered (row, col, channel)
    top_right = x[0, :, 0:2, 2:4].permute(1, 2, 0).reshape(-1)
    assert torch.equal(patches[0, 1], top_right)


def test_mae_masking_keeps_a_quarter_and_the_loss_sees_only_masked_patches():
    from sslbench.builtin.methods.mae import (
        masked_reconstruction_loss,
        normalised_pixels,
        random_masking,
    )

    torch.manual_seed(0)
    keep, mask = random_masking(3, 16, 0.75)
    assert keep.shape == (3, 4) and mask.sum(dim=1).tolist() == [12, 12, 12]
    assert not mask.gather(1, keep).any()
    target = torch.randn(3, 16, 6)
    pred = target.clone()
    pred[~mask] += 100.0  # errors on visible patches do not count
    pred[mask] += 1.0  # every masked value off by 1
    assert masked_reconstruction_loss(pred, target, mask).item() == pytest.approx(1.0)
    norm = normalised_pixels(torch.tensor([[1.0, 2.0, 3.0]]))
    assert norm.tolist()[0] == pytest.approx([-1.0, 0.0, 1.0], abs=1e-5)  # var 1 (unbiased)


# ---------------------------------------------------------------- VICReg

def slow_vicreg(a, b, lam, mu, nu, gamma=1.0, eps=1e-4):
    """Eq. 6 with the authors' halved variance term, written out with loops."""
    n, d = len(a), len(a[0])

    def mean(z, j):
        return sum(z[i][j] for i in range(n)) / n

    def var(z, j):
        return sum((z[i][j] - mean(z, j)) ** 2 for i in range(n)) / (n - 1)

    def cov(z, j, k):
        return sum((z[i][j] - mean(z, j)) * (z[i][k] - mean(z, k)) for i in range(n)) / (n - 1)

    s = sum((a[i][j] - b[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
    v = sum(max(0.0, gamma - math.sqrt(var(z, j) + eps)) for z in (a, b) for j in range(d)) / d
    c = sum(cov(z, j, k) ** 2 for z in (a, b) for j in range(d) for k in range(d) if j != k) / d
    return lam * s + mu * v / 2 + nu * c


def test_vicreg_terms_by_hand():
    from sslbench.builtin.methods.vicreg import covariance, invariance, variance

    z = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    # centred rows (-1, -2), (1, 2): covariance [[2, 4], [4, 8]]; off-diagonal 4^2 + 4^2 over D=2
    assert covariance(z).item() == pytest.approx(16.0)
    assert variance(z).item() == 0.0  # both standard deviations exceed gamma = 1
    assert variance(torch.tensor([[0.0], [1.0]])).item() == pytest.approx(1 - math.sqrt(0.5001))
    assert invariance(z, z + 1).item() == pytest.approx(1.0)


def test_vicreg_loss_halves_the_variance_term_as_the_authors_code():
    from sslbench.builtin.methods.vicreg import vicreg_loss

    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen) * 0.3
    loss, logs = vicreg_loss(a, b, lam=25.0, mu=25.0, nu=1.0)
    assert loss.item() == pytest.approx(slow_vicreg(a.tolist(), b.tolist(), 25, 25, 1), rel=1e-5)
    # collapsed embeddings: only the variance term, mu * (v(Z) + v(Z')) / 2 = 25 (1 - 0.01)
    z = torch.ones(8, 16)
    loss, logs = vicreg_loss(z, z)
    assert logs["invariance"] == 0 and logs["covariance"] == 0
    assert loss.item() == pytest.approx(25 * (1 - math.sqrt(1e-4)))
