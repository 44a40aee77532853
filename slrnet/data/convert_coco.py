"""MS-COCO 2014 instance annotations -> a VOC-layout root: class-index masks, lists, images, ``classes.txt``.

COCO's 80 object categories have ids 1..90 with gaps; WSSS work (and the authors' ``datasets/coco.py``) maps them
in id order to 1..80, 0 = background, 81 classes in all. For ``--split train2014`` (or ``val2014``):

    <coco-root>/annotations/instances_<split>.json, <coco-root>/<split>/<file_name>.jpg     (the downloads)
    -> <out>/SegmentationClass/<name>.png    class-index map, VOC palette; <name> = the file name without .jpg
       <out>/JPEGImages/<name>.jpg           a symbolic link to the download (``--copy-images`` copies)
       <out>/ImageSets/Segmentation/train.txt | val.txt     every image of the split, annotated or not
       <out>/classes.txt                     background + the 80 category names, in label order

    >>> from slrnet.data.convert_coco import convert_coco
    >>> convert_coco("data/coco", "val2014", "data/COCO")       # 40,504 images on the real data

Pixels: every instance is decoded with ``pycocotools`` (polygons and RLE, crowd regions included) and painted in
its class. Where instances of *different* classes overlap, the pixel is 255 (void, ignored by training and
evaluation): which class it is cannot be told from the annotations (``overlap="first"`` instead keeps the first
annotation's class, the authors' rule). Overlaps within one class stay that class. An image without annotations is
all background; its image labels (derived from the mask, as for VOC) are empty. Image labels are those of the
mask: a class whose only instances lie wholly inside other classes' overlaps loses its label (rare).

Parallel over images (``num_workers`` processes), with a progress bar; a mask that exists and decodes is skipped,
each file is written under a temporary name and renamed, so an interrupted conversion is simply run again.
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from slrnet.data.convert_sbd import valid_png, write_png_atomic, write_text_atomic
from slrnet.data.files import DatasetError, DatasetFileNotFoundError
from slrnet.paths import entry_name

OVERLAP_RULES = ("void", "first")


def load_instances(path: Path) -> dict:
    """The instance JSON, checked for what the conversion needs; errors name the file."""
    if not path.is_file():
        raise DatasetFileNotFoundError(f"COCO annotation file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path} is not valid JSON ({e})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or key not in data:
            raise DatasetError(f"{path} has no '{key}' list; expected a COCO instances file (instances_*.json)")
    return data


def category_map(categories: list[dict]) -> tuple[dict[int, int], list[str]]:
    """COCO category id -> label 1..C in id order, and the class names with background first."""
    ordered = sorted(categories, key=lambda c: int(c["id"]))
    return {int(c["id"]): i + 1 for i, c in enumerate(ordered)}, ["background"] + [c["name"] for c in ordered]


def instance_mask(segmentation, height: int, width: int) -> np.ndarray:
    """(H, W) bool of one annotation: polygons (a list of [x, y, ...]) or RLE (counts as a list or a string)."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles) if len(rles) else None
        return np.zeros((height, width), bool) if rle is None else mask_utils.decode(rle).astype(bool)
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        segmentation = mask_utils.frPyObjects(segmentation, height, width)
    return mask_utils.decode(segmentation).astype(bool)


def render_mask(annotations: list[dict], height: int, width: int, cat_to_label: dict[int, int],
                overlap: str = "void") -> np.ndarray:
    """(H, W) uint8 class-index map of one image's annotations (module docstring for the overlap rule)."""
    if overlap not in OVERLAP_RULES:
        raise ValueError(f"overlap: expected one of {OVERLAP_RULES}, got {overlap!r}")
    out = np.zeros((height, width), np.uint8)
    for ann in annotations:
        label = cat_to_label.get(int(ann["category_id"]))
        if label is None:
            continue
        m = instance_mask(ann["segmentation"], height, width)
        if overlap == "first":
            out[m & (out == 0)] = label
        else:
            clash = m & (out != 0) & (out != label)              # another class already claimed the pixel
            out[m & (out == 0)] = label
            out[clash] = 255
    return out


def _convert_one(job: tuple) -> tuple[str, str]:
    name, height, width, anns, cat_to_label, overlap, target = job
    target = Path(target)
    if valid_png(target, (width, height)):
        return name, "skipped"
    write_png_atomic(render_mask(anns, height, width, cat_to_label, overlap), target)
    return name, "written"


def convert_coco(coco_root, split: str, out_root, overlap: str = "void", copy_images: bool = False,
                 num_workers: int | None = None, progress: bool = True) -> dict:
    """Convert one COCO split into ``out_root`` (module docstring); returns counts and paths."""
    from slrnet.utils import progress as progress_bar

    coco, out = Path(coco_root), Path(out_root)
    data = load_instances(coco / "annotations" / f"instances_{split}.json")
    image_dir = coco / split
    if not image_dir.is_dir():
        raise DatasetFileNotFoundError(f"COCO image folder not found: {image_dir}")
    cat_to_label, names = category_map(data["categories"])
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    source_file = coco / "annotations" / f"instances_{split}.json"
    for im in data["images"]:          # every name checked before anything is written
        entry_name(im["file_name"], source_file, "image file_name")
    images = sorted(data["images"], key=lambda im: im["file_name"])
    jobs, listed = [], []
    for im in images:
        source = image_dir / im["file_name"]
        if not source.is_file():
            raise DatasetFileNotFoundError(f"{source} is listed in "
                                           f"instances_{split}.json but does not exist")
        name = Path(im["file_name"]).stem
        listed.append(name)
        link = out / "JPEGImages" / im["file_name"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and not link.exists():         # a dangling link: the download moved
            link.unlink()
        if not link.exists():
            if copy_images:
                shutil.copyfile(source, link)
            else:
                os.symlink(source.resolve(), link)
        jobs.append((name, int(im["height"]), int(im["width"]), by_image.get(int(im["id"]), []), cat_to_label,
                     overlap, str(out / "SegmentationClass" / f"{name}.png")))
    workers = max(1, num_workers if num_workers else (os.cpu_count() or 1))
    counts = {"written": 0, "skipped": 0}
    bar = progress_bar(total=len(jobs), desc=f"COCO {split} -> PNG", **({} if progress else {"disable": True}))
    if workers == 1 or len(jobs) < 64:
        results = map(_convert_one, jobs)
        for _, status in results:
            counts[status] += 1
            bar.update(1)
    else:
        with ProcessPoolExecutor(workers) as pool:
            for _, status in pool.map(_convert_one, jobs, chunksize=32):
                counts[status] += 1
                bar.update(1)
    bar.close()
    list_name = "train.txt" if split.startswith("train") else "val.txt"
    write_text_atomic(out / "ImageSets" / "Segmentation" / list_name, "".join(n + "\n" for n in listed))
    write_text_atomic(out / "classes.txt", "".join(n + "\n" for n in names))
    return {"out_root": str(out), "split": split, "images": len(listed),
            "annotated": sum(1 for im in images if by_image.get(int(im["id"]))), "classes": len(names), **counts}
