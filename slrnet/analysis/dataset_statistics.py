"""What a VOC-layout split holds: list sizes, class image frequencies, pixel shares and object sizes
(notebook 00). Reads masks only; the figures are in ``slrnet.viz.dataset``.

    >>> from slrnet.data import VOCSegmentation
    >>> from slrnet.analysis.dataset_statistics import dataset_statistics, split_sizes
    >>> ds = VOCSegmentation("data/shapes", "train")
    >>> stats = dataset_statistics(ds, max_images=500)     # counts, frequencies, object sizes
    >>> split_sizes("data/shapes")                          # {"train": ..., "val": ...}
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from slrnet.data.files import VOID, load_mask
from slrnet.data.voc import VOCSegmentation


def _subset(n: int, max_images: int | None) -> np.ndarray:
    """Evenly spaced indices so a capped scan still covers the whole list."""
    if not max_images or max_images >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_images).round().astype(np.int64))


def dataset_statistics(dataset: VOCSegmentation, max_images: int | None = None) -> dict:
    """Class image frequencies, pixel shares and object sizes of a split (reads masks only).

    Returns a JSON-ready dict plus ``per_image`` (arrays for plots): ``area_fraction`` (M, K) is the
    share of each image's pixels per class for the M scanned images with a mask (NaN where absent).
    """
    names = dataset.class_names
    k = dataset.num_classes
    indices = _subset(len(dataset), max_images)
    labels = np.zeros((len(indices), k - 1), dtype=np.float32)              # (M, K-1)
    area = np.full((len(indices), k), np.nan)                               # (M, K)
    pixel_counts = np.zeros(k + 1, dtype=np.int64)                          # K classes + void
    with_mask = np.zeros(len(indices), dtype=bool)
    for row, i in enumerate(indices.tolist()):
        path = dataset.mask_paths[i]
        if path is None:
            labels[row] = dataset.labels_from_xml(i)
            continue
        mask = load_mask(path)
        counts = dataset.mask_value_counts(mask, path)                     # (256,)
        labels[row] = dataset.labels_from_counts(counts)
        pixel_counts[:k] += counts[:k]
        pixel_counts[k] += counts[VOID]
        present = counts[:k] > 0
        area[row, present] = counts[:k][present] / mask.size
        with_mask[row] = True
    image_counts = labels.sum(0).astype(np.float64)
    m = max(1, len(indices))
    fg_area = area[with_mask][:, 1:] if with_mask.any() else np.zeros((0, k - 1))
    mean_area = {names[c + 1]: (float(np.nanmean(fg_area[:, c])) if np.isfinite(fg_area[:, c]).any() else None)
                 for c in range(k - 1)}
    fg_per_image = np.nansum(fg_area, axis=1) if len(fg_area) else np.zeros(0)
    return {
        "split": dataset.split,
        "num_images": len(dataset),
        "num_scanned": int(len(indices)),
        "num_scanned_with_mask": int(with_mask.sum()),
        "class_names": list(names),
        "class_image_counts": {names[c + 1]: int(image_counts[c]) for c in range(k - 1)},
        "class_image_frequency": {names[c + 1]: float(image_counts[c] / m) for c in range(k - 1)},
        "labels_per_image_mean": float(labels.sum(1).mean()) if len(indices) else 0.0,
        "pixel_share": {n: float(pixel_counts[c] / max(1, pixel_counts.sum())) for c, n in enumerate(names)}
        | {"void": float(pixel_counts[k] / max(1, pixel_counts.sum()))},
        "mean_object_area_fraction": mean_area,
        "mean_foreground_fraction": float(fg_per_image.mean()) if len(fg_per_image) else None,
        "per_image": {"indices": indices, "labels": labels, "area_fraction": area, "has_mask": with_mask},
    }


def summary(stats: dict) -> dict:
    """``dataset_statistics`` without the per-image arrays (for metrics.json)."""
    return {key: value for key, value in stats.items() if key != "per_image"}


def split_sizes(root) -> dict:
    """Number of names in every ``ImageSets/Segmentation/*.txt`` list of a VOC-layout root."""
    folder = Path(root) / "ImageSets" / "Segmentation"
    return {p.stem: sum(1 for line in p.read_text().splitlines() if line.strip())
            for p in sorted(folder.glob("*.txt"))}
