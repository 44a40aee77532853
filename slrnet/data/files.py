"""The files of a VOC-layout dataset: images, label maps in the VOC palette, and the errors that name them.

    >>> from slrnet.data.files import load_image, load_mask, save_palette_png, voc_colormap
    >>> mask = load_mask("data/shapes/SegmentationClass/train_00000.png")     # uint8 (H, W), 255 = void
    >>> save_palette_png(mask, "/tmp/copy.png")                               # the same indices, VOC colours

The palette is the one every figure uses too (``slrnet.viz.common.colorize``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

VOID = 255
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class DatasetError(ValueError):
    """The dataset on disk is not what the loader expects; the message names the file."""


class DatasetFileNotFoundError(DatasetError, FileNotFoundError):
    """A root, list or listed file does not exist."""


def voc_colormap(n: int = 256) -> np.ndarray:
    """The Pascal VOC palette, uint8 (n, 3): class i's colour spreads i's bits over R, G, B (255 -> 224,224,192)."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for bit in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - bit)
            c >>= 3
        cmap[i] = rgb
    return cmap


PALETTE = voc_colormap().flatten().tolist()


def save_palette_png(mask, path) -> Path:
    """Write a (H, W) label map (values 0..254 and 255 = void) as a VOC palette PNG."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"save_palette_png({path}): expected a (H, W) label map, got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"save_palette_png({path}): label values must lie in [0, 255]")
    image = Image.fromarray(array.astype(np.uint8), "P")
    image.putpalette(PALETTE)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def _open_image(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise DatasetFileNotFoundError(f"{what} not found: {path}")
    try:
        image = Image.open(path)
        image.load()  # decode now, so truncated files fail here and not deep inside a worker
    except (OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"{what} {path} is corrupt or truncated ({e}); expected a readable image file") from None
    return image


def load_image(path) -> Image.Image:
    """Open an image file as RGB; errors name the file."""
    return _open_image(Path(path), "image").convert("RGB")


def load_mask(path) -> np.ndarray:
    """Read a label map as uint8 (H, W): palette/grey PNGs give their indices, RGB masks are decoded
    with the VOC colormap."""
    path = Path(path)
    image = _open_image(path, "mask")
    if image.mode in ("P", "L", "1"):
        return np.array(image if image.mode != "1" else image.convert("L"), dtype=np.uint8)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.array(image)
        if values.size and (values.min() < 0 or values.max() > 255 or not np.all(values == np.round(values))):
            raise DatasetError(f"mask {path}: expected integer labels in [0, 255], found range "
                               f"[{values.min()}, {values.max()}]")
        return values.astype(np.uint8)
    if image.mode in ("RGB", "RGBA"):
        rgb = np.array(image.convert("RGB"), dtype=np.int64)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]           # (H, W)
        cmap = voc_colormap().astype(np.int64)
        lut = {int((r << 16) | (g << 8) | b): i for i, (r, g, b) in enumerate(cmap)}
        uniq, inverse = np.unique(codes, return_inverse=True)
        unknown = [u for u in uniq.tolist() if u not in lut]
        if unknown:
            u = unknown[0]
            raise DatasetError(f"mask {path}: RGB colour {(u >> 16, (u >> 8) & 255, u & 255)} is not in the VOC "
                               f"colormap; expected a palette/grey PNG of class indices or VOC colours")
        return np.array([lut[u] for u in uniq.tolist()], dtype=np.uint8)[inverse].reshape(codes.shape)
    raise DatasetError(f"mask {path}: unsupported image mode {image.mode!r}; expected a palette or grey PNG")
