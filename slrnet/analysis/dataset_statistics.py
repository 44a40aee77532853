"""What a VOC-layout split holds: list sizes, class image frequencies, classes per image, class co-occurrence,
pixel shares and object sizes (notebook 00). Reads masks only; the figures are in ``slrnet.viz.dataset``.

    >>> from slrnet.data import VOCSegmentation
    >>> from slrnet.analysis.dataset_statistics import dataset_statistics, reading, split_sizes
    >>> ds = VOCSegmentation("data/shapes", "train")
    >>> stats = dataset_statistics(ds, max_images=500)     # counts, frequencies, co-occurrence, object sizes
    >>> print(reading(stats))                               # what these numbers mean for weak supervision
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


def class_cooccurrence(labels) -> np.ndarray:
    """(C, C) image counts of an (M, C) 0/1 image-label matrix: entry (i, j) = images holding both class i and
    class j; the diagonal = images holding class i."""
    labels = (np.asarray(labels, dtype=np.float64) > 0.5).astype(np.int64)
    if labels.ndim != 2:
        raise ValueError(f"class_cooccurrence: expected an (images, classes) label matrix, got shape {labels.shape}")
    return labels.T @ labels


def conditional_cooccurrence(counts) -> np.ndarray:
    """P(column class in the image | row class in the image) from ``class_cooccurrence`` counts (NaN rows for
    classes in no image)."""
    counts = np.asarray(counts, dtype=np.float64)
    diag = np.diag(counts)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(diag > 0, counts / np.where(diag > 0, diag, 1), np.nan)


def classes_per_image(labels) -> dict[int, float]:
    """Share of images holding n foreground classes, for every n from 0 to the most found ({n: share})."""
    n = (np.asarray(labels, dtype=np.float64) > 0.5).sum(1).astype(np.int64)
    if n.size == 0:
        return {}
    counts = np.bincount(n)
    return {int(k): float(c / n.size) for k, c in enumerate(counts)}


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
        "classes_per_image": classes_per_image(labels),
        "cooccurrence": class_cooccurrence(labels).tolist(),       # (K-1, K-1) image counts, foreground classes
        "pixel_share": {n: float(pixel_counts[c] / max(1, pixel_counts.sum())) for c, n in enumerate(names)}
        | {"void": float(pixel_counts[k] / max(1, pixel_counts.sum()))},
        "mean_object_area_fraction": mean_area,
        "mean_foreground_fraction": float(fg_per_image.mean()) if len(fg_per_image) else None,
        "per_image": {"indices": indices, "labels": labels, "area_fraction": area, "has_mask": with_mask},
    }


def summary(stats: dict) -> dict:
    """``dataset_statistics`` without the per-image arrays (for metrics.json)."""
    return {key: value for key, value in stats.items() if key != "per_image"}


def crops_losing_labels(dataset: VOCSegmentation, indices, transform, crops_per_image: int = 20,
                        seed: int = 0) -> dict:
    """How often a training crop drops a class its image label names (the label is the whole image's, the crop
    sees only part of it): ``crops_per_image`` crops of each of ``indices`` (masked images only) drawn with
    ``transform`` (a ``TrainTransform``, seeded here; the global RNG is untouched). Returns ``{"num_crops",
    "crops_losing_a_class" (share of crops with a labelled class absent from the crop's mask), "labels_lost"
    (share of (crop, labelled class) pairs whose class is absent), "crop_area" ([low, high] of the transform)}``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    saved = transform.generator
    transform.generator = generator
    crops = lost_crops = pairs = lost_pairs = 0
    try:
        for i in indices:
            image, mask, labels, has_mask = dataset.load_raw(int(i))
            if not has_mask:
                continue
            named = set((np.flatnonzero(np.asarray(labels) > 0.5) + 1).tolist())
            for _ in range(crops_per_image):
                _, y = transform(image, mask)
                seen = set(np.unique(y.numpy()).tolist())
                missing = named - seen
                crops += 1
                pairs += len(named)
                lost_crops += bool(missing)
                lost_pairs += len(missing)
    finally:
        transform.generator = saved
    return {"num_crops": crops, "crops_losing_a_class": float(lost_crops / crops) if crops else None,
            "labels_lost": float(lost_pairs / pairs) if pairs else None, "crop_area": list(transform.scale)}


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _share_list(shares: dict[int, float]) -> str:
    return ", ".join(f"{n} in {_pct(v)}" for n, v in shares.items() if v > 0)


def reading(stats: dict, strong_pair: float = 0.9) -> str:
    """What ``dataset_statistics`` numbers mean for learning from image labels, worded from the numbers.

    Four paragraphs: classes per image (how much an image label pins down), pixel shares (how much
    background outweighs the objects in a pixel loss, and the void share), object sizes, and class
    co-occurrence (the pair seen together most often against chance; a pair above ``strong_pair`` is
    named as hard to separate from image labels). Every number is computed from ``stats``."""
    out = []
    per_image = {int(k): float(v) for k, v in stats.get("classes_per_image", {}).items()}
    mean = stats.get("labels_per_image_mean", 0.0)
    if per_image:
        one_two = per_image.get(1, 0.0) + per_image.get(2, 0.0)
        many = sum(v for k, v in per_image.items() if k >= 3)
        mode = max(per_image, key=per_image.get)
        text = (f"Classes per image ({stats['num_scanned']} images scanned): {_share_list(per_image)} of them "
                f"(mean {mean:.2f}, most often {mode}). ")
        if one_two > 0.5:
            text += (f"Most images ({_pct(one_two)}) hold one or two classes, so an image label leaves few candidates "
                     "for each object: the classifier sees most classes alone or with one other.")
        else:
            text += (f"Most images ({_pct(many)}) hold three or more classes, so an image label leaves many candidates "
                     "for each object: the network must work out from many images which pixels go with which label.")
        if per_image.get(0, 0.0) > 0:
            text += f" {_pct(per_image[0])} of the images hold no object at all (background only)."
        out.append(text)

    share = stats.get("pixel_share", {})
    names = stats.get("class_names", [])
    if share and names:
        bg, void = share.get(names[0], 0.0), share.get("void", 0.0)
        fg = {n: share[n] for n in names[1:] if n in share}
        fg_total = sum(fg.values())
        text = (f"Pixels: {names[0]} {_pct(bg)}, objects {_pct(fg_total)} (all classes together), void {_pct(void)}. ")
        if fg_total > 0:
            present = [v for v in fg.values() if v > 0]
            per_class = fg_total / max(1, len(present))
            text += (f"{names[0].capitalize()} outweighs all object classes together {bg / fg_total:.1f} to 1 and an "
                     f"average object class {bg / per_class:.0f} to 1, so a pixel loss without class weights is "
                     f"{'dominated by ' + names[0] if bg > fg_total else 'not dominated by ' + names[0]}; a model that "
                     f"predicts {names[0]} everywhere would already be right on {_pct(bg / max(1e-12, 1 - void))} of "
                     "the scored pixels.")
        else:
            text += "No object pixel was found."
        if void > 0:
            text += (f" Void ({_pct(void)}) marks pixels the annotation leaves ambiguous (in VOC-style masks, bands "
                     "along object borders): they are left out of the metric and of every loss on masks.")
        out.append(text)

    sizes = {n: v for n, v in stats.get("mean_object_area_fraction", {}).items() if v is not None}
    if sizes:
        small, large = min(sizes, key=sizes.get), max(sizes, key=sizes.get)
        fg_mean = stats.get("mean_foreground_fraction")
        text = (f"Object size (share of its image, where present): smallest on average {small} ({_pct(sizes[small])}), "
                f"largest {large} ({_pct(sizes[large])})")
        text += f"; objects cover {_pct(fg_mean)} of an average image." if fg_mean is not None else "."
        out.append(text)

    counts = np.asarray(stats.get("cooccurrence", []), dtype=np.float64)
    fg_names = names[1:]
    m = stats.get("num_scanned", 0)
    if counts.ndim == 2 and counts.shape[0] >= 2 and m and counts.shape[0] == len(fg_names):
        cond = conditional_cooccurrence(counts)
        base = np.diag(counts) / m                                           # P(class j in an image)
        off = cond.copy()
        np.fill_diagonal(off, np.nan)
        if np.isfinite(off).any():
            excess = off - base[None, :]                                     # P(j | i) - P(j)
            lo, hi = np.unravel_index(np.nanargmin(off), off.shape), np.unravel_index(np.nanargmax(off), off.shape)
            big = np.unravel_index(np.nanargmax(np.abs(excess)), excess.shape)
            text = (f"Co-occurrence: of the images holding one class, {_pct(off[lo])} to {_pct(off[hi])} also hold a "
                    f"given other class (least: {fg_names[lo[1]]} in the images with {fg_names[lo[0]]}; most: "
                    f"{fg_names[hi[1]]} in the images with {fg_names[hi[0]]}), against {_pct(np.nanmin(base))} to "
                    f"{_pct(np.nanmax(base))} of all images; the largest departure from chance is {fg_names[big[1]]} in "
                    f"the images with {fg_names[big[0]]} ({100 * excess[big]:+.1f} points). ")
            if abs(excess[big]) < 0.1:
                text += "Classes appear together about as often as chance has it: no class has a fixed companion. "
            elif np.nanmax(excess) < 0:
                text += ("Every pair appears together less often than chance: an image holds only a few objects, so "
                         "one class leaves fewer places for the others. ")
            rows, cols = np.nonzero(np.nan_to_num(off) > strong_pair)
            strong = [(fg_names[r], fg_names[c], off[r, c]) for r, c in zip(rows, cols)]
            if strong:
                text += ("Hard to separate from image labels alone: " +
                         "; ".join(f"{r} comes with {c} in {_pct(v)} of its images" for r, c, v in strong) + ".")
            else:
                text += (f"No class comes with another in more than {_pct(strong_pair)} of its images, so image labels "
                         "can tell every class from every other (a class always seen with the same companion could not "
                         "be told apart from it).")
            out.append(text)
    return "\n\n".join(out)


def split_sizes(root) -> dict:
    """Number of names in every ``ImageSets/Segmentation/*.txt`` list of a VOC-layout root."""
    folder = Path(root) / "ImageSets" / "Segmentation"
    return {p.stem: sum(1 for line in p.read_text().splitlines() if line.strip())
            for p in sorted(folder.glob("*.txt"))}
