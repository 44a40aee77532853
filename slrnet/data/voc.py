"""Pascal-VOC-layout segmentation datasets: VOC2012, VOC+SBD (``SegmentationClassAug``), the embedded
"shapes" dataset, or your own data in the same layout.

Layout under ``root``::

    JPEGImages/<name>.jpg                     images
    SegmentationClass/<name>.png              masks (palette or grey PNG, 255 = void); or SegmentationClassAug/
    Annotations/<name>.xml                    optional: object names, used for image labels when a mask is missing
    ImageSets/Segmentation/{train,val,...}.txt   one name per line, or "/JPEGImages/x.jpg /SegmentationClassAug/x.png"
    classes.txt                               optional: one class name per line, background first (else the 21 VOC classes)

    >>> from slrnet.data.voc import VOCSegmentation
    >>> ds = VOCSegmentation("data/shapes", split="val")
    >>> s = ds[0]   # {"image": (3,H,W) float32, "mask": (H,W) int64, "labels": (K-1,) float32, "name": str, "has_mask": bool}
    >>> ds.image_labels().shape     # (len(ds), K-1), read from the masks / XML only
    >>> ds.validate()               # scans the split; raises DatasetError listing every problem

Image-level labels (the weak supervision) are the classes present in the mask other than background
and 255, or, for images without a mask, the object names in ``Annotations/<name>.xml``. Bad input
raises ``DatasetError`` (a ValueError; ``DatasetFileNotFoundError`` is also a FileNotFoundError)
naming the file and what was expected.
"""
from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from slrnet.data.transforms import ValTransform
from slrnet.data.files import (IMAGE_EXTENSIONS, VOID, DatasetError, DatasetFileNotFoundError, load_image,
                               load_mask, read_text)

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
def read_classes_file(path) -> tuple[str, ...]:
    """``classes.txt``: one name per line, background first; blank lines ignored."""
    path = Path(path)
    names = tuple(line.strip() for line in read_text(path, "classes file").splitlines() if line.strip())
    if len(names) < 2:
        raise DatasetError(f"{path}: expected at least two class names (background first), got {list(names)}")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DatasetError(f"{path}: class names must be unique, repeated: {dup}")
    if len(names) > 255:
        raise DatasetError(f"{path}: at most 255 classes fit in a uint8 mask with 255 = void, got {len(names)}")
    return names


