"""The embedded default dataset, "shapes": procedurally generated, written in Pascal VOC layout.

Six foreground classes of distinct silhouettes (circle, square, triangle, star, cross, crescent) on
textured, noisy backgrounds (muted colour gradients with coarse mottling and fine grain). Each image holds 1-3 instances (a class may repeat) at random scale, rotation and position;
later instances may occlude earlier ones, but every instance stays at least 60 % visible. Colour
(any hue) and texture (shaded or two-tone stripes) are drawn independently of the class, so only
shape identifies it; objects are saturated on desaturated scenes, a class-agnostic figure/ground cue. Masks mark a void
band (255) along every label border, like VOC's.

    >>> from slrnet.data.synthetic import ensure_default_dataset, SHAPES_CLASSES
    >>> root = ensure_default_dataset()                 # data/shapes, generated once (~10 s), then cached
    >>> root = ensure_default_dataset("/tmp/tiny", image_size=64, num_train=10, num_val=5, seed=1)

Determinism: image ``i`` of a split is drawn from ``numpy.random.default_rng([seed, split_code, i])``
and saved with fixed JPEG/PNG settings and no timestamps, so the same seed and library versions give
byte-identical files (and images do not change when only the counts change). Load the result with
``slrnet.data.voc.VOCSegmentation`` like any VOC-layout folder.
"""
from __future__ import annotations

import colorsys
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from slrnet.data.generated import GENERATED_OPTIONS, DatasetGenerator, ensure_generated, generate, void_band

SHAPES_CLASSES = ("background", "circle", "square", "triangle", "star", "cross", "crescent")
GENERATOR_VERSION = 2
DEFAULT_OPTIONS = dict(GENERATED_OPTIONS)   # slrnet.data.generated: size, counts, seed, instances, JPEG, void
MIN_VISIBLE = 0.6          # fraction of an instance's area that must stay unoccluded
RADIUS_RANGE = (0.12, 0.25)  # instance radius as a fraction of the image size


def full_options(**options) -> dict:
    """Defaults filled in and checked; unknown keys are errors naming the key."""
    return SHAPES.options(**options)


# -- drawing ---------------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)                 # (S, S) each
    return xx, yy


def _rotated(points, cx: float, cy: float, r: float, theta: float) -> list[tuple[float, float]]:
    """Unit-radius polygon -> image coordinates (scaled by r, rotated by theta, centred)."""
    c, s = math.cos(theta), math.sin(theta)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in points]


def _star(n=5, outer=1.4, inner=0.6):
    return [((outer if k % 2 == 0 else inner) * math.cos(math.pi * k / n - math.pi / 2),
             (outer if k % 2 == 0 else inner) * math.sin(math.pi * k / n - math.pi / 2)) for k in range(2 * n)]


# Unit silhouettes, scaled so their areas are comparable (about 2.5-3.1 r^2).
_POLYGONS = {
    "square": [(1.25 * math.cos(a), 1.25 * math.sin(a)) for a in (math.pi / 4 + k * math.pi / 2 for k in range(4))],
    "triangle": [(1.45 * math.cos(a), 1.45 * math.sin(a)) for a in (-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))],
    "star": _star(),
    "cross": [(x * 0.38, y * 0.38) for x, y in
              [(1, 3), (1, 1), (3, 1), (3, -1), (1, -1), (1, -3), (-1, -3), (-1, -1), (-3, -1), (-3, 1), (-1, 1), (-1, 3)]],
}

# Farthest point of each silhouette from its centre, in units of r.
_EXTENT = {"circle": 1.0, "square": 1.25, "triangle": 1.45, "star": 1.4, "cross": 1.2, "crescent": 1.2}


