"""Every registered backbone works on small images: forward, backward, feature dimension.

Parametrised over the registry, so a new backbone is tested without editing this file. The
original project's AlexNet and EfficientNet crashed on 32 px inputs; here every backbone runs
at 32 px, and one per family at 16 and 8 px, with its small-image variant chosen automatically.
"""

import pytest
import torch
from torch import nn

from sslbench.core.plugins import load_plugins
from sslbench.testing import registered

# timm needs a model name (and the optional extra): its tests are below
ALL = [n for n in load_plugins(autoload=False).catalog.names("backbones") if n != "timm"]
ONE_PER_FAMILY = [n for n in registered("backbones", distribution="builtin", autoload=False,
                                        first_per_plugin=True) if n != "timm"]
CNN_FAMILIES = [n for n in ONE_PER_FAMILY if not n.startswith("vit")]  # a stem to swap

# Widths of the last block, as in the papers (B1 shares B0's 1280; VGG's is 512 at every depth).
FEATURE_DIMS = {
    "resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet152": 2048, "alexnet": 256,
    "vgg11": 512, "vgg19_bn": 512, "densenet121": 1024, "densenet161": 2208,
    "densenet169": 1664, "densenet201": 1920, "efficientnet_b0": 1280, "efficientnet_b1": 1280,
    "efficientnet_b2": 1408, "efficientnet_b3": 1536, "efficientnet_b4": 1792,
    "efficientnet_b5": 2048, "efficientnet_b6": 2304, "efficientnet_b7": 2560,
}



def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def spatial_conv_outputs(model: nn.Module, x: torch.Tensor) -> list[tuple[int, int]]:
    """Output map sizes of the convolutions with a kernel larger than 1x1, in call order."""
    sizes = []
    hooks = [m.register_forward_hook(lambda mod, args, out: sizes.append(tuple(out.shape[-2:])))
             for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return sizes


def forward_backward(name: str, plugins, size: int) -> None:
    torch.manual_seed(0)
    model = plugins.catalog.get("backbones", name)(size)
    dim = model.feature_dim
    assert isinstance(dim, int) and dim > 0
    assert dim == FEATURE_DIMS.get(name, dim)
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, dim)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grad = first_conv(model).weight.grad
    assert grad is not None and grad.abs().sum() > 0, "no gradient reaches the first conv"


# the deepest variants take seconds each on a CPU: the full suite builds them, the fast tier not
LARGE = {"resnet101", "resnet152", "densenet161", "densenet169", "densenet201",
         *(f"efficientnet_b{i}" for i in range(4, 8))}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n
                                  for n in ALL])
def test_forward_backward_at_32px(name, plugins):
    forward_backward(name, plugins, 32)


@pytest.mark.parametrize("size", [8, 16])
@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_forward_backward_below_32px(name, size, plugins):
    forward_backward(name, plugins, size)


@pytest.mark.parametrize("name", CNN_FAMILIES)
def test_small_variant_keeps_a_4x4_map_at_32px(name, plugins):
    """No collapse before the last block: every spatial conv still sees >= 4x4 at 32 px."""
    model = plugins.catalog.get("backbones", name)(32).eval()
    sizes = spatial_conv_outputs(model, torch.randn(1, 3, 32, 32))
    assert min(min(s) for s in sizes) >= 4, sizes
    # AlexNet's last conv runs at 8x8; its last max-pool then gives the 4x4 map
    assert sizes[-1] == ((8, 8) if name == "alexnet" else (4, 4)), sizes


@pytest.mark.parametrize("name", CNN_FAMILIES)
def test_small_variant_is_chosen_up_to_64px(name, plugins):
    factory = plugins.catalog.get("backbones", name)
    small, large = repr(factory(64)), repr(factory(65))
    assert small == repr(factory(64, small_stem=True))
    assert large == repr(factory(65, small_stem=False))
    assert small != large


def test_display_names(plugins):
    display = {n: plugins.catalog.entry("backbones", n).metadata.get("display") for n in ALL}
    assert display["vgg16"] == "VGG-16"
    assert display["alexnet"] == "AlexNet"
    assert display["densenet121"] == "DenseNet-121"
    assert display["efficientnet_b0"] == "EfficientNet-B0"
    assert all(display.values()), [n for n, d in display.items() if not d]


@pytest.mark.parametrize(("name", "width", "dim"), [("resnet18", 0.5, 256), ("resnet18", 0.25, 128),
                                                   ("resnet50", 0.5, 1024), ("resnet18", 2, 1024)])
