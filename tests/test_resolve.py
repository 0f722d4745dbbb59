"""How recipe layers merge: dataset < backbone's recipe for the dataset < method's < user."""

import pytest
from torch import nn

from sslbench import hookimpl
from sslbench.bench.resolve import resolve_config
from sslbench.core.plugins import load_plugins
from sslbench.errors import UsageError


def resolve(plugins, method, backbone, dataset, **kw):
    return resolve_config(plugins.catalog, method, backbone, dataset, **kw)


def test_resnet_recipe_on_fashion_mnist_narrows_and_lengthens(plugins):
    cfg = resolve(plugins, "simclr", "resnet18", "fashion-mnist")
    assert cfg.backbone.model_extra == {"width": 0.25}
    assert cfg.pretrain.epochs == 40  # the backbone's recipe beats the dataset's 6
    assert cfg.data.image_size == 16 and cfg.data.train_subset == 10000  # the dataset's own


def test_backbone_without_a_recipe_keeps_the_dataset_recipe(plugins):
    cfg = resolve(plugins, "simclr", "vgg11", "fashion-mnist")
    assert not cfg.backbone.model_extra  # VGG has no width option: none is forced on it
    assert cfg.pretrain.epochs == 6


def test_backbone_recipe_is_per_dataset(plugins):
    cfg = resolve(plugins, "simclr", "resnet18", "digits")
    assert cfg.backbone.model_extra == {"width": 0.25} and cfg.pretrain.epochs == 80
    assert cfg.data.image_size == 8 and cfg.eval.linear.optimizer.lr == 0.02  # digits' own
    assert not resolve(plugins, "simclr", "vgg11", "digits").backbone.model_extra
    assert resolve(plugins, "simclr", "vgg11", "digits").pretrain.epochs == 30


def test_method_recipe_beats_backbone_recipe_and_user_beats_both(plugins):
    swav = resolve(plugins, "swav", "resnet18", "fashion-mnist")
    assert swav.pretrain.epochs == 30 and swav.backbone.model_extra == {"width": 0.25}
    mine = resolve(plugins, "swav", "resnet18", "fashion-mnist",
                   sets=["backbone.width=1", "pretrain.epochs=6"], overrides={"pretrain.epochs": 3})
    assert mine.backbone.model_extra == {"width": 1} and mine.pretrain.epochs == 3


def test_a_dataset_backbone_recipe_replaces_the_dataset_recipe_for_that_backbone():
    class Mine:
        @hookimpl
        def sslbench_register_methods(self, register):
            from sslbench.builtin.methods.simclr import SimCLR

            class Scoped(SimCLR):
                recipes = {"fashion-mnist": {"pretrain": {"epochs": 30, "batch_size": 64}},
                           "fashion-mnist/vit_tiny": {"pretrain": {"epochs": 3}}}

            register("scoped", Scoped)

    plugins = load_plugins(autoload=False, extra=[("mine", Mine())])
    vit = resolve(plugins, "scoped", "vit_tiny", "fashion-mnist")
    assert vit.pretrain.epochs == 3  # in place of the dataset recipe, not merged over it:
    assert vit.pretrain.batch_size == 128  # the dataset's own batch, not the method's 64
    assert vit.pretrain.optimizer.name == "adamw"  # the ViT's own recipe still underneath
    assert resolve(plugins, "scoped", "resnet18", "fashion-mnist").pretrain.epochs == 30
    assert resolve(plugins, "scoped", "vit_tiny", "digits").pretrain.epochs == 30  # ViT's
    user = resolve(plugins, "scoped", "vit_tiny", "fashion-mnist", sets=["pretrain.epochs=1"])
    assert user.pretrain.epochs == 1


def test_a_third_party_backbone_recipe_is_applied_and_its_options_checked():
    def tiny(image_size, depth=2):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        model = nn.Sequential(*[nn.Conv2d(3, 3, 3, padding=1) for _ in range(depth)],
                              nn.AdaptiveAvgPool2d(1), nn.Flatten())
        model.feature_dim = 3
        return model

    class Mine:
        @hookimpl
        def sslbench_register_backbones(self, register):
            register("tiny", tiny, recipes={"digits": {"backbone": {"depth": 3},
                                                       "pretrain": {"batch_size": 32}}})

    plugins = load_plugins(autoload=False, extra=[("mine", Mine())])
    cfg = resolve(plugins, "simclr", "tiny", "digits")
    assert cfg.backbone.model_extra == {"depth": 3} and cfg.pretrain.batch_size == 32
    with pytest.raises(UsageError, match="backbone 'tiny': depth must be >= 1, got 0"):
        resolve(plugins, "simclr", "tiny", "digits", sets=["backbone.depth=0"])


@pytest.mark.parametrize(("dataset", "lr"), [("digits", 0.025), ("fashion-mnist", 0.075)])
def test_byol_cpu_recipes_take_a_quarter_of_simclrs_lr(plugins, dataset, lr):
    """The paper-form BYOL loss has 4x the averaged form's gradient: a quarter of the lr."""
    simclr = resolve(plugins, "simclr", "resnet18", dataset).pretrain.optimizer.lr
    assert resolve(plugins, "byol", "resnet18", dataset).pretrain.optimizer.lr == lr
    assert lr == pytest.approx(simclr / 4)


def test_timm_colon_names_the_model_option(plugins):
    pytest.importorskip("timm")
    cfg = resolve(plugins, "simclr", "timm:resnet10t", "digits")
    assert cfg.backbone.name == "timm" and cfg.backbone.model_extra == {"model": "resnet10t"}


def test_vit_recipe_on_digits_uses_patch_2(plugins):
    cfg = resolve(plugins, "dino", "vit_tiny", "digits")
    assert cfg.backbone.model_extra == {"patch_size": 2}
    assert [v.count for v in cfg.pretrain.views] == [1, 1]  # the CPU recipe's two crops
    assert cfg.method.model_extra["use_bn_in_head"] is True
