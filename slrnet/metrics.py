"""Segmentation metrics from a confusion matrix accumulated over a whole split.

Rows are ground truth, columns are predictions: ``M[g, p]`` counts pixels of true class g predicted
as p. Everything follows from it (TP_c = M[c, c], FP_c = column sum - TP, FN_c = row sum - TP):

    IoU_c = TP / (TP + FP + FN),  precision_c = TP / (TP + FP),  recall_c = TP / (TP + FN)
    mIoU = mean_c IoU_c,  pixel accuracy = trace / total,  mean accuracy = mean_c recall_c

Void pixels (ground truth == ``ignore_index``, 255 in VOC) are not counted (METHOD.md section 5).
A prediction equal to ``ignore_index`` (e.g. the ignored pixels of a pseudo label) is not counted
either; such pixels are tallied in ``ignored_predictions`` so the summary says how many there were.

Absent classes -- the explicit choice: a class that appears in neither the ground truth nor the
predictions of the whole split has IoU 0/0. It is reported as NaN (``None`` in ``summary``), listed
under ``absent_classes``, and left out of the mIoU mean (``np.nanmean``), because scoring it 0 or 1
would reward or punish a model for a class the split never asks about. The same holds for precision
(class never predicted) and recall / mean accuracy (class never in the ground truth). A class that is
in the ground truth but never predicted, or predicted but never present, has IoU 0 and *does* count.
The official VOC protocol averages over all 21 classes; on VOC val every class is present, so the
two agree there.

    >>> cm = ConfusionMatrix(21)
    >>> cm.update(pred, gt)                  # any shape, numpy or torch, integer labels
    >>> cm.miou(), cm.iou(), cm.pixel_accuracy()
    >>> print(cm.format_table(class_names))  # per-class IoU / precision / recall
    >>> cm.summary(class_names)              # JSON-ready dict
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")


def default_class_names(num_classes: int) -> list[str]:
    """The VOC names for 21 classes, ``class_<i>`` (background first) otherwise."""
    if num_classes == len(VOC_CLASSES):
        return list(VOC_CLASSES)
    return ["background"] + [f"class_{i}" for i in range(1, num_classes)]


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, on any device
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0 (no warnings)."""
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


