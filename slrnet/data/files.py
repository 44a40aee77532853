"""The files of a VOC-layout dataset: images, label maps in the VOC palette, and the errors that name them.

    >>> from slrnet.data.files import load_image, load_mask, save_palette_png, voc_colormap
    >>> mask = load_mask("data/shapes/SegmentationClass/train_00000.png")     # uint8 (H, W), 255 = void
    >>> save_palette_png(mask, "/tmp/copy.png")                               # the same indices, VOC colours

The palette is the one every figure uses too (``slrnet.viz.common.colorize``).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

VOID = 255
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class DatasetError(ValueError):
    """The dataset on disk is not what the loader expects; the message names the file."""


class DatasetFileNotFoundError(DatasetError, FileNotFoundError):
    """A root, list or listed file does not exist."""


def read_text(path, what: str = "list file") -> str:
    """A dataset text file (list, classes) as UTF-8 (a byte-order mark allowed); another encoding is one
    ``DatasetError`` naming the file and the byte, not a bare codec message."""
    from slrnet.paths import read_utf8

    return read_utf8(path, DatasetError, what)


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
    """Write a (H, W) label map (values 0..254 and 255 = void) as a VOC palette PNG, atomically (a temporary file
    renamed): a full disk or a kill leaves the previous file or none, never a truncated one, and the error names
    the path."""
    from slrnet.utils import atomic_write_bytes

    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"save_palette_png({path}): expected a (H, W) label map, got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"save_palette_png({path}): label values must lie in [0, 255]")
    image = Image.fromarray(array.astype(np.uint8), "P")
    image.putpalette(PALETTE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def _open_image(path: Path, what: str) -> Image.Image:
    """Open and decode ``path`` now (a truncated file fails here, not deep inside a worker); every failure, a
    decompression bomb included (more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``), is one error naming the file."""
    if not path.is_file():
        raise DatasetFileNotFoundError(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DatasetError(f"{what} {path} is refused as a possible decompression bomb ({e}); if it is genuine, "
                           f"raise PIL.Image.MAX_IMAGE_PIXELS (now {Image.MAX_IMAGE_PIXELS})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"{what} {path} is corrupt or truncated ({e}); expected a readable image file") from None
    return image


# EXIF orientation tag -> the transpose that shows the image upright (PIL.ImageOps.exif_transpose's table)
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}


def _to_rgb(image: Image.Image, path: Path) -> Image.Image:
    """The pixels as 8-bit RGB, faithfully: 16-bit grey scaled (65535 -> 255, not clipped), transparency composited
    over white (what a viewer shows on a white page), palette and CMYK converted; any other mode is refused."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L") or (mode == "I" and image.format == "PNG"):   # 16-bit grey
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.round(values / 257.0).clip(0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in ("RGB", "L", "P", "1", "CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB") if mode != "RGB" else image
    raise DatasetError(f"image {path}: unsupported image mode {mode!r} (e.g. 32-bit integer or float pixels); "
                       f"expected an 8- or 16-bit RGB, grey, palette or CMYK image")


def image_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag of ``image`` (1 = stored upright, also when there is none)."""
    try:
        value = int(image.getexif().get(0x0112, 1))
    except (TypeError, ValueError, SyntaxError, OSError):
        return 1
    return value if value in _ORIENTATION else 1


def load_image(path, mask_size: tuple[int, int] | None = None) -> Image.Image:
    """Open an image file as 8-bit RGB (:func:`_to_rgb`), upright as its EXIF orientation says (as every viewer
    shows it); errors name the file. ``mask_size`` (W, H): the size of the label map drawn on this image; then the
    orientation whose size matches the mask's is used (masks drawn on the stored pixels keep them), and an image
    whose mask cannot tell (a square image with a rotation tag) is refused rather than guessed."""
    path = Path(path)
    image = _open_image(path, "image")
    orientation = image_orientation(image)
    rgb = _to_rgb(image, path)
    if orientation == 1:
        return rgb
    # a fresh image without the tag (transpose keeps .info, EXIF included): nothing downstream turns it twice
    upright = Image.frombytes("RGB", rgb.size[::-1] if orientation >= 5 else rgb.size,
                              rgb.transpose(_ORIENTATION[orientation]).tobytes())
    if mask_size is None or tuple(mask_size) == upright.size != rgb.size:
        return upright
    if tuple(mask_size) == rgb.size != upright.size:
        return rgb                                           # the mask was drawn on the stored pixels
    if tuple(mask_size) == rgb.size == upright.size:
        raise DatasetError(f"image {path} has EXIF orientation {orientation}, and its mask fits both the stored and "
                           f"the upright pixels; cannot tell which the mask was drawn on: save the image upright "
                           f"without the orientation tag (or the mask to match)")
    return upright                                           # neither fits: the caller reports the sizes


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
