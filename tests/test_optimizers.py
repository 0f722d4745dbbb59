"""Optimizer steps and schedule values against numbers worked out by hand.

Norms are chosen to be round: w = [3, 4] has ||w|| = 5, g = [0.3, 0.4] has ||g|| = 0.5.
"""

import math

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from sslbench.cli import app
from sslbench.core.config import OptimizerConfig, ScheduleConfig
from sslbench.engine.optim import Optimization
from sslbench.errors import UsageError


def make(plugins, name, params, **settings):
    """An optimizer over ``params`` (name -> tensor), built as the engine builds it."""
    named = [(n, nn.Parameter(torch.tensor(v))) for n, v in params.items()]
    cfg = OptimizerConfig(name=name, **settings)
    return plugins.catalog.get("optimizers", name)(named, cfg), dict(named)


def step(optimizer, params, grads):
    for name, grad in grads.items():
        params[name].grad = torch.tensor(grad)
    optimizer.step()


def values(param):
    """The parameter's entries in row-major order (approx compares flat lists)."""
    return param.detach().flatten().tolist()


# ---------------------------------------------------------------- LARS (You et al. 2017)

# a 1-d "w" would be excluded (as a bias or norm scale) by default: these steps adapt it
EVERY = {"exclude_bias_and_norm": False}


def test_lars_step_scales_the_decayed_gradient_by_the_trust_ratio(plugins):
    opt, p = make(plugins, "lars", {"w": [3.0, 4.0]}, lr=2.0, momentum=0.9, weight_decay=0.1,
                  options={"eta": 0.01, **EVERY})
    step(opt, p, {"w": [0.3, 0.4]})
    # trust = 0.01 * 5 / (0.5 + 0.1 * 5) = 0.05; d = 0.05 * (g + 0.1 w) = 0.05 * [0.6, 0.8]
    assert values(p["w"]) == pytest.approx([3 - 2 * 0.03, 4 - 2 * 0.04])


def test_lars_keeps_momentum_between_steps(plugins):
    opt, p = make(plugins, "lars", {"w": [3.0, 4.0]}, lr=1.0, momentum=0.9, weight_decay=0.0,
                  options={"eta": 0.01, **EVERY})
    step(opt, p, {"w": [0.3, 0.4]})  # trust 0.01 * 5 / 0.5 = 0.1: d1 = [0.03, 0.04]
    assert values(p["w"]) == pytest.approx([2.97, 3.96])
    step(opt, p, {"w": [0.0, 0.5]})  # ||w1|| = 4.95, trust 0.01 * 4.95 / 0.5 = 0.099
    d2 = [0.0, 0.099 * 0.5]
    buffer = [0.9 * 0.03 + d2[0], 0.9 * 0.04 + d2[1]]
    assert values(p["w"]) == pytest.approx([2.97 - buffer[0], 3.96 - buffer[1]])
    assert opt.state[p["w"]]["momentum_buffer"].tolist() == pytest.approx(buffer)


def test_lars_trust_ratio_is_one_for_a_zero_weight(plugins):
    opt, p = make(plugins, "lars", {"b": [0.0, 0.0]}, lr=0.5, momentum=0.0, weight_decay=0.1,
                  options=EVERY)
    step(opt, p, {"b": [1.0, -2.0]})
    assert values(p["b"]) == pytest.approx([-0.5, 1.0])  # a plain SGD step, not a frozen bias


def test_lars_lr_zero_never_moves_a_weight_even_with_momentum(plugins):
    opt, p = make(plugins, "lars", {"w": [3.0, 4.0]}, lr=1.0, weight_decay=0.0, options=EVERY)
    step(opt, p, {"w": [0.3, 0.4]})
    after_first = values(p["w"])
    opt.param_groups[0]["lr"] = 0.0  # a schedule's lr takes effect at once
    step(opt, p, {"w": [0.3, 0.4]})
    assert values(p["w"]) == after_first


