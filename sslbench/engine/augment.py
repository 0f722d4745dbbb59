"""Batched augmentation on the training device, with per-sample random parameters.

Every operation works on the whole batch at once: random resized crop and flip are one batched
affine resampling, colour jitter and grayscale are per-sample blends, blur is one grouped
convolution with a per-sample Gaussian kernel, solarize a masked flip. No Python loop runs over
images, no PIL, no worker process. All randomness comes from one ``torch.Generator`` on the
device, whose state is checkpointed with the run.

Antialiasing. The crop is resampled bilinearly by ``grid_sample``, without the low-pass filter
the evaluation resize (``prepare_eval``) applies: a crop only aliases where it is *shrunk*, and
the CPU recipes barely shrink (global crops are enlarged to the image size; the multi-crop
small views of SwAV and DINO shrink at most 1.26x: a crop side of sqrt(0.3 x 4/3) = 0.63 of
16 px onto 8 px). Measured on 512 Fashion-MNIST images at 16 px against the same boxes sampled
8x finer and area-averaged (an ideal box filter), the mean absolute difference in [0, 1] units
is 0.0066 for the global crops (enlarged: the gap between two interpolations, no aliasing) and
0.0068 for the small crops: aliasing adds nothing measurable there. Shrinking a whole image 2x
gives 0.017, so recipes that shrink crops more (DINO's 96 px local crops from 224 px images,
up to ~1.5x) alias a little; ``tests/test_augment.py`` holds the CPU recipes to <= 1.3x.

The order within a view follows SimCLR/BYOL: crop+flip, colour jitter (brightness, contrast,
saturation, hue in that fixed order), grayscale, blur, solarize, normalise.

Speed (measured by ``benchmarks/``): the uint8 batch is converted to float once for all views;
crop grids are outer sums, not a matmul per pixel; the hue rotation is one per-sample 3x3 matrix
(composed from constants inverted once) applied in a single pass; normalisation writes the
channels_last output directly. The arithmetic stays float32 (it is a small share of a step, and
autocast casts the views once at the first convolution).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sslbench.core.config import ViewSpec

LUMA = (0.299, 0.587, 0.114)


def uniform(n: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (high - low) + low


def coin(n: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) < p


def to_unit_rgb(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` -> float ``[B, 3, H, W]`` in [0, 1] (grey repeated to RGB)."""
    x = images.float().div_(255)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def crop_grid(w, h, cx, cy, size: int) -> torch.Tensor:
    """Sampling grid ``[B, size, size, 2]`` of per-sample axis-aligned crops.

    Equal to ``F.affine_grid`` of ``[[w, 0, cx], [0, h, cy]]`` (``align_corners=False``), built
    as an outer sum of two ``[B, size]`` rows instead of a batched matmul over every pixel.
    """
    base = (torch.arange(size, device=w.device, dtype=w.dtype) * 2 + 1) / size - 1
    gx = (w.view(-1, 1) * base + cx.view(-1, 1)).view(-1, 1, size).expand(-1, size, -1)
    gy = (h.view(-1, 1) * base + cy.view(-1, 1)).view(-1, size, 1).expand(-1, -1, size)
    return torch.stack([gx, gy], dim=-1)


def resized_crop_flip(x, size: int, spec: ViewSpec, gen) -> torch.Tensor:
    """Random resized crop (area fraction in ``spec.scale``, aspect in ``spec.ratio``) + flip."""
    b, device = x.shape[0], x.device
    area = uniform(b, *spec.scale, gen, device)
    log_r = uniform(b, math.log(spec.ratio[0]), math.log(spec.ratio[1]), gen, device)
    w = (area * log_r.exp()).sqrt().clamp(max=1.0)  # crop width as a fraction of the image
    h = (area / log_r.exp()).sqrt().clamp(max=1.0)
    cx = (uniform(b, -1, 1, gen, device)) * (1 - w)  # centre in [-1 + w, 1 - w]
    cy = (uniform(b, -1, 1, gen, device)) * (1 - h)
    sign = torch.where(coin(b, spec.flip, gen, device), -1.0, 1.0)  # a flip mirrors x
    grid = crop_grid(w * sign, h, cx, cy, size)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``[B, 1, H, W]`` as one small matmul (one pass, no temporaries)."""
    b, c, h, w = x.shape
    luma = x.new_tensor(LUMA).view(1, 1, 3)
    return torch.matmul(luma, x.reshape(b, c, h * w)).view(b, 1, h, w)


def blend(x, other, factor) -> torch.Tensor:
    """``other + factor * (x - other)`` per sample, clamped to [0, 1] (one fused lerp)."""
    return torch.lerp(other.expand_as(x), x, factor.view(-1, 1, 1, 1)).clamp_(0, 1)


# RGB -> YIQ and back, in float64 once at import: inverting per call cost a LAPACK call per view
_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]], dtype=torch.float64)
_FROM_YIQ = torch.linalg.inv(_TO_YIQ)


def hue_matrix(turns: torch.Tensor) -> torch.Tensor:
    """Per-sample RGB -> RGB matrices ``[B, 3, 3]``: rotate the YIQ chroma plane by ``turns``."""
    angle = turns * (2 * math.pi)
    cos, sin = angle.cos(), angle.sin()
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rot = torch.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], dim=1).view(-1, 3, 3)
    to_yiq = _TO_YIQ.to(device=turns.device, dtype=turns.dtype)
    from_yiq = _FROM_YIQ.to(device=turns.device, dtype=turns.dtype)
    return from_yiq @ rot @ to_yiq  # tiny [B, 3, 3]: one pass over the pixels below


def rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma plane in YIQ space by ``turns`` (fraction of a full turn) per sample."""
    b, c, h, w = x.shape
    out = torch.bmm(hue_matrix(turns.to(x.dtype)), x.reshape(b, c, h * w))
    return out.view(b, c, h, w).clamp_(0, 1)