def read_xml_objects(path) -> list[str]:
    """Object names in a VOC ``Annotations/<name>.xml`` file."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as e:
        raise DatasetError(f"annotation {path} is not valid VOC XML ({e})") from None
    return [(obj.findtext("name") or "").strip() for obj in tree.getroot().iter("object")]


def find_image(folder: Path, name: str) -> Path:
    """``folder/name.jpg``, or the first of .jpeg / .png that exists (the .jpg path when none does)."""
    for ext in IMAGE_EXTENSIONS:
        if (folder / f"{name}{ext}").is_file():
            return folder / f"{name}{ext}"
    return folder / f"{name}.jpg"


def parse_list_file(path, root: Path, mask_dir: str) -> list[tuple[str, Path, Path]]:
    """Items (name, image path, mask path) from a list file with bare names or two-column paths."""
    items = []
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 2:
            raise DatasetError(f"{path}:{lineno}: expected a name or 'image_path mask_path', got {line!r}")
        if len(fields) == 1 and "/" not in fields[0] and not fields[0].lower().endswith(IMAGE_EXTENSIONS):
            name = fields[0]
            items.append((name, find_image(root / "JPEGImages", name), root / mask_dir / f"{name}.png"))
            continue
        image_path = root / fields[0].lstrip("/")
        name = Path(fields[0]).stem
        mask_path = root / fields[1].lstrip("/") if len(fields) == 2 else root / mask_dir / f"{name}.png"
        items.append((name, image_path, mask_path))
    if not items:
        raise DatasetError(f"{path}: the list file is empty; expected one image name per line")
    return items


class VOCSegmentation:
    """A split of a VOC-layout dataset (see the module docstring for the layout and sample format).

    Args:
        root: dataset folder.
        split: list name, read from ``ImageSets/Segmentation/<split>.txt`` unless ``list_file`` is given.
        list_file: explicit list (absolute, relative to the CWD, to ``root`` or to ``ImageSets/Segmentation``).
        mask_dir: mask folder under root; None picks ``SegmentationClassAug`` when present, else ``SegmentationClass``.
        transform: ``(PIL image, uint8 mask) -> (float32 (3,H,W), int64 (H,W))``; None = ``ValTransform()``.
        classes: class names (background first); None reads ``classes.txt`` or uses ``VOC_CLASSES``.
        cache: keep every decoded image, mask and label vector in memory after its first read (the same bits
            as reading the files again; about 3 bytes per image pixel plus 1 per mask pixel, e.g. 130 MB for
            the 2000 shapes training images). It lives in the process that reads: the training loop with
            ``num_workers: 0``, or each DataLoader worker for one epoch.
    """

    def __init__(self, root, split: str = "train", list_file=None, mask_dir: str | None = "SegmentationClass",
                 transform=None, classes=None, cache: bool = False):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetFileNotFoundError(f"dataset root not found: {self.root} (expected a folder with "
                                           f"JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/)")
        if mask_dir is None:
            mask_dir = "SegmentationClassAug" if (self.root / "SegmentationClassAug").is_dir() else "SegmentationClass"
        if not (self.root / mask_dir).is_dir():
            warnings.warn(f"mask folder {self.root / mask_dir} does not exist: split '{split}' has no pixel labels",
                          stacklevel=2)
        self.split, self.mask_dir = split, mask_dir
        self.list_file = self._find_list(list_file, split)
        if classes is not None:
            self.class_names = tuple(str(c) for c in classes)
            self.classes_source = "the classes argument"
            if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
                raise DatasetError(f"classes: expected at least two unique names (background first), got {classes}")
        elif (self.root / "classes.txt").is_file():
            self.class_names = read_classes_file(self.root / "classes.txt")
            self.classes_source = str(self.root / "classes.txt")
        else:
            self.class_names, self.classes_source = VOC_CLASSES, "the 21 default VOC classes (no classes.txt)"
        self.num_classes = len(self.class_names)
        self.transform = transform if transform is not None else ValTransform()

        items = parse_list_file(self.list_file, self.root, mask_dir)
        self.names = [n for n, _, _ in items]
        self.image_paths = [p for _, p, _ in items]
        missing = [p for p in self.image_paths if not p.is_file()]
        if missing:
            raise DatasetFileNotFoundError(f"{self.list_file} lists {len(missing)} image(s) that do not exist, "
                                           f"e.g. {missing[0]}")
        # Masks may be missing for some items (semi-supervised data, SBD-only images): labels then come from XML.
        self.mask_paths = [m if m.is_file() else None for _, _, m in items]
        self._sources = ["mask" if m is not None else
                         "xml" if (self.root / "Annotations" / f"{n}.xml").is_file() else "none"
                         for n, m in zip(self.names, self.mask_paths)]
        unlabelled = self._sources.count("none")
        if unlabelled:
            warnings.warn(f"{self.list_file}: {unlabelled} of {len(self)} items have neither a mask in "
                          f"{self.root / mask_dir} nor Annotations/<name>.xml; their image labels are all zero",
                          stacklevel=2)
        self._labels_cache: np.ndarray | None = None
        self.cache = bool(cache)
        self._raw_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = {}

    def _find_list(self, list_file, split: str) -> Path:
        if list_file is None:
            path = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
            if not path.is_file():
                have = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
                raise DatasetFileNotFoundError(f"split list not found: {path} (available splits: {have or 'none'})")
            return path
        list_file = Path(list_file).expanduser()
        for candidate in (list_file, self.root / list_file, self.root / "ImageSets" / "Segmentation" / list_file):
            if candidate.is_file():
                return candidate
        raise DatasetFileNotFoundError(f"list file not found: {list_file} (also looked under {self.root} "
                                       f"and {self.root / 'ImageSets' / 'Segmentation'})")

    def __len__(self) -> int:
        return len(self.names)

    # -- labels ----------------------------------------------------------------------------------------

    def mask_value_counts(self, mask: np.ndarray, path) -> np.ndarray:
        """Per-value pixel counts (256,); raises when a value is neither a class index nor 255."""
        counts = np.bincount(mask.ravel(), minlength=256)                    # (256,)
        bad = [v for v in np.flatnonzero(counts).tolist() if self.num_classes <= v < VOID]
        if bad:
            raise DatasetError(f"mask {path} has values {bad}, but {self.classes_source} defines "
                               f"{self.num_classes} classes (valid values 0..{self.num_classes - 1} and 255 = void); "
                               f"the class list disagrees with the masks")
        return counts

    def labels_from_xml(self, index: int) -> np.ndarray:
        labels = np.zeros(self.num_classes - 1, dtype=np.float32)          # (K-1,)
        xml = self.root / "Annotations" / f"{self.names[index]}.xml"
        if not xml.is_file():
            return labels  # no mask and no annotation: unlabelled (e.g. a test split)
        lookup = {n: i for i, n in enumerate(self.class_names)}
        for obj in read_xml_objects(xml):
            if obj not in lookup or lookup[obj] == 0:
                raise DatasetError(f"annotation {xml}: object name {obj!r} is not a foreground class of "
                                   f"{self.classes_source}: {list(self.class_names[1:])}")
            labels[lookup[obj] - 1] = 1.0
        return labels

    def labels_from_counts(self, counts: np.ndarray) -> np.ndarray:
        return (counts[1:self.num_classes] > 0).astype(np.float32)          # (K-1,) background and void dropped

    def label_source(self, index: int) -> str:
        """'mask', 'xml' or 'none': where item ``index``'s image labels come from."""
        return self._sources[index]

    def image_labels(self) -> np.ndarray:
        """Multi-hot foreground labels of every item, float32 (N, K-1), reading only masks / XML (cached)."""
        if self._labels_cache is None:
            from slrnet.utils import progress

            out = np.zeros((len(self), self.num_classes - 1), dtype=np.float32)
            for i in progress(range(len(self)), desc=f"labels {self.split}", leave=False):
                if self.mask_paths[i] is not None:
                    out[i] = self.labels_from_counts(self.mask_value_counts(load_mask(self.mask_paths[i]),
                                                                              self.mask_paths[i]))
                else:
                    out[i] = self.labels_from_xml(i)
            self._labels_cache = out
        return self._labels_cache.copy()

    # -- samples ---------------------------------------------------------------------------------------

    def load_raw(self, index: int) -> tuple[Image.Image, np.ndarray, np.ndarray, bool]:
        """(RGB image, uint8 mask (H, W) with 255 where unknown, labels (K-1,), has_mask), checked."""
        mask_path = self.mask_paths[index]
        if mask_path is None:
            image = load_image(self.image_paths[index])
            mask = np.full((image.height, image.width), VOID, dtype=np.uint8)
            return image, mask, self.labels_from_xml(index), False
        mask = load_mask(mask_path)
        image = load_image(self.image_paths[index], mask_size=mask.shape[::-1])   # the orientation the mask fits
        if mask.shape != (image.height, image.width):
            raise DatasetError(f"mask {mask_path} has size {mask.shape[1]}x{mask.shape[0]} (WxH) but its image "
                               f"{self.image_paths[index]} is {image.width}x{image.height}; expected equal sizes")
        labels = self.labels_from_counts(self.mask_value_counts(mask, mask_path))
        return image, mask, labels, True

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        index = index % len(self)
        if self.cache:
            if index not in self._raw_cache:
                image, mask, labels, has_mask = self.load_raw(index)
                self._raw_cache[index] = (np.asarray(image).copy(), mask, labels, has_mask)
            pixels, mask, labels, has_mask = self._raw_cache[index]
            image = Image.fromarray(pixels, "RGB")    # transforms make new images: the cached pixels stay as read
            labels = labels.copy()
        else:
            image, mask, labels, has_mask = self.load_raw(index)
        x, y = self.transform(image, mask)
        return {"image": x, "mask": y, "labels": torch.from_numpy(labels), "name": self.names[index],
                "has_mask": has_mask}

    def validate(self) -> dict:
        """Read every image and mask of the split; raise one DatasetError listing all problems, else
        return a summary (counts and per-class image frequencies)."""
        from slrnet.utils import progress

        problems, labels = [], np.zeros((len(self), self.num_classes - 1), dtype=np.float32)
        sources = {"mask": 0, "xml": 0, "none": 0}
        for i in progress(range(len(self)), desc=f"validate {self.split}", leave=False):
            try:
                _, _, labels[i], _ = self.load_raw(i)
                sources[self.label_source(i)] += 1
            except DatasetError as e:
                problems.append(str(e))
        if problems:
            shown = "\n  ".join(problems[:10])
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise DatasetError(f"{self.list_file}: {len(problems)} of {len(self)} items are invalid:\n  {shown}{more}")
        self._labels_cache = labels
        return {"root": str(self.root), "split": self.split, "num_images": len(self),
                "num_with_mask": sources["mask"], "numlabels_from_xml": sources["xml"],
                "num_without_labels": sources["none"], "class_names": list(self.class_names),
                "class_image_counts": {n: int(c) for n, c in zip(self.class_names[1:], labels.sum(0))}}

    def __repr__(self) -> str:
        return (f"VOCSegmentation(root={str(self.root)!r}, split={self.split!r}, items={len(self)}, "
                f"classes={self.num_classes}, mask_dir={self.mask_dir!r}, transform={self.transform!r})")
