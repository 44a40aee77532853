"""The real photographs behind the "photos" dataset: files that ship inside installed Python packages.

Nothing is downloaded at run time. scikit-image and scikit-learn (dependencies of slrnet, installed by
``pip`` at set-up) carry a handful of real photographs as package data, and matplotlib carries one; this
module finds them on disk, reads them, and checks their pixels against the SHA-256 digests recorded
here, so a dataset drawn from them is the same on every machine (``slrnet.data.photos``).

Each source has a *role*. The ten **object** sources give the ten foreground classes their appearance
(a cat's fur and face, a dahlia, an espresso cup, a red motorcycle, an orange space suit, coins, and four
photographed materials: brick, grass, gravel, stained tissue), restricted to a box around the object. The
**scene** sources are the backgrounds (a pagoda over a lake, a night launch pad, a photographer on a
lawn, a portrait, the Moon's surface, a deep-field sky, a garage's shelves, a printed page, a retina).
No photograph plays both roles, so a background never holds an unlabelled object of a class.

    >>> from slrnet.data.photo_sources import load_sources, OBJECT_SOURCES
    >>> images = load_sources()                  # {name: uint8 (H, W, 3) array}, each pixel-checked
    >>> [s.name for s in OBJECT_SOURCES][:3]
    ['cat', 'flower', 'coffee']
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Source:
    name: str          # the class name (objects) or a short label (scenes)
    package: str       # the installed package that ships the file
    path: str          # inside the package folder
    box: tuple         # (x0, y0, x1, y1) as fractions of the image: the part that is used
    sha256: str        # of the decoded RGB pixels (uint8, H x W x 3, C order), not of the file's bytes

    def file(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise SourceMissing(f"photos dataset: the package {self.package!r} is not installed; it ships "
                                f"{self.path}. Install slrnet's dependencies (pip install -e .), e.g. with "
                                f"`make install`.")
        return Path(list(spec.submodule_search_locations)[0]) / self.path


class SourceMissing(FileNotFoundError):
    """A photograph the photos dataset needs is not on this machine."""


MAX_SIDE = 320      # the used box is downscaled (Lanczos) until its shorter side is at most this
_SK = "skimage"
OBJECT_SOURCES = (
    Source("cat", _SK, "data/chelsea.png", (0.05, 0.0, 1.0, 1.0),
           "416b729128bfb2c3d1eb69bf9b1734a796293abc17939267b2dc94f8a5784031"),
    Source("flower", "sklearn", "datasets/images/flower.jpg", (0.22, 0.12, 0.62, 0.78),
           "3202904ed246795bf616c66d7859cd7c6080eff736c6e38dc5cc62779742033f"),
    Source("coffee", _SK, "data/coffee.png", (0.22, 0.08, 0.78, 0.78),
           "0ce2b51640b9c95f19617f03eabf40c3f0368589cc1ee1190b70966165ac184f"),
    Source("motorcycle", _SK, "data/motorcycle_right.png", (0.03, 0.33, 0.97, 0.97),
           "ae44d83f55e66623c7985499fd2f1685a56023e442e66eca89b3457dd46b17af"),
    Source("spacesuit", _SK, "data/astronaut.png", (0.08, 0.42, 0.72, 1.0),
           "a8c429c18afa7b0fd5673e598d73a21225d94c864a71bbb3885126fdecb41071"),
    Source("coins", _SK, "data/coins.png", (0.0, 0.0, 1.0, 1.0),
           "aaecc2ad43bd43e204f7ad01dc60494586ff80d42236c2db358c59b9be1f5427"),
    Source("brick", _SK, "data/brick.png", (0.0, 0.0, 1.0, 1.0),
           "3501e216fb0968c378803347d3a13e3cc04021eaecc44b64c6528088c7ea0f64"),
    Source("grass", _SK, "data/grass.png", (0.0, 0.0, 1.0, 1.0),
           "c7ca5c984d6b5a2787506e70a42bcac22b164b00e8e1cf9e06cf76b8110c5734"),
    Source("gravel", _SK, "data/gravel.png", (0.0, 0.0, 1.0, 1.0),
           "e73bd88250cbfd7f96f232357ecad0d2302252483457337f5cf79d2c5b82227a"),
    Source("tissue", _SK, "data/ihc.png", (0.0, 0.0, 1.0, 1.0),
           "c5b3ef509a92f16d4c29be8cf0300fe75d53e13a3ce650159db932caea8dcc1b"),
)
SCENE_SOURCES = (
    Source("pagoda", "sklearn", "datasets/images/china.jpg", (0.0, 0.0, 1.0, 1.0),
           "e701459344fd69797154c91add3bb5d70e5ed1a61d8bed889bab3a796104698d"),
    Source("launch pad", _SK, "data/rocket.jpg", (0.0, 0.0, 1.0, 1.0),
           "3d4435cc745752b7f9724df88c6e18817de3ce7e3d2d71c55f85f7831e68f197"),
    Source("lawn", _SK, "data/camera.png", (0.0, 0.0, 1.0, 1.0),
           "13e2b4aa92cb1649b4aac5a4d48b38a8ea3a18b86e8abdf5a4871abf24c9d038"),
    Source("portrait", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", (0.0, 0.0, 1.0, 1.0),
           "f7f982de68dd296af67ee51b2a95a2e5658f7bf064c6536520b66bae8d01fc34"),
    Source("moon", _SK, "data/moon.png", (0.0, 0.0, 1.0, 1.0),
           "a641c47851a3252efa5514c25bb953056fae7de469736ede1363e861c70bfb10"),
    Source("deep field", _SK, "data/hubble_deep_field.jpg", (0.0, 0.0, 1.0, 1.0),
           "9a3ea9548188f81e63435188456e74de45a981ebeb791e265abe79a26d3b528b"),
    Source("garage", _SK, "data/motorcycle_left.png", (0.0, 0.0, 1.0, 0.36),
           "ca829467c1d4f427da9c4862ba43829da6ac90afe1f75735e95dba9e3fd9620b"),
    Source("page", _SK, "data/page.png", (0.0, 0.0, 1.0, 1.0),
           "ec733fa2c40866580dddaeba150133b831d35bc25bef98e24b7b8ce2557ed37a"),
    Source("retina", _SK, "data/retina.jpg", (0.0, 0.0, 1.0, 1.0),
           "3670e389d0dae9f755cc1bb7e4da4c3d2cdf10eba2dc3060836d8d4b8024d860"),
)


def pixel_digest(rgb: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()).hexdigest()


def _read(source: Source) -> np.ndarray:
    path = source.file()
    if not path.is_file():
        raise SourceMissing(f"photos dataset: {path} not found; expected the {source.package} package to ship "
                            f"{source.path}. Reinstall it (pip install --force-reinstall {source.package}).")
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)             # (H, W, 3); grey images repeat the channel
    if pixel_digest(rgb) != source.sha256:
        raise SourceMissing(f"photos dataset: the pixels of {path} differ from the recorded photograph "
                            f"(SHA-256 {source.sha256[:12]}...); the photos dataset would not be the documented one. "
                            f"Install the {source.package} version slrnet pins in pyproject.toml.")
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = source.box
    box = rgb[int(round(y0 * h)):int(round(y1 * h)), int(round(x0 * w)):int(round(x1 * w))]
    scale = MAX_SIDE / min(box.shape[:2])
    if scale < 1:    # views are at most 128 px: a smaller copy makes every later crop and resize cheap
        size = (max(1, round(box.shape[1] * scale)), max(1, round(box.shape[0] * scale)))
        box = np.asarray(Image.fromarray(box, "RGB").resize(size, Image.LANCZOS), dtype=np.uint8)
    return np.ascontiguousarray(box)


@lru_cache(maxsize=1)
def _load_all() -> dict:
    return {s.name: _read(s) for s in OBJECT_SOURCES + SCENE_SOURCES}


def load_sources() -> dict[str, np.ndarray]:
    """{source name: uint8 (H, W, 3) array of the used box, shorter side <= MAX_SIDE}, read once per process
    and pixel-checked."""
    return dict(_load_all())


def source_digests() -> dict[str, str]:
    """{source name: SHA-256 of its decoded pixels}, as recorded here and checked on every read: meta.json holds it."""
    return {s.name: s.sha256 for s in OBJECT_SOURCES + SCENE_SOURCES}