def test_lars_clip_lr_caps_the_layer_rate_at_the_global_lr(plugins):
    """solo-learn's ``clip_lr``: the layer's rate is min(lr, trust ratio), not lr * ratio."""
    opt, p = make(plugins, "lars", {"w": [3.0, 4.0]}, lr=0.1, momentum=0.0, weight_decay=0.0,
                  options={"eta": 0.02, "clip_lr": True, **EVERY})
    step(opt, p, {"w": [0.3, 0.4]})
    # trust = 0.02 * 5 / 0.5 = 0.2; 0.2 / lr = 2 clipped to 1: a plain SGD step of lr 0.1
    assert values(p["w"]) == pytest.approx([3 - 0.03, 4 - 0.04])
    unclipped, q = make(plugins, "lars", {"w": [3.0, 4.0]}, lr=0.1, momentum=0.0,
                        weight_decay=0.0, options={"eta": 0.02, **EVERY})
    step(unclipped, q, {"w": [0.3, 0.4]})
    assert values(q["w"]) == pytest.approx([3 - 0.006, 4 - 0.008])  # 0.1 * 0.2 * g


def test_lars_clip_lr_leaves_a_ratio_under_one_alone(plugins):
    opt, p = make(plugins, "lars", {"w": [3.0, 4.0]}, lr=1.0, momentum=0.0, weight_decay=0.0,
                  options={"eta": 0.02, "clip_lr": True, **EVERY})
    step(opt, p, {"w": [0.3, 0.4]})
    assert values(p["w"]) == pytest.approx([3 - 0.06, 4 - 0.08])  # trust 0.2 / lr 1 < 1


def test_lars_excludes_biases_and_norm_parameters_by_default(plugins):
    """As BYOL's, Barlow Twins' and solo-learn's LARS: no decay, no trust ratio for them."""
    weights = {"fc.weight": [[3.0, 0.0], [0.0, 4.0]], "fc.bias": [1.0, 1.0],
               "bn.weight": [2.0, 2.0]}
    grads = {"fc.weight": [[0.0, 0.4], [0.3, 0.0]], "fc.bias": [0.5, -0.5],
             "bn.weight": [0.1, 0.2]}
    opt, p = make(plugins, "lars", weights, lr=2.0, momentum=0.9, weight_decay=0.1,
                  options={"eta": 0.01})
    assert [g["adapt"] for g in opt.param_groups] == [True, False]
    step(opt, p, grads)
    trust = 0.01 * 5 / (0.5 + 0.1 * 5)
    assert values(p["fc.weight"]) == pytest.approx(
        [3 - 2 * trust * 0.3, -2 * trust * 0.4, -2 * trust * 0.3, 4 - 2 * trust * 0.4])
    assert values(p["fc.bias"]) == pytest.approx([1 - 2 * 0.5, 1 + 2 * 0.5])
    assert values(p["bn.weight"]) == pytest.approx([2 - 2 * 0.1, 2 - 2 * 0.2])


def test_lars_option_keeps_the_old_behaviour_for_every_parameter(plugins):
    opt, p = make(plugins, "lars", {"fc.bias": [3.0, 4.0]}, lr=2.0, momentum=0.9,
                  weight_decay=0.1, options={"eta": 0.01, **EVERY})
    step(opt, p, {"fc.bias": [0.3, 0.4]})
    # adapted and decayed like a weight: trust 0.05, d = 0.05 * [0.6, 0.8]
    assert values(p["fc.bias"]) == pytest.approx([3 - 2 * 0.03, 4 - 2 * 0.04])


# ---------------------------------------------------------------- LARS, SimCLR variant

def test_lars_simclr_puts_biases_and_norm_parameters_in_a_plain_group(plugins):
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1, bias=False))
    cfg = OptimizerConfig(name="lars_simclr", lr=1.0, weight_decay=1e-4)
    opt = plugins.catalog.get("optimizers", "lars_simclr")(list(model.named_parameters()), cfg)
    adapted, plain = opt.param_groups
    assert [id(q) for q in adapted["params"]] == [id(model[0].weight), id(model[2].weight)]
    assert [id(q) for q in plain["params"]] == [id(model[0].bias), id(model[1].weight),
                                               id(model[1].bias)]
    assert (adapted["weight_decay"], adapted["adapt"]) == (1e-4, True)
    assert (plain["weight_decay"], plain["adapt"]) == (0.0, False)