def test_resnet_width_scales_every_stage(name, width, dim, plugins):
    """``width`` multiplies the stem's and every stage's channels; the feature follows."""
    factory = plugins.catalog.get("backbones", name)
    model, full = factory(16, width=width), factory(16)
    assert model.feature_dim == dim
    assert first_conv(model).out_channels == round(64 * width)
    assert first_conv(model).kernel_size == (3, 3)  # the small-image stem still applies
    stage_widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    full_widths = [m.out_channels for m in full.modules() if isinstance(m, nn.Conv2d)]
    assert stage_widths == [round(c * width) for c in full_widths]
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, dim)
    out.square().mean().backward()
    assert first_conv(model).weight.grad.abs().sum() > 0


def test_resnet_width_one_is_torchvisions_model(plugins):
    factory = plugins.catalog.get("backbones", "resnet18")
    assert repr(factory(32, width=1.0)) == repr(factory(32))


def test_resnet_width_keeps_torchvisions_initialisation(plugins):
    """The rebuilt stem of a scaled ResNet is initialised as torchvision does (He, fan-out), so a
    narrow network's random-init floor is not an artefact of PyTorch's default conv init."""
    torch.manual_seed(0)
    model = plugins.catalog.get("backbones", "resnet18")(64, small_stem=False, width=0.5)
    weight = model.conv1.weight
    fan_out = weight.shape[0] * weight.shape[2] * weight.shape[3]
    assert abs(weight.std().item() - (2 / fan_out) ** 0.5) < 0.1 * (2 / fan_out) ** 0.5


# ---------------------------------------------------------------- ViTs

@pytest.mark.parametrize(("size", "patch", "tokens"), [(32, 4, 64), (64, 4, 256), (224, 16, 196),
                                                       (8, 4, 4)])
def test_vit_patch_follows_the_image_size(size, patch, tokens, plugins):
    with torch.device("meta"):
        vit = plugins.catalog.get("backbones", "vit_small")(size)
    assert (vit.patch_size, vit.num_patches, vit.feature_dim) == (patch, tokens, 384)
    assert plugins.catalog.get("backbones", "vit_tiny")(16).feature_dim == 192


def test_vit_refuses_a_patch_that_does_not_divide_the_image(plugins):
    from sslbench.errors import UsageError

    with pytest.raises(UsageError, match="patch_size 4 does not divide the image size 30"):
        plugins.catalog.get("backbones", "vit_tiny")(30)


def test_vit_encodes_a_subset_of_patches(plugins):
    """encode_visible on every patch is the full forward; on a subset, [CLS] + K tokens."""
    torch.manual_seed(0)
    vit = plugins.catalog.get("backbones", "vit_tiny")(16, depth=2).eval()
    x = torch.randn(2, 3, 16, 16)
    every = torch.arange(16).expand(2, -1)
    with torch.no_grad():
        assert torch.allclose(vit.encode_visible(x, every)[:, 0], vit(x), atol=1e-5)
        assert vit.encode_visible(x, every[:, :4]).shape == (2, 5, 192)


def test_vit_takes_multi_crop_views_of_another_size(plugins):
    # DINO's small crops: the position embeddings are resampled to the smaller grid
    vit = plugins.catalog.get("backbones", "vit_tiny")(16, depth=1)
    assert vit(torch.randn(3, 3, 8, 8)).shape == (3, 192)


# ---------------------------------------------------------------- timm

def test_timm_model_by_name(plugins):
    pytest.importorskip("timm")
    net = plugins.catalog.get("backbones", "timm")(32, model="resnet10t")
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, net.feature_dim) == (2, 512)
    vit = plugins.catalog.get("backbones", "timm")(32, model="vit_tiny_patch16_224")
    assert vit(torch.randn(1, 3, 32, 32)).shape == (1, 192)  # built for the image size


def test_timm_unknown_model_suggests_timms_names(plugins):
    pytest.importorskip("timm")
    from sslbench.errors import UsageError

    with pytest.raises(UsageError) as err:
        plugins.catalog.get("backbones", "timm")(32, model="resnet1t")
    message = str(err.value)
    assert message.startswith("unknown timm model 'resnet1t'; did you mean ")
    assert "'resnet10t'" in message and "\n" not in message


def test_timm_missing_names_the_extra(plugins, monkeypatch):
    import sys

    from sslbench.errors import UsageError

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(UsageError) as err:
        plugins.catalog.get("backbones", "timm")(32, model="resnet18")
    assert str(err.value) == ("backbone 'timm' needs the timm package: "
                              "pip install 'sslbench[timm]'")