def colour_jitter(x, spec: ViewSpec, gen) -> torch.Tensor:
    """Brightness, contrast, saturation, hue with random strengths; skipped with 1 - jitter_p."""
    b, device = x.shape[0], x.device
    apply = coin(b, spec.jitter_p, gen, device).float()
    bri, con, sat, hue = spec.jitter

    def strength(amount):  # factor in [1 - amount, 1 + amount], 1 where not applied
        return 1 + apply * uniform(b, -amount, amount, gen, device)

    x = (x * strength(bri).view(-1, 1, 1, 1)).clamp_(0, 1)
    x = blend(x, grey(x).mean(dim=(2, 3), keepdim=True), strength(con))
    x = blend(x, grey(x), strength(sat))
    if hue > 0:
        x = rotate_hue(x, apply * uniform(b, -hue, hue, gen, device))
    return x


def random_grayscale(x, p: float, gen) -> torch.Tensor:
    mask = coin(x.shape[0], p, gen, x.device).view(-1, 1, 1, 1)
    return torch.where(mask, grey(x).expand_as(x), x)


def gaussian_blur(x, p: float, sigma_range, gen) -> torch.Tensor:
    """Separable Gaussian blur, kernel ~10% of the image side, per-sample sigma, with prob p."""
    b, c, h, w = x.shape
    k = max(3, int(0.1 * h) // 2 * 2 + 1)
    sigma = uniform(b, *sigma_range, gen, x.device)
    sigma = torch.where(coin(b, p, gen, x.device), sigma, torch.full_like(sigma, 1e-3))
    t = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kernel = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # [b*c, k]
    y = F.pad(x.reshape(1, b * c, h, w), (k // 2, k // 2, k // 2, k // 2), mode="reflect")
    y = F.conv2d(y, kernel.view(b * c, 1, k, 1), groups=b * c)
    y = F.conv2d(y, kernel.view(b * c, 1, 1, k), groups=b * c)
    return y.view(b, c, h, w)


def solarize(x, p: float, gen) -> torch.Tensor:
    mask = coin(x.shape[0], p, gen, x.device).view(-1, 1, 1, 1)
    return torch.where(mask & (x >= 0.5), 1 - x, x)


def normalise(x, mean, std, memory_format=torch.contiguous_format) -> torch.Tensor:
    """Per-channel standardisation; a grey dataset's single mean/std broadcasts to RGB.

    Written straight into a tensor of ``memory_format`` (one pass instead of a second copy to
    channels_last).
    """
    scale = 1 / x.new_tensor(std).view(1, -1, 1, 1)
    shift = -x.new_tensor(mean).view(1, -1, 1, 1) * scale
    out = torch.empty_like(x, memory_format=memory_format)
    return torch.addcmul(shift.expand_as(x), x, scale.expand_as(x), out=out)


def augment_view(images: torch.Tensor, spec: ViewSpec, size: int, mean, std, gen,
                 memory_format=torch.contiguous_format, crop: bool = True):
    """One augmented view of a batch: float ``[B, 3, size, size]``, normalised.

    ``images`` is uint8, or float in [0, 1] already (the caller converts once for all views).
    ``crop=False``: the images are this view's crops already (streamed data is cropped and
    flipped at decode time), only the colour operations remain.
    """
    x = images if images.is_floating_point() else images.float().div_(255)
    if crop:
        x = resized_crop_flip(x, size, spec, gen)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if spec.jitter_p > 0:
        x = colour_jitter(x, spec, gen)
    if spec.grayscale_p > 0:
        x = random_grayscale(x, spec.grayscale_p, gen)
    if spec.blur_p > 0:
        x = gaussian_blur(x, spec.blur_p, spec.blur_sigma, gen)
    if spec.solarize_p > 0:
        x = solarize(x, spec.solarize_p, gen)
    return normalise(x, mean, std, memory_format)


class BatchAugment:
    """All views a method asks for, as a list in the order of its ``views`` declaration."""

    def __init__(self, views: list[ViewSpec], image_size: int, mean, std,
                 generator: torch.Generator, channels_last: bool = True) -> None:
        self.views, self.image_size = views, image_size
        self.mean, self.std = mean, std
        self.generator = generator
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Each group of views (one ``ViewSpec``: its count, size and scale) is augmented as
        one batch of ``count x B`` images, every image with its own parameters, then split."""
        unit = images.float().div_(255)  # once per batch, shared by all views
        out = []
        for spec in self.views:
            size = max(4, round(spec.size * self.image_size))
            group = unit if spec.count == 1 else unit.repeat(spec.count, 1, 1, 1)
            views = augment_view(group, spec, size, self.mean, self.std, self.generator,
                                 self.memory_format)
            out += views.chunk(spec.count) if spec.count > 1 else [views]
        return out

    def cropped(self, crops: list[torch.Tensor]) -> list[torch.Tensor]:
        """The views of a streamed batch: ``crops`` are uint8, one batch per view in ``views``
        order, cropped and flipped already; the colour operations run here."""
        specs = [spec for spec in self.views for _ in range(spec.count)]
        return [augment_view(c, spec, c.shape[-1], self.mean, self.std, self.generator,
                             self.memory_format, crop=False)
                for c, spec in zip(crops, specs, strict=True)]

    @property
    def num_views(self) -> int:
        return sum(spec.count for spec in self.views)


def prepare_eval(images: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """Test-time transform: resize (antialiased) to ``size``, RGB, normalise."""
    x = to_unit_rgb(images)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)
    return normalise(x, mean, std)
