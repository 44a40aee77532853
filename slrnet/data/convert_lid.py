"""L2ID (the LID challenge's weakly supervised track, ILSVRC-DET images, 200 classes) -> a VOC-layout root.

The layout the authors train from (their ``datasets/lid.py``), under one root:

    Annotations/cls_labels.npy         a pickled dict: 'files' (N relative paths, no extension), 'labels' (N, 200)
    Data/<file>.JPEG                   the training images (ILSVRC-DET)
    val.txt, test.txt                  names of the validation / test images
    LID_track1/{val,test}/<name>.JPEG  their images
    track1_val_annotations_raw/<name>.png   validation masks: class index 0..200, 255 = ambiguous

``convert_lid(root, out)`` writes one data path for the library (``VOCSegmentation``):

    JPEGImages/<name>.jpg              symbolic links to the images (<name> = the file's base name)
    Annotations/<name>.xml             VOC XML with one <object><name> per image label (training images)
    SegmentationClass/<name>.png       links to the validation masks
    ImageSets/Segmentation/{train,val,test}.txt, classes.txt (background + the 200 classes)

Training images have image labels only (from the XML); validation images have masks. ``cls_labels.npy`` is a
pickle; it is read by an unpickler that accepts only numpy arrays, lists, dicts and strings, so a crafted file
cannot run code. Idempotent: what exists is kept, so an interrupted conversion is run again.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from slrnet.data.convert_sbd import read_list, write_text_atomic
from slrnet.data.files import DatasetError, DatasetFileNotFoundError
from slrnet.paths import entry_name

L2ID_CLASSES = tuple((Path(__file__).with_name("l2id_classes.txt")).read_text().split())


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers; refuses any other global (no code from the file runs)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("builtins", "list"), ("builtins", "dict")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_cls_labels(path: Path) -> tuple[list[str], np.ndarray]:
    """('files', 'labels') of ``Annotations/cls_labels.npy``, read without running code from the file."""
    if not path.is_file():
        raise DatasetFileNotFoundError(f"L2ID image labels not found: {path}")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
            if dtype != object or shape != ():
                raise ValueError(f"expected a pickled dict (a 0-d object array), got {dtype} {shape}")
            data = _NumpyOnlyUnpickler(io.BytesIO(f.read())).load()     # the 0-d object array itself
        data = data.item() if isinstance(data, np.ndarray) else data
        files, labels = list(data["files"]), np.asarray(data["labels"], dtype=np.float32)
    except (ValueError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as e:
        raise DatasetError(f"{path}: not an L2ID cls_labels.npy (a dict with 'files' and 'labels'; {e})") from None
    if labels.shape != (len(files), len(L2ID_CLASSES) - 1):
        raise DatasetError(f"{path}: 'labels' has shape {labels.shape}, expected ({len(files)}, "
                           f"{len(L2ID_CLASSES) - 1})")
    return [str(f) for f in files], labels


def _link(source: Path, link: Path) -> None:
    if not source.is_file():
        raise DatasetFileNotFoundError(f"{source} is listed but does not exist")
    if link.is_symlink() and not link.exists():             # a dangling link: the download moved
        link.unlink()
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(source.resolve(), link)


def _voc_xml(name: str, classes: list[str]) -> str:
    objects = "".join(f"  <object><name>{escape(c)}</name></object>\n" for c in classes)
    return f"<annotation>\n  <filename>{escape(name)}.jpg</filename>\n{objects}</annotation>\n"


def convert_lid(lid_root, out_root, progress: bool = True) -> dict:
    """Convert the L2ID layout (module docstring) into ``out_root``; returns counts."""
    from slrnet.utils import progress as progress_bar

    root, out = Path(lid_root), Path(out_root)
    files, labels = load_cls_labels(root / "Annotations" / "cls_labels.npy")
    files = [entry_name(f, root / "Annotations" / "cls_labels.npy", "file") for f in files]
    names = [Path(f).name for f in files]
    if len(set(names)) != len(names):
        raise DatasetError(f"{root / 'Annotations' / 'cls_labels.npy'}: image base names repeat; expected unique "
                           f"ILSVRC-DET names")
    split_lists = {split: read_list(root / f"{split}.txt") for split in ("val", "test")     # every name checked first
                   if (root / f"{split}.txt").is_file()}
    kw = {} if progress else {"disable": True}
    for name, file, row in progress_bar(list(zip(names, files, labels)), desc="L2ID train", **kw):
        _link(root / "Data" / f"{file}.JPEG", out / "JPEGImages" / f"{name}.jpg")
        xml = out / "Annotations" / f"{name}.xml"
        if not xml.is_file():
            write_text_atomic(xml, _voc_xml(name, [L2ID_CLASSES[i + 1] for i in np.flatnonzero(row > 0.5)]))
    counts = {"train": len(names)}
    lists = {"train": names}
    for split, split_names in split_lists.items():
        for name in progress_bar(split_names, desc=f"L2ID {split}", **kw):
            _link(root / "LID_track1" / split / f"{name}.JPEG", out / "JPEGImages" / f"{name}.jpg")
            if split == "val":
                _link(root / "track1_val_annotations_raw" / f"{name}.png", out / "SegmentationClass" / f"{name}.png")
        lists[split], counts[split] = split_names, len(split_names)
    for split, split_names in lists.items():
        write_text_atomic(out / "ImageSets" / "Segmentation" / f"{split}.txt", "".join(n + "\n" for n in split_names))
    write_text_atomic(out / "classes.txt", "".join(c + "\n" for c in L2ID_CLASSES))
    return {"out_root": str(out), **counts, "classes": len(L2ID_CLASSES)}
