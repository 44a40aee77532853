"""The second embedded dataset, "photos": real photographs composed into scenes, written in Pascal VOC layout.

Where "shapes" teaches with flat colours, this one is built from real pictures (``slrnet.data.photo_sources``:
photographs that ship inside scikit-image, scikit-learn and matplotlib). Every image is a random crop of a
real **scene** photograph (a pagoda, a launch pad, a lawn, a portrait, the Moon, ...) with 1-3 **objects**
pasted on it. An object of class c is a random view of class c's photograph (the cat, the dahlia, the
espresso cup, the motorcycle, the space suit, coins, brick, grass, gravel, stained tissue) seen through a
random silhouette: a smooth blob of random elongation (aspect 1-3) and area (2-30 % of the image,
log-uniform, so small objects are as common as large ones), with an anti-aliased edge. Silhouettes are
drawn independently of the class, so only appearance (colour, texture, parts) tells the classes apart;
crops, flips, brightness and contrast vary every view, and the scene is a photograph, not a flat backdrop,
so figure and ground are told apart by what things look like, as in VOC. Masks mark a void band (255)
along every label border. Classes and their sources: ``PHOTOS_CLASSES``.

    >>> from slrnet.data.photos import ensure_photos_dataset, PHOTOS_CLASSES
    >>> root = ensure_photos_dataset()                  # data/photos, generated once (~15 s), then cached
    >>> root = ensure_photos_dataset("/tmp/p", image_size=64, num_train=10, num_val=5, seed=1)

Determinism: image ``i`` of a split is drawn from ``numpy.random.default_rng([seed, split_code, i])`` and the
source photographs are checked pixel by pixel against recorded digests, so the same seed and library
versions give byte-identical files. The backbone's pretraining stream (``slrnet.pretrain``) draws other
compositions of the same photographs (its own split code), as ImageNet holds other pictures of VOC's classes.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from slrnet.data.generated import GENERATED_OPTIONS, DatasetGenerator, ensure_generated, generate, void_band
from slrnet.data.photo_sources import OBJECT_SOURCES, SCENE_SOURCES, load_sources, source_digests

PHOTOS_CLASSES = ("background",) + tuple(s.name for s in OBJECT_SOURCES)
SCENES = tuple(s.name for s in SCENE_SOURCES)
MATERIALS = frozenset({"coins", "brick", "grass", "gravel", "tissue"})   # no up or down: any quarter turn
GENERATOR_VERSION = 1
DEFAULT_OPTIONS = dict(GENERATED_OPTIONS)   # slrnet.data.generated: size, counts, seed, instances, JPEG, void
AREA_RANGE = (0.02, 0.30)    # an instance's area as a fraction of the image, drawn log-uniform
ASPECT_RANGE = (1.0, 3.0)    # silhouette elongation, log-uniform
MIN_VISIBLE = 0.6            # fraction of an instance's area that must stay unoccluded
SUPERSAMPLE = 4              # silhouettes are drawn at 4x and box-filtered: an anti-aliased edge


def photo_view(rng: np.random.Generator, photo: np.ndarray, height: int, width: int, min_side: float,
               quarter_turns: bool = False) -> np.ndarray:
    """A random crop of ``photo`` (at least ``min_side`` of its shorter side) resized to (height, width), float32.

    Mirrored half the time; rotated by a random quarter turn when ``quarter_turns``; brightness, contrast
    and colour balance jittered by up to ~20 %, 20 % and 6 %.
    """
    if quarter_turns:
        photo = np.rot90(photo, int(rng.integers(4)))
    ph, pw = photo.shape[:2]
    aspect = width / height
    fit_h, fit_w = (ph, ph * aspect) if pw / ph > aspect else (pw / aspect, pw)      # largest crop of that aspect
    f = rng.uniform(min_side, 1.0)
    ch, cw = max(2, min(ph, int(round(f * fit_h)))), max(2, min(pw, int(round(f * fit_w))))
    y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    crop = Image.fromarray(np.ascontiguousarray(photo[y0:y0 + ch, x0:x0 + cw]), "RGB")
    view = np.asarray(crop.resize((width, height), Image.BILINEAR, reducing_gap=2.0), dtype=np.float32)
    if rng.uniform() < 0.5:
        view = view[:, ::-1]
    mean = view.mean((0, 1), keepdims=True)
    view = (view - mean) * rng.uniform(0.8, 1.2) + mean * rng.uniform(0.8, 1.2)      # contrast, brightness
    return view * rng.uniform(0.94, 1.06, 3).astype(np.float32)                     # colour balance


def silhouette(rng: np.random.Generator, size: int, area: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A random smooth blob covering about ``area`` (fraction) of a size x size image.

    Returns (float32 (h, w) coverage in [0, 1] of its bounding box, (y0, x0, y1, x1) of the box in the image).
    The outline is r(t) = 1 + sum_k a_k cos(k t + phi_k), k = 2..4, stretched by a random aspect and rotated.
    """
    t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
    r = np.ones_like(t)
    for k in (2, 3, 4):
        r += rng.uniform(0, 0.3 / k) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
    aspect = math.exp(rng.uniform(*np.log(ASPECT_RANGE)))
    x, y = r * np.cos(t) * math.sqrt(aspect), r * np.sin(t) / math.sqrt(aspect)
    theta = rng.uniform(0, math.pi)
    x, y = x * math.cos(theta) - y * math.sin(theta), x * math.sin(theta) + y * math.cos(theta)
    unit_area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))        # shoelace
    scale = math.sqrt(area * size * size / unit_area)
    x, y = x * scale, y * scale
    half_w, half_h = float(np.abs(x).max()), float(np.abs(y).max())
    # the centre keeps most of the blob inside the image (at most a sliver of 15 % of its extent leaves it)
    cx = rng.uniform(min(0.85 * half_w, size / 2), max(size - 0.85 * half_w, size / 2))
    cy = rng.uniform(min(0.85 * half_h, size / 2), max(size - 0.85 * half_h, size / 2))
    y0, x0 = max(0, int(math.floor(cy - half_h))), max(0, int(math.floor(cx - half_w)))
    y1, x1 = min(size, int(math.ceil(cy + half_h)) + 1), min(size, int(math.ceil(cx + half_w)) + 1)
    s = SUPERSAMPLE
    canvas = Image.new("L", ((x1 - x0) * s, (y1 - y0) * s), 0)
    ImageDraw.Draw(canvas).polygon([((cx + a - x0) * s, (cy + b - y0) * s) for a, b in zip(x, y)], fill=255)
    coverage = np.asarray(canvas, dtype=np.float32).reshape(y1 - y0, s, x1 - x0, s).mean((1, 3)) / 255.0
    return coverage, (y0, x0, y1, x1)


