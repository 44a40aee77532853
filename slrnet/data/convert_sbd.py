"""SBD + VOC 2012 -> ``SegmentationClassAug/`` and ``train_aug.txt``: the 10,582-image training set of WSSS.

The Semantic Boundaries Dataset (Hariharan et al., ICCV 2011; ``benchmark.tgz`` -> ``benchmark_RELEASE/``) labels
11,355 VOC images. Its masks are MATLAB files ``dataset/cls/<name>.mat`` holding a struct ``GTcls`` whose field
``Segmentation`` is the (H, W) class-index map (0 = background, 1..20 the VOC classes; SBD has no void label).
Its lists are ``dataset/train.txt`` (8,498) and ``dataset/val.txt`` (2,857).

    >>> from slrnet.data.convert_sbd import convert_sbd
    >>> summary = convert_sbd("benchmark_RELEASE", "VOCdevkit/VOC2012")
    >>> summary["train_aug"]          # 10582 on the real data

writes into the VOC root:

* ``SegmentationClassAug/<name>.png``: VOC palette PNGs for every training and validation image; SBD's mask
  where SBD has one, otherwise VOC 2012's own ``SegmentationClass/<name>.png`` (with its 255 void border) copied
  in. Validation images always keep VOC's mask (the benchmark's ground truth), also where SBD labels them, so a
  config may read train and val masks from the same folder;
* ``ImageSets/Segmentation/train_aug.txt`` = (SBD train | SBD val | VOC train) - VOC val, sorted: no validation
  image is trained on, not even through SBD's masks of it.

Idempotent and resumable: a PNG that exists, decodes and has its image's size is skipped, every file is written
under a temporary name and renamed, so an interrupted run is simply run again. ``scipy.io.loadmat`` reads the
``.mat`` files.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from slrnet.data.files import PALETTE, DatasetError, DatasetFileNotFoundError, load_mask
from slrnet.paths import entry_name, relative_name


def read_list(path: Path) -> list[str]:
    """Names of a list file, one per line (blank lines skipped); a missing file is named, and so is an entry that
    would leave the output folder (``..``, an absolute path: ``slrnet.paths.entry_name``)."""
    if not path.is_file():
        raise DatasetFileNotFoundError(f"list file not found: {path}")
    return [entry_name(line.split()[0], path) for line in path.read_text().splitlines() if line.strip()]


def write_text_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def write_png_atomic(mask: np.ndarray, path: Path) -> Path:
    """A (H, W) uint8 class-index map as a VOC palette PNG, written under a temporary name and renamed."""
    image = Image.fromarray(np.asarray(mask, dtype=np.uint8), "P")
    image.putpalette(PALETTE)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def valid_png(path: Path, size: tuple[int, int] | None = None) -> bool:
    """True if ``path`` is a complete PNG (of ``size`` = (W, H) when given): what an earlier run finished."""
    if not path.is_file():
        return False
    try:
        with Image.open(path) as image:
            image.load()
            return size is None or image.size == tuple(size)
    except (OSError, SyntaxError, ValueError):
        return False


def read_sbd_mat(path: Path) -> np.ndarray:
    """SBD's ``GTcls.Segmentation`` (H, W) uint8 from ``dataset/cls/<name>.mat``; errors name the file."""
    from scipy.io import loadmat

    try:
        gt = loadmat(str(path))["GTcls"]
        seg = np.asarray(gt["Segmentation"][0][0])
    except (KeyError, IndexError, ValueError, TypeError, OSError) as e:
        raise DatasetError(f"{path}: not an SBD class mask (expected a MATLAB file with GTcls.Segmentation; "
                           f"{type(e).__name__}: {e})") from None
    if seg.ndim != 2 or seg.size == 0 or seg.min() < 0 or seg.max() > 255:
        raise DatasetError(f"{path}: GTcls.Segmentation must be a (H, W) map of classes 0..255, got shape "
                           f"{seg.shape}")
    return seg.astype(np.uint8)


def convert_sbd(sbd_root, voc_root, mask_dir: str = "SegmentationClassAug", list_name: str = "train_aug.txt",
                progress: bool = True) -> dict:
    """Convert SBD into ``voc_root`` (module docstring); returns counts of what was written and skipped."""
    from slrnet.utils import progress as progress_bar

    sbd, voc = Path(sbd_root), Path(voc_root)
    mask_dir, list_name = relative_name(mask_dir, "--mask-dir"), relative_name(list_name, "list_name")
    cls_dir = sbd / "dataset" / "cls"
    if not cls_dir.is_dir():
        raise DatasetFileNotFoundError(f"SBD folder not found: {cls_dir} (expected --sbd-root to be "
                                       f"benchmark_RELEASE, holding dataset/cls/*.mat)")
    if not (voc / "JPEGImages").is_dir():
        raise DatasetFileNotFoundError(f"VOC images not found: {voc / 'JPEGImages'} (expected --voc-root to be "
                                       f"VOCdevkit/VOC2012)")
    sbd_names = sorted(set(read_list(sbd / "dataset" / "train.txt")) | set(read_list(sbd / "dataset" / "val.txt")))
    voc_lists = voc / "ImageSets" / "Segmentation"
    voc_train, voc_val = read_list(voc_lists / "train.txt"), read_list(voc_lists / "val.txt")
    train_aug = sorted((set(sbd_names) | set(voc_train)) - set(voc_val))

    out = voc / mask_dir
    written = skipped = copied = 0
    with_sbd, val = set(sbd_names), set(voc_val)
    quiet = {} if progress else {"disable": True}
    for name in progress_bar(sorted(set(train_aug) | val), desc="SBD -> PNG", **quiet):
        target = out / f"{name}.png"
        if name in with_sbd and name not in val:     # val keeps VOC's own masks: the benchmark's ground truth
            source = cls_dir / f"{name}.mat"
            if not source.is_file():
                raise DatasetFileNotFoundError(f"SBD lists {name} but {source} does not exist")
            if valid_png(target):
                skipped += 1
                continue
            write_png_atomic(read_sbd_mat(source), target)
            written += 1
            continue
        voc_mask = voc / "SegmentationClass" / f"{name}.png"
        if not voc_mask.is_file():
            raise DatasetFileNotFoundError(f"{name} is in VOC's train/val list but has neither an SBD mask nor "
                                           f"{voc_mask}")
        if valid_png(target):
            skipped += 1
            continue
        write_png_atomic(load_mask(voc_mask), target)
        copied += 1
    write_text_atomic(voc_lists / list_name, "".join(n + "\n" for n in train_aug))
    return {"mask_dir": str(out), "list": str(voc_lists / list_name), "train_aug": len(train_aug),
            "written_from_sbd": written, "copied_from_voc": copied, "skipped": skipped}