class ConfusionMatrix:
    """Accumulates a (K, K) int64 confusion matrix over prediction / ground-truth pairs."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if num_classes < 1:
            raise ValueError(f"ConfusionMatrix: num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)  # (K_gt, K_pred)
        self.ignored_predictions = 0   # pixels with a valid ground truth but an ignore_index prediction

    def reset(self) -> None:
        self.matrix[:] = 0
        self.ignored_predictions = 0

    def update(self, pred, gt) -> "ConfusionMatrix":
        """Add one prediction / ground-truth pair (same shape, any number of dims)."""
        pred, gt = _to_numpy(pred), _to_numpy(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"ConfusionMatrix.update: prediction shape {pred.shape} != ground truth {gt.shape}")
        pred, gt = pred.reshape(-1).astype(np.int64), gt.reshape(-1).astype(np.int64)
        K = self.num_classes
        valid = gt != self.ignore_index
        bad_gt = valid & ((gt < 0) | (gt >= K))
        if bad_gt.any():
            raise ValueError(f"ConfusionMatrix.update: ground-truth values {np.unique(gt[bad_gt])[:10].tolist()} "
                             f"are outside [0, {K}) and are not the ignore index {self.ignore_index}")
        pred_void = valid & (pred == self.ignore_index)
        self.ignored_predictions += int(pred_void.sum())
        valid &= ~pred_void
        bad_pred = valid & ((pred < 0) | (pred >= K))
        if bad_pred.any():
            raise ValueError(f"ConfusionMatrix.update: predicted values {np.unique(pred[bad_pred])[:10].tolist()} "
                             f"are outside [0, {K})")
        # one bincount over the joint index g*K + p fills the whole matrix at once
        counts = np.bincount(gt[valid] * K + pred[valid], minlength=K * K)
        self.matrix += counts.reshape(K, K)
        return self

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add another matrix (e.g. from a worker or another GPU) into this one."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"ConfusionMatrix.merge: {other.num_classes} classes != {self.num_classes}")
        self.matrix += other.matrix
        self.ignored_predictions += other.ignored_predictions
        return self

    # ------------------------------------------------------------------ per-class quantities
    @property
    def true_positives(self) -> np.ndarray:
        return np.diag(self.matrix)

    @property
    def gt_pixels(self) -> np.ndarray:      # (K,) row sums
        return self.matrix.sum(1)

    @property
    def pred_pixels(self) -> np.ndarray:    # (K,) column sums
        return self.matrix.sum(0)

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def absent(self) -> np.ndarray:
        """(K,) bool: classes in neither the ground truth nor the predictions."""
        return (self.gt_pixels == 0) & (self.pred_pixels == 0)

    def iou(self) -> np.ndarray:
        tp = self.true_positives
        return _safe_divide(tp, self.gt_pixels + self.pred_pixels - tp)

    def precision(self) -> np.ndarray:
        return _safe_divide(self.true_positives, self.pred_pixels)

    def recall(self) -> np.ndarray:
        return _safe_divide(self.true_positives, self.gt_pixels)

    # ------------------------------------------------------------------ scalars
    def miou(self) -> float:
        """Mean IoU over the classes present in the ground truth or the predictions (NaN if none)."""
        return _nanmean(self.iou())

    def pixel_accuracy(self) -> float:
        total = self.total
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def mean_accuracy(self) -> float:
        """Mean per-class recall over the classes present in the ground truth."""
        return _nanmean(self.recall())

    # ------------------------------------------------------------------ reports
    def _names(self, class_names: Sequence[str] | None) -> list[str]:
        names = list(class_names) if class_names is not None else default_class_names(self.num_classes)
        if len(names) != self.num_classes:
            raise ValueError(f"class_names has {len(names)} entries, expected {self.num_classes}")
        return names

    def summary(self, class_names: Sequence[str] | None = None) -> dict:
        """JSON-ready metrics; NaN (absent / undefined) values become ``None``."""
        def clean(v: float):
            return None if np.isnan(v) else float(v)

        names = self._names(class_names)
        iou, prec, rec = self.iou(), self.precision(), self.recall()
        return {
            "miou": clean(self.miou()),
            "pixel_accuracy": clean(self.pixel_accuracy()),
            "mean_accuracy": clean(self.mean_accuracy()),
            "num_classes": self.num_classes,
            "num_pixels": self.total,
            "ignored_predictions": self.ignored_predictions,
            "absent_classes": [n for n, a in zip(names, self.absent()) if a],
            "per_class": {n: {"iou": clean(iou[c]), "precision": clean(prec[c]), "recall": clean(rec[c]),
                              "gt_pixels": int(self.gt_pixels[c]), "pred_pixels": int(self.pred_pixels[c])}
                          for c, n in enumerate(names)},
        }

    def format_table(self, class_names: Sequence[str] | None = None, title: str | None = None) -> str:
        """A plain-text table: one row per class (IoU / precision / recall in %), then the means."""
        names = self._names(class_names)
        iou, prec, rec = self.iou() * 100, self.precision() * 100, self.recall() * 100
        width = max(12, max(len(n) for n in names))

        def pct(v: float) -> str:
            return f"{'n/a':>9}" if np.isnan(v) else f"{v:9.2f}"

        lines = [title] if title else []
        header = f"{'class':<{width}} {'IoU':>9} {'precision':>9} {'recall':>9} {'gt pixels':>11}"
        lines += [header, "-" * len(header)]
        for c, n in enumerate(names):
            lines.append(f"{n:<{width}} {pct(iou[c])} {pct(prec[c])} {pct(rec[c])} {int(self.gt_pixels[c]):>11d}")
        lines.append("-" * len(header))
        lines.append(f"{'mIoU':<{width}} {pct(self.miou() * 100)}")
        lines.append(f"{'pixel acc':<{width}} {pct(self.pixel_accuracy() * 100)}")
        lines.append(f"{'mean acc':<{width}} {pct(self.mean_accuracy() * 100)}")
        absent = [n for n, a in zip(names, self.absent()) if a]
        if absent:
            lines.append(f"absent from ground truth and predictions (n/a, not in the mean): {', '.join(absent)}")
        if self.ignored_predictions:
            lines.append(f"pixels predicted as ignore ({self.ignore_index}) and not scored: {self.ignored_predictions}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, pixels={self.total}, miou={self.miou():.4f})"