def render_sample(rng: np.random.Generator, size: int = 128, max_instances: int = 3,
                  void_width: int = 1) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """One image: (uint8 (S, S, 3) image, uint8 (S, S) mask with void band, list of instance dicts)."""
    photos = load_sources()
    scene = SCENES[int(rng.integers(len(SCENES)))]
    image = photo_view(rng, photos[scene], size, size, min_side=0.3)                  # (S, S, 3) float32
    label = np.zeros((size, size), dtype=np.uint8)
    full_areas, visible, instances = [], [], []
    for _ in range(int(rng.integers(1, max_instances + 1))):
        cls = int(rng.integers(1, len(PHOTOS_CLASSES)))
        for _attempt in range(12):
            area = math.exp(rng.uniform(*np.log(AREA_RANGE)))
            coverage, (y0, x0, y1, x1) = silhouette(rng, size, area)
            m = np.zeros((size, size), dtype=bool)
            m[y0:y1, x0:x1] = coverage >= 0.5
            # The new instance goes on top: every earlier one must stay MIN_VISIBLE visible.
            if m.any() and all((v & ~m).sum() >= MIN_VISIBLE * a for v, a in zip(visible, full_areas)):
                break
        else:
            continue  # no placement kept the others visible: fewer instances in this image
        name = PHOTOS_CLASSES[cls]
        look = photo_view(rng, photos[name], y1 - y0, x1 - x0, min_side=0.4, quarter_turns=name in MATERIALS)
        alpha = coverage[..., None]                                                   # (h, w, 1)
        image[y0:y1, x0:x1] = alpha * look + (1 - alpha) * image[y0:y1, x0:x1]
        label[m] = cls
        visible = [v & ~m for v in visible] + [m]
        full_areas.append(int(m.sum()))
        instances.append({"class": name, "box": (y0, x0, y1, x1), "area": float(m.mean())})
    image += rng.normal(0, rng.uniform(1, 3), image.shape).astype(np.float32)         # sensor noise
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), void_band(label, void_width), {"scene": scene,
                                                                                         "instances": instances}


def render_view(rng: np.random.Generator, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """An "ImageNet-like" picture for pretraining: one random view of one photograph, filling the image.

    Half the time a view of an object photograph (mask: its class everywhere), else of a scene (mask: 0), so
    the pretraining also sees the scenes as negatives. Returns (uint8 (S, S, 3) image, uint8 (S, S) mask).
    """
    photos = load_sources()
    if rng.uniform() < 0.5:
        cls = int(rng.integers(1, len(PHOTOS_CLASSES)))
        name = PHOTOS_CLASSES[cls]
    else:
        cls, name = 0, SCENES[int(rng.integers(len(SCENES)))]
    view = photo_view(rng, photos[name], size, size, min_side=0.25, quarter_turns=name in MATERIALS)
    view += rng.normal(0, rng.uniform(1, 3), view.shape).astype(np.float32)
    return np.clip(view + 0.5, 0, 255).astype(np.uint8), np.full((size, size), cls, dtype=np.uint8)


def _render(rng: np.random.Generator, opts: dict) -> tuple[np.ndarray, np.ndarray]:
    image, mask, _ = render_sample(rng, opts["image_size"], opts["max_instances"], opts["void_width"])
    return image, mask


PHOTOS = DatasetGenerator(name="photos", module="slrnet.data.photos", classes=PHOTOS_CLASSES,
                          version=GENERATOR_VERSION, defaults=DEFAULT_OPTIONS, render=_render,
                          extra_meta=lambda opts: {"sources": source_digests()})


def generate_photos_dataset(root, **options) -> Path:
    """Write the photos dataset into ``root`` (which must not exist or be empty). Returns ``root``."""
    return generate(PHOTOS, root, **options)


def ensure_photos_dataset(root=None, **options) -> Path:
    """Return a folder holding the photos dataset for ``options``, generating it when needed.

    ``root`` defaults to ``<slrnet.utils.default_data_root()>/photos``; caching and atomic replacement as for
    shapes (``slrnet.data.generated``). A folder this generator did not write is never touched.
    """
    from slrnet.utils import default_data_root

    return ensure_generated(PHOTOS, Path(root) if root is not None else default_data_root() / "photos", **options)