def shape_mask(name: str, cx: float, cy: float, r: float, theta: float, size: int) -> np.ndarray:
    """Boolean (S, S) silhouette of class ``name`` centred at (cx, cy) with radius r, rotated by theta."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    if name == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif name == "crescent":  # a disc with an offset disc bitten out; the bite direction is the rotation
        big = 1.2 * r
        draw.ellipse([cx - big, cy - big, cx + big, cy + big], fill=255)
        ox, oy, small = cx + 0.6 * big * math.cos(theta), cy + 0.6 * big * math.sin(theta), 0.8 * big
        draw.ellipse([ox - small, oy - small, ox + small, oy + small], fill=0)
    else:
        draw.polygon(_rotated(_POLYGONS[name], cx, cy, r, theta), fill=255)
    return np.asarray(canvas) > 127


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, std: float) -> np.ndarray:
    """Low-frequency colour noise, float32 (S, S, 3), zero mean-ish, by bicubic upsampling a tiny grid."""
    small = np.clip(rng.normal(128, 48, (cells, cells, 3)), 0, 255).astype(np.uint8)
    big = np.asarray(Image.fromarray(small, "RGB").resize((size, size), Image.BICUBIC), dtype=np.float32)
    return (big - 128.0) * (std / 48.0)


def _gradient(rng: np.random.Generator, size: int, c0, c1) -> np.ndarray:
    xx, yy = _grid(size)
    angle = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(angle) + yy * math.sin(angle)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))              # (S, S) in [0, 1]
    return np.asarray(c0, np.float32) + (np.asarray(c1, np.float32) - np.asarray(c0, np.float32)) * t[..., None]


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Muted, light scene: gradient between two pastel colours + coarse mottling + fine grain, float32 (S, S, 3).

    Backgrounds are desaturated and objects saturated (see ``_texture``): the cue that tells an object
    from the scene is class-agnostic, so the classes still differ only by shape. Trained from scratch on
    two CPU cores, a small network needs this contrast to learn shapes within minutes (measured: with
    saturated clutter lines and striped/checkered objects it stayed at the label prior for 2000 steps).
    """
    def pastel():
        return _hsv(rng.uniform(), rng.uniform(0.05, 0.3), rng.uniform(0.7, 0.95))

    image = _gradient(rng, size, pastel(), pastel())
    image += _smooth_noise(rng, size, int(rng.integers(3, 9)), rng.uniform(5, 15))     # coarse mottling
    image += _smooth_noise(rng, size, size // 4, rng.uniform(2, 6))                     # fine texture
    return image


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """An object's appearance, float32 (S, S, 3): a saturated colour of any hue, shaded or two-tone striped."""
    xx, yy = _grid(size)
    c0 = _hsv(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.35, 0.9))
    if rng.uniform() < 0.75:                              # shaded: smooth low-amplitude noise
        return c0 + _smooth_noise(rng, size, int(rng.integers(6, 16)), rng.uniform(4, 12))
    c1 = _hsv(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.35, 0.9))   # stripes of two hues
    period, angle = rng.uniform(8, 16), rng.uniform(0, math.pi)
    t = (np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period) > 0).astype(np.float32)
    return c0 + (c1 - c0) * t[..., None]


def render_sample(rng: np.random.Generator, size: int = 128, max_instances: int = 3,
                  void_width: int = 1) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """One image: (uint8 (S, S, 3) image, uint8 (S, S) mask with void band, list of instance dicts)."""
    image = _background(rng, size)                                        # (S, S, 3) float32
    label = np.zeros((size, size), dtype=np.uint8)
    full_areas, visible, instances = [], [], []
    for _ in range(int(rng.integers(1, max_instances + 1))):
        cls = int(rng.integers(1, len(SHAPES_CLASSES)))
        for _attempt in range(12):
            r = rng.uniform(*RADIUS_RANGE) * size
            margin = 0.9 * _EXTENT[SHAPES_CLASSES[cls]] * r   # at most a sliver may leave the image
            cx, cy = rng.uniform(margin, size - margin, 2)
            theta = rng.uniform(0, 2 * math.pi)
            m = shape_mask(SHAPES_CLASSES[cls], cx, cy, r, theta, size)
            # The new instance goes on top: every earlier one must stay MIN_VISIBLE visible.
            if all((v & ~m).sum() >= MIN_VISIBLE * a for v, a in zip(visible, full_areas)):
                break
        else:
            continue  # no placement kept the others visible: fewer instances in this image
        under = image[m].mean(0)
        best, best_dist = None, -1.0
        for _try in range(6):  # colour is random, but keep the object distinguishable from what it covers
            tex = _texture(rng, size)
            dist = float(np.linalg.norm(tex[m].mean(0) - under))
            if dist > best_dist:
                best, best_dist = tex, dist
            if dist >= 60:
                break
        image[m] = best[m]
        label[m] = cls
        visible = [v & ~m for v in visible] + [m]
        full_areas.append(int(m.sum()))
        instances.append({"class": SHAPES_CLASSES[cls], "center": (float(cx), float(cy)), "radius": float(r),
                          "angle": float(theta)})
    image += rng.normal(0, rng.uniform(2, 6), image.shape).astype(np.float32)  # sensor noise
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), void_band(label, void_width), instances


# -- writing (slrnet.data.generated) -------------------------------------------------------------

def _render(rng: np.random.Generator, opts: dict) -> tuple[np.ndarray, np.ndarray]:
    image, mask, _ = render_sample(rng, opts["image_size"], opts["max_instances"], opts["void_width"])
    return image, mask


SHAPES = DatasetGenerator(name="shapes", module="slrnet.data.synthetic", classes=SHAPES_CLASSES,
                          version=GENERATOR_VERSION, defaults=DEFAULT_OPTIONS, render=_render)


def generate_dataset(root, **options) -> Path:
    """Write the shapes dataset into ``root`` (which must not exist or be empty). Returns ``root``."""
    return generate(SHAPES, root, **options)


def ensure_default_dataset(root=None, **options) -> Path:
    """Return a folder holding the shapes dataset for ``options``, generating it when needed.

    ``root`` defaults to ``<slrnet.utils.default_data_root()>/shapes``. A cached copy is reused when its
    ``meta.json`` matches the options; otherwise it is generated atomically (``slrnet.data.generated``).
    A non-empty folder that was not written by this generator is never touched (an error instead).
    """
    from slrnet.utils import default_data_root

    return ensure_generated(SHAPES, Path(root) if root is not None else default_data_root() / "shapes", **options)
