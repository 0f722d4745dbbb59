"""Batched augmentation: shapes, per-sample randomness, determinism, and the ops themselves."""

import math

import torch

from sslbench.core.config import ViewSpec
from sslbench.engine import augment as aug


def batch(n=6, c=3, size=16):
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


def test_views_have_declared_count_and_sizes():
    views = [ViewSpec(count=2), ViewSpec(count=3, size=0.5, scale=(0.05, 0.3))]
    a = aug.BatchAugment(views, 32, (0.5,), (0.25,), torch.Generator().manual_seed(0))
    out = a(batch(c=1, size=28))
    assert [tuple(v.shape) for v in out] == [(6, 3, 32, 32)] * 2 + [(6, 3, 16, 16)] * 3
    assert a.num_views == 5


def test_same_generator_state_gives_same_views_and_samples_differ():
    spec = [ViewSpec(count=1, blur_p=0.5, solarize_p=0.5)]
    x = batch()
    v1 = aug.BatchAugment(spec, 16, (0.5,) * 3, (0.25,) * 3, torch.Generator().manual_seed(3))(x)
    v2 = aug.BatchAugment(spec, 16, (0.5,) * 3, (0.25,) * 3, torch.Generator().manual_seed(3))(x)
    assert torch.equal(v1[0], v2[0])
    # one image repeated: per-sample parameters must still make the copies differ
    same = x[:1].repeat(8, 1, 1, 1)
    out = aug.BatchAugment(spec, 16, (0.5,) * 3, (0.25,) * 3,
                           torch.Generator().manual_seed(0))(same)[0]
    assert not torch.allclose(out[0], out[1])


def test_full_crop_without_flip_is_identity():
    x = batch().float() / 255
    spec = ViewSpec(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0)
    out = aug.resized_crop_flip(x, 16, spec, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-5)


def test_flip_mirrors_the_image():
    x = batch().float() / 255
    spec = ViewSpec(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1.0)
    out = aug.resized_crop_flip(x, 16, spec, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x.flip(-1), atol=1e-5)


def test_solarize_and_grayscale_with_probability_one():
    x = torch.tensor([0.2, 0.7]).view(1, 1, 1, 2).expand(1, 3, 1, 2).clone()
    out = aug.solarize(x, 1.0, torch.Generator())
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.2, 0.3]))
    rgb = torch.rand(2, 3, 4, 4)
    g = aug.random_grayscale(rgb, 1.0, torch.Generator())
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])


def test_blur_keeps_constant_images_and_smooths_noise():
    flat = torch.full((2, 3, 16, 16), 0.3)
    assert torch.allclose(aug.gaussian_blur(flat, 1.0, (1.0, 2.0), torch.Generator()), flat,
                          atol=1e-6)
    noise = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    blurred = aug.gaussian_blur(noise, 1.0, (1.5, 2.0), torch.Generator().manual_seed(0))
    assert blurred.std() < noise.std() * 0.8


def test_hue_rotation_by_full_turn_is_identity():
    x = torch.rand(3, 3, 4, 4)
    assert torch.allclose(aug.rotate_hue(x, torch.ones(3)), x, atol=1e-4)


def test_crop_grid_matches_affine_grid():
    g = torch.Generator().manual_seed(1)
    w, h = torch.rand(5, generator=g) * 2 - 1, torch.rand(5, generator=g) + 0.1
    cx, cy = torch.rand(5, generator=g) - 0.5, torch.rand(5, generator=g) - 0.5
    theta = torch.zeros(5, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    expected = torch.nn.functional.affine_grid(theta, [5, 3, 7, 7], align_corners=False)
    assert torch.allclose(aug.crop_grid(w, h, cx, cy, 7), expected, atol=1e-6)


def test_hue_rotation_matches_the_yiq_formula_pixel_by_pixel():
    x = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    turns = torch.tensor([0.1, -0.25])
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                           [0.211, -0.523, 0.312]], dtype=torch.float64)
    out = aug.rotate_hue(x, turns)
    for b in range(2):
        cos, sin = math.cos(2 * math.pi * turns[b]), math.sin(2 * math.pi * turns[b])
        for i in range(2):
            for j in range(2):
                y, ci, cq = (to_yiq @ x[b, :, i, j].double()).tolist()
                yiq = torch.tensor([y, cos * ci - sin * cq, sin * ci + cos * cq],
                                   dtype=torch.float64)
                rgb = torch.linalg.solve(to_yiq, yiq).clamp(0, 1).float()
                assert torch.allclose(out[b, :, i, j], rgb, atol=1e-5)


def test_grey_pixels_keep_their_value_under_hue_rotation():
    x = torch.full((1, 3, 2, 2), 0.4)
    assert torch.allclose(aug.rotate_hue(x, torch.tensor([0.37])), x, atol=1e-5)


def test_normalise_writes_the_requested_memory_format():
    x = torch.rand(2, 3, 4, 4)
    out = aug.normalise(x, (0.5, 0.4, 0.3), (0.2, 0.25, 0.5), torch.channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last)
    expected = (x - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor(
        [0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    assert torch.allclose(out, expected, atol=1e-6)


def test_views_are_channels_last_float_and_grey_input_becomes_rgb():
    a = aug.BatchAugment([ViewSpec(count=2)], 16, (0.5,), (0.25,),
                         torch.Generator().manual_seed(0), channels_last=True)
    for v in a(batch(c=1)):
        assert v.dtype == torch.float32 and v.shape == (6, 3, 16, 16)
        assert v.is_contiguous(memory_format=torch.channels_last)


def largest_shrink(spec: ViewSpec) -> float:
    """How much a view's widest possible crop is shrunk: crop side over output side."""
    side = min(1.0, math.sqrt(spec.scale[1] * spec.ratio[1]))
    return side / spec.size


def test_cpu_recipes_shrink_crops_at_most_1_3x():
    """The measurement in augment.py's docstring (no visible aliasing without an antialias
    filter) holds for crops shrunk at most ~1.26x: every CPU recipe stays there."""
    from sslbench.bench.resolve import resolve_config
    from sslbench.core.plugins import load_plugins

    catalog = load_plugins(autoload=False).catalog
    for method in catalog.names("methods"):
        backbone = "vit_tiny" if method == "mae" else "resnet18"
        for dataset in ("digits", "fashion-mnist"):
            cfg = resolve_config(catalog, method, backbone, dataset)
            worst = max(largest_shrink(v) for v in cfg.pretrain.views)
            assert worst <= 1.3, (method, dataset, worst)


def test_a_group_of_views_is_augmented_as_one_batch_with_independent_draws():
    specs = [ViewSpec(count=3, size=0.5, scale=(0.1, 0.3))]
    gen = torch.Generator().manual_seed(0)
    views = aug.BatchAugment(specs, 16, (0.5,), (0.25,), gen)(batch(n=4))
    assert [tuple(v.shape) for v in views] == [(4, 3, 8, 8)] * 3
    assert views[0].is_contiguous(memory_format=torch.channels_last)
    # each of the three views of an image has its own crop
    assert not torch.allclose(views[0], views[1]) and not torch.allclose(views[1], views[2])
    # the same as augmenting the batch repeated three times in one call
    again = aug.augment_view(batch(n=4).float().div(255).repeat(3, 1, 1, 1), specs[0], 8,
                             (0.5,), (0.25,), torch.Generator().manual_seed(0),
                             torch.channels_last)
    assert torch.allclose(torch.cat(views), again)