def test_lars_simclr_step_values(plugins):
    weights = {"fc.weight": [[3.0, 0.0], [0.0, 4.0]], "fc.bias": [1.0, 1.0],
               "bn.weight": [2.0, 2.0]}
    grads = {"fc.weight": [[0.0, 0.4], [0.3, 0.0]], "fc.bias": [0.5, -0.5],
             "bn.weight": [0.1, 0.2]}
    opt, p = make(plugins, "lars_simclr", weights, lr=2.0, momentum=0.9, weight_decay=0.1,
                  options={"eta": 0.01})
    step(opt, p, grads)
    # g + 0.1 w = [[0.3, 0.4], [0.3, 0.4]], norm sqrt(0.5) (SimCLR's denominator);
    # trust = 0.01 * 5 / sqrt(0.5)
    trust = 0.05 / math.sqrt(0.5)
    assert values(p["fc.weight"]) == pytest.approx(
        [3 - 2 * trust * 0.3, -2 * trust * 0.4, -2 * trust * 0.3, 4 - 2 * trust * 0.4])
    # excluded: no decay, no trust ratio, plain SGD steps
    assert values(p["fc.bias"]) == pytest.approx([1 - 2 * 0.5, 1 + 2 * 0.5])
    assert values(p["bn.weight"]) == pytest.approx([2 - 2 * 0.1, 2 - 2 * 0.2])


def test_plain_lars_uses_you_et_al_denominator_on_the_same_step(plugins):
    opt, p = make(plugins, "lars", {"fc.weight": [[3.0, 0.0], [0.0, 4.0]]}, lr=2.0,
                  weight_decay=0.1, options={"eta": 0.01})
    step(opt, p, {"fc.weight": [[0.0, 0.4], [0.3, 0.0]]})
    trust = 0.01 * 5 / (0.5 + 0.1 * 5)  # ||g|| + wd ||w|| = 1, not sqrt(0.5)
    assert values(p["fc.weight"]) == pytest.approx(
        [3 - 2 * trust * 0.3, -2 * trust * 0.4, -2 * trust * 0.3, 4 - 2 * trust * 0.4])


# ---------------------------------------------------------------- LARC (clip / scale)

@pytest.mark.parametrize(("mode", "lr", "expected"), [
    # local = 0.02 * 5 / (0.5 + 0.1 * 5) = 0.1; the direction is g + 0.1 w = [0.6, 0.8]
    ("clip", 1.0, [3 - 1.0 * 0.1 * 0.6, 4 - 1.0 * 0.1 * 0.8]),  # min(0.1 / 1, 1) = 0.1
    ("scale", 1.0, [3 - 1.0 * 0.1 * 0.6, 4 - 1.0 * 0.1 * 0.8]),
    ("clip", 0.05, [3 - 0.05 * 0.6, 4 - 0.05 * 0.8]),  # min(0.1 / 0.05, 1) = 1: lr caps it
    ("scale", 0.05, [3 - 0.05 * 0.1 * 0.6, 4 - 0.05 * 0.1 * 0.8]),
])
def test_larc_clip_and_scale(plugins, mode, lr, expected):
    opt, p = make(plugins, "larc", {"w": [3.0, 4.0]}, lr=lr, momentum=0.0, weight_decay=0.1,
                  options={"eta": 0.02, "mode": mode})
    step(opt, p, {"w": [0.3, 0.4]})
    assert values(p["w"]) == pytest.approx(expected, rel=1e-6)
    assert p["w"].grad.tolist() == pytest.approx([0.3, 0.4])  # the caller's gradient is intact
    assert opt.param_groups[0]["weight_decay"] == 0.1  # restored after SGD's step


