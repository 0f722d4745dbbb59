"""The ImageNet-100 and ImageNet recipes resolve to the published values (no data needed).

Expected values are copied by hand from the cited sources (solo-learn's yaml files at commit
9187ea39, the papers and the authors' commands), not from the recipes: an lr is the effective
one, after sslbench's ``scale_lr_with_batch`` at the recipe's batch, which must equal
solo-learn's yaml lr x global batch / 256 (solo/args/pretrain.py).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from sslbench.bench.resolve import resolve_cell
from sslbench.builtin.methods.dino import DINO, DINOConfig
from sslbench.cli import app
from sslbench.core.config import PretrainConfig
from sslbench.testing.tiny import TinyConvNet

# method -> (optimizer, lr at batch 256, weight decay, linear-probe lr, method options)
# from scripts/pretrain/imagenet-100/<method>.yaml and scripts/linear/imagenet-100/<method>.yaml
IMAGENET100 = {
    "simclr": ("lars", 0.3, 1e-4, 1.0, {"proj_hidden_dim": 4096, "proj_dim": 512,
                                        "temperature": 0.2}),
    "byol": ("lars", 0.5, 1e-6, 0.3, {"proj_dim": 256, "pred_hidden_dim": 8192,
                                      "base_momentum": 0.99, "final_momentum": 1.0}),
    "simsiam": ("sgd", 0.5, 1e-5, 30.0, {"proj_dim": 2048, "pred_hidden_dim": 512}),
    "mocov2": ("sgd", 0.3, 1e-4, 3.0, {"proj_dim": 256, "queue_size": 65536,
                                       "temperature": 0.2, "symmetric": True}),
    "barlow_twins": ("lars", 0.3, 1e-4, 0.1, {"proj_hidden_dim": 2048, "proj_dim": 2048,
                                              "lambd": 0.0051}),
    "swav": ("lars", 0.6, 1e-6, 0.15, {"num_prototypes": 3000, "queue_length": 3840,
                                       "queue_start_epoch": 50, "freeze_prototypes_epochs": 2}),
    "nnclr": ("lars", 0.4, 1e-5, 0.3, {"support_size": 65536, "temperature": 0.2,
                                       "pred_hidden_dim": 4096}),
    "vicreg": ("lars", 0.3, 1e-4, 0.3, {"expander_dim": 2048, "variance_weight": 25.0}),
    "supcon": ("sgd", 0.5, 1e-5, 0.3, {"proj_dim": 512, "temperature": 0.2}),
    "dino": ("lars", 0.3, 1e-6, 0.3, {"out_dim": 4096, "warmup_teacher_temperature_epochs": 50,
                                      "base_momentum": 0.9995}),
    "mocov3": ("lars", 0.3, 1e-6, 0.3, {"pred_hidden_dim": 4096, "temperature": 0.2,
                                        "base_momentum": 0.99}),
    "mae": ("adamw", 2e-4, 0.05, 0.3, {"decoder_dim": 512, "mask_ratio": 0.75}),
}
# method -> (optimizer, epochs, batch, effective lr, weight decay, method options)
IMAGENET = {
    "simclr": ("lars_simclr", 1000, 4096, 4.8, 1e-6, {"temperature": 0.1, "proj_dim": 128}),
    "byol": ("lars", 100, 2048, 3.6, 1e-6, {"pred_hidden_dim": 4096}),  # 0.45 x 64 x 2 x 16
    "simsiam": ("sgd", 100, 512, 0.1, 1e-4, {"pred_hidden_dim": 512}),  # 0.05 x 512 / 256
    "mocov2": ("sgd", 400, 128, 0.15, 3e-5, {"queue_size": 65536}),  # 0.3 x 64 x 2 / 256
    "barlow_twins": ("lars", 100, 256, 0.8, 1.5e-6, {"proj_dim": 4096}),
    "swav": ("larc", 800, 4096, 4.8, 1e-6, {"queue_length": 0}),  # swav_800ep: base_lr 4.8
    "nnclr": ("lars", 1000, 4096, 4.8, 1e-6, {"support_size": 98304, "temperature": 0.1}),
    "vicreg": ("lars_simclr", 1000, 2048, 1.6, 1e-6, {"expander_dim": 8192}),  # 0.2 x 8
    "dino": ("sgd", 100, 512, 0.06, 1e-4, {"out_dim": 65536, "teacher_temperature": 0.04}),
    "mocov3": ("lars_simclr", 1000, 4096, 4.8, 1.5e-6, {"temperature": 1.0,
                                                       "base_momentum": 0.996}),
    "supervised": ("sgd", 90, 256, 0.1, 1e-4, {}),
    "mae": ("adamw", 400, 128, 1e-4, 0.05, {"decoder_depth": 8}),  # 2e-4 x 64 x 2 / 256
}
# no published recipe for these (see the methods' comments): the generic defaults apply
UNPUBLISHED = [("supervised", "imagenet100"), ("supcon", "imagenet")]
# linear probe (effective lr, weight decay): solo-learn's scripts/linear/imagenet/*.yaml,
# SimSiam's main_lincls.py (LARC, 0.1 x 4096 / 256); else the dataset's lr 0.1, wd 0
LINEAR_IMAGENET = {"barlow_twins": (0.3, 1e-5), "mocov2": (3.0, 0.0), "simsiam": (1.6, 0.0)}


def backbone_for(method: str, depth: str) -> str:
    return "vit_small" if method == "mae" else depth  # MAE needs a ViT (solo-learn: ViT-B)


def cell(plugins, method: str, dataset: str, **kw):
    depth = "resnet18" if dataset == "imagenet100" else "resnet50"
    return resolve_cell(plugins.catalog, method, backbone_for(method, depth), dataset, **kw)


@pytest.mark.parametrize("method", sorted(IMAGENET100))
def test_imagenet100_recipe_is_solo_learns(plugins, method):
    optimizer, lr, wd, linear_lr, options = IMAGENET100[method]
    resolved = cell(plugins, method, "imagenet100")
    pretrain = resolved.config.pretrain
    assert (pretrain.epochs, pretrain.batch_size) == (400, 256)
    assert pretrain.optimizer.name == optimizer and pretrain.optimizer.weight_decay == wd
    assert resolved.pretraining.lr == pytest.approx(lr)
    assert pretrain.schedule.name == "cosine" and pretrain.schedule.warmup_epochs == 10
    # warmup_start_lr: solo-learn's default 3e-5, MAE's file sets 0
    assert pretrain.schedule.warmup_lr == (0.0 if method == "mae" else 3e-5)
    if optimizer == "lars":
        assert pretrain.optimizer.options == {"eta": 0.02, "clip_lr": True,
                                              "exclude_bias_and_norm": True}
    assert {k: resolved.method_options.model_dump()[k] for k in options} == options
    linear = resolved.config.eval.linear
    assert linear.optimizer.lr == linear_lr and linear.optimizer.weight_decay == 0.0
    assert (linear.epochs, linear.batch_size, linear.schedule.name) == (100, 256, "step")


@pytest.mark.parametrize("method", sorted(IMAGENET))
def test_imagenet_recipe_is_the_cited_one(plugins, method):
    optimizer, epochs, batch, lr, wd, options = IMAGENET[method]
    resolved = cell(plugins, method, "imagenet")
    pretrain = resolved.config.pretrain
    assert (pretrain.epochs, pretrain.batch_size) == (epochs, batch)
    assert pretrain.optimizer.name == optimizer and pretrain.optimizer.weight_decay == wd
    assert resolved.pretraining.lr == pytest.approx(lr)
    assert {k: resolved.method_options.model_dump()[k] for k in options} == options
    linear_lr, linear_wd = LINEAR_IMAGENET.get(method, (0.1, 0.0))
    assert resolved.linear.lr == pytest.approx(linear_lr)
    assert resolved.config.eval.linear.optimizer.weight_decay == linear_wd


def test_solo_learn_lr_scales_with_the_batch_as_solo_learn_does(plugins):
    resolved = cell(plugins, "byol", "imagenet100", overrides={"pretrain.batch_size": 512})
    assert resolved.pretraining.lr == pytest.approx(0.5 * 512 / 256)


@pytest.mark.parametrize(("method", "dataset"), [
    (m, d) for d in ("imagenet100", "imagenet") for m in sorted(IMAGENET100 | IMAGENET)
    if (m, d) not in UNPUBLISHED and m in (IMAGENET100 if d == "imagenet100" else IMAGENET)])
def test_every_recipe_changes_the_generic_pretraining(plugins, method, dataset):
    """A recipe silently not applied (a misspelt dataset key) would leave these defaults."""
    generic = PretrainConfig().model_dump(exclude={"views"})
    assert cell(plugins, method, dataset).config.pretrain.model_dump(exclude={"views"}) != generic


@pytest.mark.parametrize(("method", "dataset"), UNPUBLISHED)
def test_no_recipe_is_invented_where_none_is_published(plugins, method, dataset):
    generic = PretrainConfig().model_dump(exclude={"views"})
    assert cell(plugins, method, dataset).config.pretrain.model_dump(exclude={"views"}) == generic


def test_dataset_recipes_carry_the_linear_protocols(plugins):
    for dataset, lr in (("imagenet100", 0.3), ("imagenet", 0.1)):
        linear = cell(plugins, "random", dataset).config.eval.linear
        assert (linear.epochs, linear.batch_size, linear.cached) == (100, 256, False)
        assert (linear.optimizer.name, linear.optimizer.lr, linear.optimizer.weight_decay) == (
            "sgd", lr, 0.0)
        lr_at = cell(plugins, "random", dataset).linear.build_schedule(100 * 10, 10)
        epochs = [0, 59, 60, 79, 80, 99]  # x 0.1 at epochs 60 and 80
        assert [lr_at(10 * e) for e in epochs] == pytest.approx(
            [lr, lr, lr / 10, lr / 10, lr / 100, lr / 100])


def test_recipe_views_are_solo_learns_pipelines(plugins):
    byol = cell(plugins, "byol", "imagenet100").config.pretrain.views
    assert [(v.count, v.blur_p, v.solarize_p) for v in byol] == [(1, 1.0, 0.0), (1, 0.1, 0.2)]
    assert byol[0].jitter == (0.4, 0.4, 0.2, 0.1) and byol[0].scale == (0.08, 1.0)
    simclr = cell(plugins, "simclr", "imagenet100").config.pretrain.views
    assert [(v.count, v.jitter, v.blur_p) for v in simclr] == [(2, (0.8, 0.8, 0.8, 0.2), 0.5)]
    swav = cell(plugins, "swav", "imagenet100").config.pretrain.views
    assert [v.count for v in swav] == [2]  # solo-learn's SwAV: no multi-crop on ImageNet-100
    vicreg = cell(plugins, "vicreg", "imagenet100").config.pretrain.views
    assert [(v.scale, v.solarize_p) for v in vicreg] == [((0.2, 1.0), 0.1)]


def test_recipe_lars_options_reach_the_optimizer(plugins):
    optimizer = cell(plugins, "simclr", "imagenet100").pretraining.build_optimizer(
        nn.Linear(4, 4))
    adapted = optimizer.param_groups[0]
    assert (adapted["eta"], adapted["clip_lr"], adapted["adapt"]) == (0.02, True, True)
    assert optimizer.param_groups[1]["adapt"] is False  # the bias: no trust ratio, no decay


def test_dino_trains_on_its_two_global_views_alone():
    """solo-learn's ResNet recipes give DINO two 224 px views and no local crops."""
    model = DINO(TinyConvNet(), DINOConfig(out_dim=16, hidden_dim=8, bottleneck_dim=4))
    views = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)]
    loss, _ = model(views)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="at least global_views=2 views"):
        model(views[:1])


