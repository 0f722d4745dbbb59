"""Batched augmentation on the training device, with per-sample random parameters.

Every operation works on the whole batch at once: random resized crop and flip are one batched
affine resampling, colour jitter and grayscale are per-sample blends, blur is one grouped
convolution with a per-sample Gaussian kernel, solarize a masked flip. No Python loop runs over
images, no PIL, no worker process. All randomness comes from one ``torch.Generator`` on the
device, whose state is checkpointed with the run.

The order within a view follows SimCLR/BYOL: crop+flip, colour jitter (brightness, contrast,
saturation, hue in that fixed order), grayscale, blur, solarize, normalise.
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


def resized_crop_flip(x, size: int, spec: ViewSpec, gen) -> torch.Tensor:
    """Random resized crop (area fraction in ``spec.scale``, aspect in ``spec.ratio``) + flip."""
    b, device = x.shape[0], x.device
    area = uniform(b, *spec.scale, gen, device)
    log_r = uniform(b, math.log(spec.ratio[0]), math.log(spec.ratio[1]), gen, device)
    w = (area * log_r.exp()).sqrt().clamp(max=1.0)  # crop width as a fraction of the image
    h = (area / log_r.exp()).sqrt().clamp(max=1.0)
    cx = (uniform(b, -1, 1, gen, device)) * (1 - w)  # centre in [-1 + w, 1 - w]
    cy = (uniform(b, -1, 1, gen, device)) * (1 - h)
    sign = torch.where(coin(b, spec.flip, gen, device), -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def grey(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def blend(x, other, factor) -> torch.Tensor:
    """``other + factor * (x - other)`` per sample, clamped to [0, 1]."""
    return (other + factor.view(-1, 1, 1, 1) * (x - other)).clamp_(0, 1)


def rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma plane in YIQ space by ``turns`` (fraction of a full turn) per sample."""
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                           [0.211, -0.523, 0.312]])
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    angle = turns * 2 * math.pi
    cos, sin = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq).clamp_(0, 1)


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


def normalise(x, mean, std) -> torch.Tensor:
    """Per-channel standardisation; a grey dataset's single mean/std broadcasts to RGB."""
    return (x - x.new_tensor(mean).view(1, -1, 1, 1)) / x.new_tensor(std).view(1, -1, 1, 1)


def augment_view(images: torch.Tensor, spec: ViewSpec, size: int, mean, std, gen):
    """One augmented view of a uint8 batch: float ``[B, 3, size, size]``, normalised."""
    x = resized_crop_flip(images.float().div_(255), size, spec, gen)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if spec.jitter_p > 0:
        x = colour_jitter(x, spec, gen)
    if spec.grayscale_p > 0:
        x = random_grayscale(x, spec.grayscale_p, gen)
    if spec.blur_p > 0:
        x = gaussian_blur(x, spec.blur_p, spec.blur_sigma, gen)
    if spec.solarize_p > 0:
        x = solarize(x, spec.solarize_p, gen)
    return normalise(x, mean, std)


class BatchAugment:
    """All views a method asks for, as a list in the order of its ``views`` declaration."""

    def __init__(self, views: list[ViewSpec], image_size: int, mean, std,
                 generator: torch.Generator, channels_last: bool = True) -> None:
        self.views, self.image_size = views, image_size
        self.mean, self.std = mean, std
        self.generator = generator
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for spec in self.views:
            size = max(4, round(spec.size * self.image_size))
            for _ in range(spec.count):
                view = augment_view(images, spec, size, self.mean, self.std, self.generator)
                out.append(view.contiguous(memory_format=self.memory_format))
        return out

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