def test_larc_keeps_sgd_momentum_between_steps(plugins):
    opt, p = make(plugins, "larc", {"w": [3.0, 4.0]}, lr=1.0, momentum=0.9, weight_decay=0.0,
                  options={"eta": 0.02, "mode": "scale"})
    step(opt, p, {"w": [0.3, 0.4]})  # local = 0.02 * 5 / 0.5 = 0.2: d1 = [0.06, 0.08]
    step(opt, p, {"w": [0.0, 0.5]})  # ||w1|| = 4.9, local = 0.02 * 4.9 / 0.5 = 0.196
    buffer = [0.9 * 0.06, 0.9 * 0.08 + 0.196 * 0.5]
    assert values(p["w"]) == pytest.approx([2.94 - buffer[0], 3.92 - buffer[1]], rel=1e-6)


# ---------------------------------------------------------------- Adam / AdamW

def test_adam_couples_and_adamw_decouples_weight_decay(plugins):
    # first Adam step: m_hat = g, v_hat = g^2, so the update is lr * sign(g) (eps aside)
    settings = {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}
    adam, a = make(plugins, "adam", {"w": [1.0, -2.0]}, **settings)
    adamw, b = make(plugins, "adamw", {"w": [1.0, -2.0]}, **settings)
    step(adam, a, {"w": [0.5, 0.1]})
    step(adamw, b, {"w": [0.5, 0.1]})
    # Adam: g + 0.1 w = [0.6, -0.1] -> signs (+, -)
    assert values(a["w"]) == pytest.approx([0.99, -1.99], rel=1e-5)
    # AdamW: w (1 - lr wd) - lr sign(g) = [0.999 - 0.01, -1.998 - 0.01]
    assert values(b["w"]) == pytest.approx([0.989, -2.008], rel=1e-5)


def test_adam_beta1_is_the_momentum_and_beta2_an_option(plugins):
    opt, _ = make(plugins, "adam", {"w": [1.0]}, momentum=0.8, options={"beta2": 0.99})
    assert opt.param_groups[0]["betas"] == (0.8, 0.99)


# ---------------------------------------------------------------- options and errors

def optimization(plugins, opt: OptimizerConfig, schedule=None) -> Optimization:
    """What a resolved cell hands the engine, built straight from the catalog."""
    schedule = schedule or ScheduleConfig()
    return Optimization(plugins.catalog.get("optimizers", opt.name), opt,
                        plugins.catalog.get("schedulers", schedule.name), schedule, 256)


@pytest.mark.parametrize(("name", "options", "message"), [
    ("lars", {"bogus": 1},
     "unknown option 'bogus' (allowed: clip_lr, eta, exclude_bias_and_norm)"),
    ("lars_simclr", {"eta": "big"}, "option 'eta' must be a number, got 'big'"),
    ("lars", {"eta": 0}, "option 'eta' must be > 0, got 0.0"),
    ("larc", {"mode": "clamp"}, "option 'mode' must be one of clip, scale, got 'clamp'"),
    ("larc", {"clip": True}, "unknown option 'clip' (allowed: eps, eta, mode)"),
    ("adamw", {"beta1": 0.9}, "unknown option 'beta1' (allowed: beta2, eps)"),
])
def test_bad_options_are_one_line_usage_errors(plugins, name, options, message):
    cfg = OptimizerConfig(name=name, options=options)
    with pytest.raises(UsageError) as info:
        optimization(plugins, cfg).build_optimizer(nn.Linear(2, 2))
    assert str(info.value) == f"optimizer {name!r}: {message}"


def test_adam_rejects_nesterov(plugins):
    with pytest.raises(UsageError, match="Adam has no Nesterov momentum"):
        optimization(plugins, OptimizerConfig(name="adam", nesterov=True)).build_optimizer(
            nn.Linear(2, 2))


