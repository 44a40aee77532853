"""Joint image / mask transforms for segmentation (no torchvision needed).

The training transform follows the released SLRNet recipe (METHOD.md section 3): a random resized
crop (area fraction in ``scale``, aspect-ratio jitter, output ``crop_size`` square; image bilinear,
mask nearest), a horizontal flip, colour jitter (brightness, contrast, saturation, hue =
0.3, 0.3, 0.3, 0.1) and ImageNet normalisation. The validation transform keeps the full image.

Every transform is a callable ``(image, mask) -> (image, mask)`` taking a PIL RGB image (or a uint8
(H, W, 3) array) and a uint8 (H, W) mask (255 = void), and returning a float32 tensor (3, H, W) and
an int64 tensor (H, W).

    >>> import torch
    >>> from slrnet.data.transforms import TrainTransform, ValTransform
    >>> t = TrainTransform(crop_size=96, scale=(0.9, 1.0), generator=torch.Generator().manual_seed(0))
    >>> image, mask = t(pil_image, mask_array)          # (3, 96, 96) float32, (96, 96) int64

Randomness comes from ``generator`` when given, else from torch's global RNG. PyTorch seeds the
global RNG of every DataLoader worker differently, so leave ``generator=None`` for training with
workers (a generator object would be copied, identically, into each worker).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from PIL import Image, ImageEnhance

MEAN = (0.485, 0.456, 0.406)   # ImageNet statistics, RGB in [0, 1]
STD = (0.229, 0.224, 0.225)


def as_pil_rgb(image) -> Image.Image:
    """Accept a PIL image or a uint8 (H, W, 3) array; return an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"image: expected a PIL image or a uint8 (H, W, 3) array, got "
                         f"{array.dtype} {array.shape}")
    return Image.fromarray(array, "RGB")


def as_mask_array(mask, size: tuple[int, int]) -> np.ndarray:
    """Accept a uint8 (H, W) array (or PIL 'L'/'P' image) matching ``size`` = (W, H)."""
    array = np.asarray(mask)
    if array.ndim != 2 or array.shape != (size[1], size[0]):
        raise ValueError(f"mask: expected shape (H, W) = {(size[1], size[0])} to match the image, got {array.shape}")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError("mask: values must lie in [0, 255] (255 = void)")
        array = array.astype(np.uint8)
    return array


@functools.lru_cache(maxsize=8)
def _normalize_table(mean: tuple, std: tuple) -> torch.Tensor:
    """(3, 256) float32: ``(v / 255 - mean_c) / std_c`` for every byte value v, computed in float64, rounded once."""
    v = torch.arange(256, dtype=torch.float64) / 255.0                                      # (256,)
    m = torch.tensor(mean, dtype=torch.float64).view(3, 1)
    s = torch.tensor(std, dtype=torch.float64).view(3, 1)
    return ((v - m) / s).float()                                                              # (3, 256)


def normalize_to_tensor(image: Image.Image, mean=MEAN, std=STD) -> torch.Tensor:
    """PIL RGB -> float32 (3, H, W), ``(x / 255 - mean) / std`` computed in float64 and rounded once, as the
    authors' ``TorchvisionNormalize`` does (so the same image gives the same input bits). A uint8 channel has
    256 values, so the result is a lookup in a (3, 256) table of those roundings: the same bits, without a
    float64 pass over every pixel."""
    table = _normalize_table(tuple(float(m) for m in mean), tuple(float(s) for s in std))   # (3, 256)
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).long()      # (3, H, W)
    return torch.gather(table, 1, pixels.reshape(3, -1)).view(pixels.shape)


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * torch.rand((), generator=generator).item()


def sample_crop_box(height: int, width: int, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3),
                    generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """Draw a crop (top, left, h, w) covering ``scale`` of the image area with aspect w/h in ``ratio``.

    The area fraction is uniform in ``scale``; the log aspect ratio is uniform over the part of
    ``ratio`` for which the crop fits inside the image (so no rejection loop and no out-of-range
    fallback). Only when an extreme image shape leaves no feasible ratio is the ratio clamped and
    the area shrunk to fit.
    """
    lo, hi = float(scale[0]), float(scale[1])
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"scale: expected 0 < low <= high <= 1, got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio: expected 0 < low <= high, got {ratio}")
    area = _uniform(lo, hi, generator) * height * width
    # w = sqrt(area * r) <= width and h = sqrt(area / r) <= height  <=>  area / height^2 <= r <= width^2 / area
    r_lo = max(ratio[0], area / height**2)
    r_hi = min(ratio[1], width**2 / area)
    if r_lo <= r_hi:
        r = math.exp(_uniform(math.log(r_lo), math.log(r_hi), generator))
    else:  # the ratio range excludes every fitting crop: clamp the ratio, shrink the area
        r = ratio[0] if ratio[0] > width**2 / area else ratio[1]
        _uniform(0, 1, generator)  # keep the number of draws fixed
    w = min(width, max(1, round(math.sqrt(area * r))))
    h = min(height, max(1, round(math.sqrt(area / r))))
    top = int(torch.randint(0, height - h + 1, (), generator=generator))
    left = int(torch.randint(0, width - w + 1, (), generator=generator))
    return top, left, h, w