def test_dry_run_shows_the_recipe_without_the_data(tmp_path):
    result = CliRunner().invoke(app, ["run", "byol", "resnet18", "imagenet100", "--dry-run"])
    assert result.exit_code == 0, result.output
    for line in ("epochs: 400", "lr: 0.5", "clip_lr: true", "pred_hidden_dim: 8192",
                 "warmup_lr: 3.0e-05", "name: step"):
        assert line in result.output
    assert not (tmp_path / "data").exists()  # nothing looked for, nothing downloaded


@pytest.mark.parametrize(("method", "backbone", "batch", "lr", "wd", "options"), [
    # solo-learn's dino_vit.yaml / mocov3_vit.yaml: AdamW, lr at batch 256 scaled to the batch
    ("dino", "vit_tiny", 256, 5e-3, 1e-4, {"out_dim": 65536, "base_momentum": 0.9995}),
    ("mocov3", "vit_small", 1024, 1.2e-3, 0.1, {"temperature": 0.2, "base_momentum": 0.99}),
])
def test_imagenet100_vit_recipes_sit_beside_the_resnet_ones(plugins, method, backbone, batch,
                                                            lr, wd, options):
    vit = resolve_cell(plugins.catalog, method, backbone, "imagenet100")
    pretrain = vit.config.pretrain
    assert (pretrain.epochs, pretrain.batch_size, pretrain.optimizer.name) == (400, batch, "adamw")
    assert vit.pretraining.lr == pytest.approx(lr) and pretrain.optimizer.weight_decay == wd
    assert {k: vit.method_options.model_dump()[k] for k in options} == options
    resnet = cell(plugins, method, "imagenet100")  # the ResNet-18 recipe is untouched
    assert resnet.config.pretrain.optimizer.name == "lars"