def test_bad_option_through_the_cli_exits_2_with_one_line(tiny):
    result = CliRunner().invoke(app, [
        "run", "simclr", "resnet18", "digits", *tiny,
        "--set", "pretrain.optimizer.name=lars", "--set", "pretrain.optimizer.options.bogus=1"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == ["error: optimizer 'lars': unknown option 'bogus' (allowed: clip_lr, eta, "
                     "exclude_bias_and_norm)"]


def test_simclr_cifar10_recipe_resolves(plugins):
    result = CliRunner().invoke(app, ["run", "simclr", "resnet18", "cifar10", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "name: lars_simclr" in result.output and "name: sgd_nesterov" in result.output


# ---------------------------------------------------------------- schedules

# --- schedules: the cosine with warm-up at known steps (seed flags: warmup_lr, base_lr,
# final_lr), constant, step -------------------------------------------------------------------

def test_cosine_with_warmup_at_known_steps(plugins):
    cosine = plugins.catalog.get("schedulers", "cosine")
    cfg = ScheduleConfig(warmup_epochs=2, warmup_lr=0.0, final_lr=0.001)
    lr = cosine(cfg, base_lr=0.1, total_steps=100, steps_per_epoch=10)
    assert lr(0) == pytest.approx(0.0)
    assert lr(10) == pytest.approx(0.05)  # half-way through the 20 warm-up steps
    assert lr(20) == pytest.approx(0.1)  # peak at the end of warm-up
    assert lr(60) == pytest.approx(0.001 + (0.1 - 0.001) * 0.5)  # half-way through the decay
    assert lr(100) == pytest.approx(0.001)
    assert lr(500) == pytest.approx(0.001)  # clamped after the end


def test_cosine_without_warmup_starts_at_base(plugins):
    cosine = plugins.catalog.get("schedulers", "cosine")
    lr = cosine(ScheduleConfig(), base_lr=0.3, total_steps=10, steps_per_epoch=5)
    assert lr(0) == pytest.approx(0.3)
    assert lr(5) == pytest.approx(0.15)


def test_constant_with_warmup(plugins):
    constant = plugins.catalog.get("schedulers", "constant")
    cfg = ScheduleConfig(name="constant", warmup_epochs=2, warmup_lr=0.01)
    lr = constant(cfg, base_lr=0.1, total_steps=100, steps_per_epoch=10)
    assert [lr(0), lr(10), lr(20), lr(99)] == pytest.approx([0.01, 0.055, 0.1, 0.1])
    plain = constant(ScheduleConfig(name="constant"), 0.3, 100, 10)
    assert {plain(s) for s in range(100)} == {0.3}


def test_step_decay_at_milestone_epochs(plugins):
    step_schedule = plugins.catalog.get("schedulers", "step")
    cfg = ScheduleConfig(name="step", options={"milestones": [3, 6], "gamma": 0.5})
    lr = step_schedule(cfg, base_lr=0.2, total_steps=100, steps_per_epoch=10)
    assert [lr(0), lr(29), lr(30), lr(59), lr(60), lr(99)] == pytest.approx(
        [0.2, 0.2, 0.1, 0.1, 0.05, 0.05])


def test_step_defaults_to_60_and_80_percent_after_a_warmup(plugins):
    step_schedule = plugins.catalog.get("schedulers", "step")
    cfg = ScheduleConfig(name="step", warmup_epochs=1)
    lr = step_schedule(cfg, base_lr=1.0, total_steps=1000, steps_per_epoch=10)  # 100 epochs
    assert [lr(0), lr(5), lr(10), lr(599), lr(600), lr(799), lr(800)] == pytest.approx(
        [0.0, 0.5, 1.0, 1.0, 0.1, 0.1, 0.01])


@pytest.mark.parametrize(("name", "options", "message"), [
    ("step", {"milestones": [30, -1]}, "option 'milestones' must be positive epochs"),
    ("step", {"gamma": 2}, "option 'gamma' must be in (0, 1], got 2.0"),
    ("step", {"epochs": [30]}, "unknown option 'epochs' (allowed: gamma, milestones)"),
    ("constant", {"gamma": 0.1}, "unknown option 'gamma' (allowed: none)"),
])
def test_bad_schedule_options(plugins, name, options, message):
    cfg = ScheduleConfig(name=name, options=options)
    with pytest.raises(UsageError) as info:
        optimization(plugins, OptimizerConfig(lr=0.1), cfg).build_schedule(
            total_steps=100, steps_per_epoch=10)
    assert str(info.value).startswith(f"schedule {name!r}: {message}")