def _adjust_hue(image: Image.Image, shift: float) -> Image.Image:
    """Rotate the hue by ``shift`` turns (in [-0.5, 0.5]), as torchvision's PIL path does."""
    h, s, v = image.convert("HSV").split()
    h_shifted = (np.asarray(h, dtype=np.int16) + int(round(shift * 255))) % 256
    hsv = Image.merge("HSV", (Image.fromarray(h_shifted.astype(np.uint8), "L"), s, v))
    return hsv.convert("RGB")


def color_jitter(image: Image.Image, brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1,
                 generator: torch.Generator | None = None) -> Image.Image:
    """Random brightness, contrast, saturation and hue changes, applied in a random order."""
    factors = [_uniform(max(0.0, 1 - b), 1 + b, generator) for b in (brightness, contrast, saturation)]
    hue_shift = _uniform(-hue, hue, generator)
    for op in torch.randperm(4, generator=generator).tolist():
        if op == 0 and brightness > 0:
            image = ImageEnhance.Brightness(image).enhance(factors[0])
        elif op == 1 and contrast > 0:
            image = ImageEnhance.Contrast(image).enhance(factors[1])   # blends with the mean grey
        elif op == 2 and saturation > 0:
            image = ImageEnhance.Color(image).enhance(factors[2])      # blends with the greyscale image
        elif op == 3 and hue > 0:
            image = _adjust_hue(image, hue_shift)
    return image


class TrainTransform:
    """Random resized crop -> horizontal flip -> colour jitter -> normalise (METHOD.md section 3).

    Args:
        crop_size: side of the square output crop.
        scale: [low, high] fraction of the image area the crop covers (the recipe uses [0.9, 1.0]).
        ratio: aspect-ratio (w / h) range of the crop before it is resized to a square.
        flip_prob: probability of a horizontal flip.
        jitter: (brightness, contrast, saturation, hue); all zeros disables colour jitter.
        generator: a ``torch.Generator`` for reproducible draws; None uses the global RNG.
    """

    def __init__(self, crop_size: int, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3), flip_prob: float = 0.5,
                 jitter=(0.3, 0.3, 0.3, 0.1), mean=MEAN, std=STD, generator: torch.Generator | None = None):
        if int(crop_size) < 1:
            raise ValueError(f"crop_size: expected a positive integer, got {crop_size}")
        if len(scale) != 2:
            raise ValueError(f"scale: expected [low, high], got {scale}")
        self.crop_size = int(crop_size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.flip_prob = float(flip_prob)
        self.jitter = tuple(float(j) for j in jitter)
        self.mean, self.std = tuple(mean), tuple(std)
        self.generator = generator
        sample_crop_box(8, 8, self.scale, self.ratio, torch.Generator().manual_seed(0))  # validate args now

    def __call__(self, image, mask) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        image = as_pil_rgb(image)
        mask = as_mask_array(mask, image.size)
        top, left, h, w = sample_crop_box(image.height, image.width, self.scale, self.ratio, g)
        box = (left, top, left + w, top + h)
        size = (self.crop_size, self.crop_size)
        image = image.resize(size, Image.BILINEAR, box=box)
        mask_img = Image.fromarray(mask, "L").resize(size, Image.NEAREST, box=box)  # labels never blend
        if torch.rand((), generator=g).item() < self.flip_prob:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
            mask_img = mask_img.transpose(Image.FLIP_LEFT_RIGHT)
        if any(self.jitter):
            image = color_jitter(image, *self.jitter, generator=g)
        x = normalize_to_tensor(image, self.mean, self.std)                      # (3, S, S)
        y = torch.from_numpy(np.asarray(mask_img, dtype=np.int64).copy())        # (S, S)
        return x, y

    def __repr__(self) -> str:
        return (f"TrainTransform(crop_size={self.crop_size}, scale={self.scale}, ratio={self.ratio}, "
                f"flip_prob={self.flip_prob}, jitter={self.jitter})")


class ValTransform:
    """Full image, normalised; the mask passes through unchanged (as int64)."""

    def __init__(self, mean=MEAN, std=STD):
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, image, mask) -> tuple[torch.Tensor, torch.Tensor]:
        image = as_pil_rgb(image)
        mask = as_mask_array(mask, image.size)
        x = normalize_to_tensor(image, self.mean, self.std)                      # (3, H, W)
        y = torch.from_numpy(mask.astype(np.int64))                              # (H, W)
        return x, y

    def __repr__(self) -> str:
        return "ValTransform()"


def denormalize(image, mean=MEAN, std=STD) -> np.ndarray:
    """Normalised float (3, H, W) tensor/array -> uint8 (H, W, 3) for figures."""
    x = image.detach().float().cpu() if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image), dtype=torch.float32)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"denormalize: expected a (3, H, W) image, got shape {tuple(x.shape)}")
    x = x * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
