"""Writing a procedurally generated dataset in Pascal VOC layout, once, atomically: shared by "shapes" and "photos".

A generator is a :class:`DatasetGenerator`: a name, its classes, a version, default options and a function
that draws image ``i`` of a split from ``numpy.random.default_rng([seed, split_code, i])``. This module
writes its train and val splits (JPEG images, palette-PNG masks with a void band, ``ImageSets/Segmentation``
lists, ``classes.txt``, ``meta.json`` last) and caches them: a folder whose ``meta.json`` matches the
options is reused, anything else is generated into a temporary sibling and swapped in by renames, so an
interrupted run never leaves a half-written dataset, and a folder it did not write is never touched.

    >>> from slrnet.data.synthetic import SHAPES
    >>> root = ensure_generated(SHAPES, "/tmp/tiny", image_size=64, num_train=10, num_val=5, seed=1)

Images are saved with fixed JPEG/PNG settings and no timestamps, so the same seed and library versions
give byte-identical files, and image ``i`` does not change when only the counts change.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import PIL
from PIL import Image

from slrnet.data.files import VOID, save_palette_png

SPLIT_CODES = {"train": 0, "val": 1}
# the options every generator takes (its DatasetGenerator.defaults may add or change some)
GENERATED_OPTIONS = {
    "image_size": 128,     # square images, pixels
    "num_train": 2000,
    "num_val": 300,
    "seed": 0,
    "max_instances": 3,    # 1..max_instances objects per image
    "jpeg_quality": 90,
    "void_width": 1,       # void band reaches this many pixels to each side of a label border
}
# Images of the backbone's classification pretraining (slrnet.pretrain) come from their own stream,
# so they never coincide with a train or val image.
PRETRAIN_SPLIT_CODE = 2


def void_band(label: np.ndarray, width: int) -> np.ndarray:
    """Set to 255 every pixel within ``width`` (Chebyshev) of a pixel with a different label."""
    if width <= 0:
        return label.copy()
    h, w = label.shape
    padded = np.pad(label, width, mode="edge")
    border = np.zeros(label.shape, dtype=bool)
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            if dy or dx:
                border |= padded[width + dy:width + dy + h, width + dx:width + dx + w] != label
    out = label.copy()
    out[border] = VOID
    return out


@dataclass(frozen=True)
class DatasetGenerator:
    """What :func:`ensure_generated` needs to know about one generator.

    ``render(rng, opts) -> (uint8 (S, S, 3) image, uint8 (S, S) mask with void band)``; ``check(opts)``
    raises ``ValueError`` naming a bad option; ``extra_meta(opts)`` adds entries to ``meta.json`` (the
    versions of the source files, say) that must match for a cached copy to be reused.
    """

    name: str
    module: str                  # written into meta.json as "generator": tells our folders from others
    classes: tuple
    version: int
    defaults: dict
    render: Callable
    check: Callable = lambda opts: None
    extra_meta: Callable = field(default=lambda opts: {})

    def options(self, **options) -> dict:
        """Defaults filled in and checked; unknown keys and non-integers are errors naming the key."""
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(f"{self.name} dataset: unknown option(s) {unknown}; expected some of "
                             f"{sorted(self.defaults)}")
        opts = {**self.defaults, **options}
        for key, value in opts.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{self.name} dataset: option {key} must be an integer, got {value!r}")
            opts[key] = int(value)
        if opts["image_size"] < 32:
            raise ValueError(f"{self.name} dataset: image_size must be >= 32, got {opts['image_size']}")
        if opts["num_train"] < 1 or opts["num_val"] < 1:
            raise ValueError(f"{self.name} dataset: num_train and num_val must be >= 1")
        if not 1 <= opts["max_instances"] <= 6:
            raise ValueError(f"{self.name} dataset: max_instances must be in 1..6, got {opts['max_instances']}")
        if not 1 <= opts["jpeg_quality"] <= 100 or opts["void_width"] < 0:
            raise ValueError(f"{self.name} dataset: jpeg_quality must be in 1..100 and void_width >= 0")
        self.check(opts)
        return opts

    def sample(self, split: str | int, index: int, **options) -> tuple[np.ndarray, np.ndarray]:
        """Image ``index`` of a split ("train", "val" or a split code such as PRETRAIN_SPLIT_CODE)."""
        opts = self.options(**options)
        code = SPLIT_CODES[split] if isinstance(split, str) else int(split)
        return self.render(np.random.default_rng([opts["seed"], code, int(index)]), opts)

    def meta(self, opts: dict) -> dict:
        return {"dataset": self.name, "generator": self.module, "version": self.version, "seed": opts["seed"],
                "options": opts, "classes": list(self.classes),
                "libraries": {"numpy": np.__version__, "pillow": PIL.__version__}, **self.extra_meta(opts)}


def _write_split(gen: DatasetGenerator, root: Path, split: str, opts: dict) -> list[str]:
    from slrnet.utils import progress

    count = opts[f"num_{split}"]
    names = [f"{split}_{i:06d}" for i in range(count)]
    for i in progress(range(count), desc=f"{gen.name} {split}", leave=False):
        image, mask = gen.render(np.random.default_rng([opts["seed"], SPLIT_CODES[split], i]), opts)
        Image.fromarray(image, "RGB").save(root / "JPEGImages" / f"{names[i]}.jpg", format="JPEG",
                                           quality=opts["jpeg_quality"])
        save_palette_png(mask, root / "SegmentationClass" / f"{names[i]}.png")
    return names


def generate(gen: DatasetGenerator, root, **options) -> Path:
    """Write the dataset into ``root`` (which must not exist or be empty). Returns ``root``."""
    opts = gen.options(**options)
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{gen.name} dataset: {root} is not empty; use ensure_generated to (re)generate")
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        names = _write_split(gen, root, split, opts)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    (root / "classes.txt").write_text("\n".join(gen.classes) + "\n")
    (root / "meta.json").write_text(json.dumps(gen.meta(opts), indent=2, sort_keys=True) + "\n")  # written last
    return root


def is_complete(gen: DatasetGenerator, root: Path, opts: dict) -> bool:
    """True when ``root`` holds a finished generation with exactly these options (and source versions)."""
    try:
        meta = json.loads((Path(root) / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    expected = gen.meta(opts)
    if any(meta.get(k) != expected[k] for k in ("generator", "version", "options", *gen.extra_meta(opts))):
        return False
    for split in ("train", "val"):
        listed = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        names = listed.read_text().split() if listed.is_file() else []
        if len(names) != opts[f"num_{split}"]:
            return False
        if not all((root / "JPEGImages" / f"{n}.jpg").is_file() and (root / "SegmentationClass" / f"{n}.png").is_file()
                   for n in names):
            return False
    return True


def _written_by(gen: DatasetGenerator, root: Path) -> bool:
    try:
        return json.loads((root / "meta.json").read_text()).get("generator") == gen.module
    except (OSError, ValueError, AttributeError):
        return False


def ensure_generated(gen: DatasetGenerator, root, **options) -> Path:
    """Return ``root`` holding the dataset for ``options``, generating it when needed (see the module docstring)."""
    opts = gen.options(**options)
    root = Path(root).expanduser()
    if is_complete(gen, root, opts):
        return root
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{gen.name} dataset root {root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not _written_by(gen, root):
        raise FileExistsError(f"{root} is not empty and has no meta.json from the {gen.name} generator; refusing to "
                              f"overwrite it. Pass another root or remove the folder.")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        generate(gen, tmp, **opts)
        if is_complete(gen, root, opts):        # another process finished first: keep theirs
            return root
        old = None
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.replace(root, old / "dataset")
        try:
            os.replace(tmp, root)
        except OSError:
            if is_complete(gen, root, opts):    # lost a race to another process that wrote the same dataset
                return root
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
