"""Evaluation of a trained model on a val split, as notebook 05 reports it (METHOD.md section 5).

Four settings from two network passes over the split: single scale (scale 1, no flip) and multi-scale
+ flip (the config's ``test.scales``), each without and with the dense CRF. Both CRF and no-CRF
predictions come from the same pass (``slrnet.infer.Predictor.iter_dataset`` runs the CRF in worker
processes while the network goes on). Classes are kept by the **predicted** class scores (sigmoid > fp_cut,
top-k), never by ground-truth image labels (``use_cls_label`` is off: that would leak labels on val).

    >>> from slrnet.analysis import evaluation_report as R
    >>> from slrnet.analysis.trained_model import evaluation_set, load_or_train
    >>> from slrnet.infer import TestConfig
    >>> model, cfg, info = load_or_train(None, "outputs/05_evaluate", profile="quick")   # 02's model or a short run
    >>> dataset = evaluation_set(cfg, split="val", num_classes=model.num_classes)
    >>> result = R.evaluate_model(model, dataset, TestConfig.from_config(cfg, apply_crf=True))
    >>> print(R.markdown_table(result.rows()))        # the 4-row mIoU table
    >>> result.metrics()                               # val_miou, val_miou_crf, ... for metrics.json

Per-image IoU (for the best / median / worst examples) is the mean IoU over the classes present in that image's
ground truth or prediction, the per-image analogue of ``ConfusionMatrix.miou``.

Readings (text the notebook prints, every number computed from the result):

    >>> print(R.crf_reading(result))      # CRF gain in mIoU, per class, per image, border band vs interior
    >>> print(R.error_reading(result))    # where the confusion matrix's errors are: with background or between objects
    >>> median = R.median_examples(result, 4)                  # images around the median per-image IoU
    >>> maps = R.predict_examples(model, dataset, test, [e["index"] for e in median])   # no-CRF and CRF maps again
    >>> R.failure_mode(pred, gt, num_classes, class_names)     # missed object / wrong class / merged / leak ...
"""
from __future__ import annotations

import math

import heapq
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from slrnet.infer import Predictor, TestConfig

# METHOD.md section 6: numbers reported in the paper on PASCAL VOC 2012 (not measured by this library).
PAPER_VOC_RESULTS = (
    {"setting": "weakly supervised, single stage, + CRF", "backbone": "WideResNet-38", "voc_val_miou": 67.2,
     "note": "VOC test 67.6; COCO val 35.0"},
    {"setting": "weakly supervised, two stage (pseudo labels -> DeepLabV3+)", "backbone": "ResNet-101",
     "voc_val_miou": 69.3, "note": ""},
    {"setting": "semi, 1464 pixel labels + image labels on the rest", "backbone": "WideResNet-38",
     "voc_val_miou": 75.1, "note": ""},
    {"setting": "semi, 1464 pixel labels + rest unlabelled", "backbone": "WideResNet-38", "voc_val_miou": 72.4,
     "note": ""},
    {"setting": "predecessor single-stage baseline (no CVLR), + CRF", "backbone": "WideResNet-38",
     "voc_val_miou": 62.7, "note": ""},
)

# Setting keys -> metrics.json names.
METRIC_NAMES = {"multi_scale": "val_miou", "multi_scale_crf": "val_miou_crf",
                "single_scale": "val_miou_single_scale", "single_scale_crf": "val_miou_single_scale_crf"}


# ----------------------------------------------------------------------------- per-image scores

def image_iou(pred, gt, num_classes: int, ignore_index: int = 255) -> float:
    """Mean IoU of one image over the classes in its ground truth or prediction (NaN if nothing is scored)."""
    from slrnet.metrics import ConfusionMatrix

    return ConfusionMatrix(num_classes, ignore_index).update(pred, gt).miou()


class ExtremeExamples:
    """The ``k`` highest- and ``k`` lowest-scoring items of a stream, without keeping the rest.

    Both lists rank items by one total order, score then index (on equal scores the earlier index ranks
    higher): the best are its top ``k``, the worst its bottom ``k``. So ties go to the earlier index in
    the best list and to the later one in the worst list, and the two lists never share an item when
    ``2 k`` <= the number of items (``evaluate_model`` keeps k <= half the images). NaN scores are skipped.
    """

    def __init__(self, k: int):
        if k < 0:
            raise ValueError(f"ExtremeExamples: k must be >= 0, got {k}")
        self.k = int(k)
        self._best: list = []    # min-heap on (score, -index): the root is the weakest of the best
        self._worst: list = []   # min-heap on (-score, index): the root is the strongest of the worst
        self._added = 0

    def add(self, index: int, score: float, payload=None) -> None:
        if self.k == 0 or not np.isfinite(score):
            return
        self._added += 1
        for heap, key in ((self._best, (score, -index)), (self._worst, (-score, index))):
            item = (key, -self._added, index, payload)   # the counter settles an index added twice
            if len(heap) < self.k:
                heapq.heappush(heap, item)
            elif key > heap[0][0]:
                heapq.heapreplace(heap, item)

    @staticmethod
    def _items(heap) -> list[dict]:
        ordered = sorted(heap, key=lambda item: item[:2], reverse=True)
        return [{"index": index, "payload": payload} for _, _, index, payload in ordered]

    def best(self) -> list[dict]:
        """``[{"index", "payload"}]``, highest score first (ties: earlier index first)."""
        return self._items(self._best)

    def worst(self) -> list[dict]:
        """``[{"index", "payload"}]``, lowest score first (ties: later index first)."""
        return self._items(self._worst)


# ----------------------------------------------------------------------------- the four settings

@dataclass(frozen=True)
class InferencePass:
    key: str                  # "single_scale" / "multi_scale"; "+_crf" names the CRF variant
    label: str
    scales: tuple[float, ...]
    flip: bool


def inference_passes(scales: Sequence[float]) -> list[InferencePass]:
    return [InferencePass("single_scale", "single scale", (1.0,), False),
            InferencePass("multi_scale", "multi-scale + flip", tuple(float(s) for s in scales), True)]


@dataclass
class EvaluationResult:
    class_names: list[str]
    passes: list[InferencePass]
    apply_crf: bool
    confusion: dict            # setting key -> ConfusionMatrix
    image_ious: dict           # setting key -> [per-image IoU] in dataset order (NaN: nothing scored)
    names: list[str]
    examples: dict             # {"setting", "best", "worst"}; entries {"index", "name", "iou", "pred"}
    seconds: dict              # pass key -> wall seconds (network and overlapped CRF)
    settings: dict = field(default_factory=dict)
    predictions: dict | None = None  # setting key -> [uint8 (H, W)] per image, only with keep_predictions
    regions: dict = field(default_factory=dict)       # setting key -> {"border"|"interior": [correct, scored]}
    # pass key -> {"border"|"interior": {"fixed", "broken", "changed", "scored"}} (pixels the CRF changed)
    crf_changes: dict = field(default_factory=dict)
    failure_modes: list = field(default_factory=list)  # failure_mode(...) per image, final setting (None: unscored)
    border_width: int = 0                              # the border band: pixels within this many of a label border

    @property
    def num_images(self) -> int:
        return len(self.names)

    @property
    def final_key(self) -> str:
        """The setting the paper reports and the examples come from: multi-scale + flip (+ CRF if applied)."""
        return self.examples["setting"]

    def label(self, key: str) -> str:
        """Display name of a setting key, e.g. "multi-scale + flip + CRF"."""
        base = next(p.label for p in self.passes if key in (p.key, p.key + "_crf"))
        return base + (" + CRF" if key.endswith("_crf") else "")

    def keys(self) -> list[str]:
        return [p.key + suffix for p in self.passes for suffix in ("", "_crf") if suffix == "" or self.apply_crf]

    def miou(self, key: str) -> float | None:
        cm = self.confusion.get(key)
        return None if cm is None or np.isnan(cm.miou()) else float(cm.miou())

    def per_class_iou(self, key: str) -> dict[str, float | None]:
        iou = self.confusion[key].iou()
        return {n: None if np.isnan(v) else float(v) for n, v in zip(self.class_names, iou)}

    def setting_mious(self) -> dict[str, dict[str, float | None]]:
        """{pass label: {"no CRF": mIoU, "CRF": mIoU}} for ``slrnet.viz.evaluation.plot_setting_comparison``."""
        return {p.label: {"no CRF": self.miou(p.key), **({"CRF": self.miou(p.key + "_crf")} if self.apply_crf else {})}
                for p in self.passes}

    def class_filter_note(self) -> str:
        """How classes were kept in every setting (the same for all rows of ``rows()``)."""
        return (f"classes kept by the predicted scores (sigmoid > {self.settings.get('fp_cut')}, "
                f"top-{self.settings.get('top_k')}), background ** {self.settings.get('bg_pow')}; "
                f"use_cls_label off (no ground-truth image labels)")

    def rows(self) -> list[dict]:
        """One row per setting for the results table (mIoU and pixel accuracy in %; see class_filter_note)."""
        rows = []
        for p in self.passes:
            for crf in ((False, True) if self.apply_crf else (False,)):
                key = p.key + ("_crf" if crf else "")
                cm = self.confusion[key]
                rows.append({"setting": p.label + (" + CRF" if crf else ""), "metrics.json": METRIC_NAMES[key],
                             "scales": ", ".join(f"{s:g}" for s in p.scales), "flip": "yes" if p.flip else "no",
                             "CRF": "yes" if crf else "no", "mIoU (%)": round(100 * cm.miou(), 2),
                             "pixel acc (%)": round(100 * cm.pixel_accuracy(), 2)})
        return rows

    def metrics(self) -> dict:
        """metrics.json entries: the four mIoUs (None where not computed), timing, settings, examples."""
        out = {name: self.miou(key) for key, name in METRIC_NAMES.items()}
        total = sum(self.seconds.values())
        out["timing"] = {f"{k}_seconds": round(v, 3) for k, v in self.seconds.items()}
        out["timing"]["inference_seconds"] = round(total, 3)
        out["timing"].update({f"{k}_images_per_second": round(self.num_images / v, 3)
                              for k, v in self.seconds.items() if v > 0})
        out["num_images"] = self.num_images
        out["num_scored_images"] = int(np.isfinite(self.image_ious[self.final_key]).sum())
        out["pixel_accuracy"] = {k: float(self.confusion[k].pixel_accuracy()) for k in self.keys()}   # setting keys
        out["per_class_iou"] = {METRIC_NAMES[k]: self.per_class_iou(k) for k in ("multi_scale", self.final_key)}
        out["settings"] = {**self.settings, "multi_scale_flip": True, "use_cls_label": False,
                           "apply_crf": self.apply_crf}
        out["examples"] = {"setting": self.examples["setting"],
                           **{which: [{"name": e["name"], "iou": e["iou"],
                                       **({"failure": e["failure"]["mode"]} if e.get("failure") else {})}
                                      for e in self.examples[which]]
                              for which in ("best", "worst")}}
        if self.regions:
            out["border_accuracy"] = {k: self.region_accuracy(k) for k in self.keys()}
            out["border_width"] = self.border_width
        out["errors"] = {k: error_breakdown(self.confusion[k].matrix, self.class_names) for k in self.keys()}
        modes = [m["mode"] for m in self.failure_modes if m is not None]
        out["failure_modes"] = {mode: modes.count(mode) for mode in dict.fromkeys(modes)}
        return out

    def region_accuracy(self, key: str) -> dict[str, float | None]:
        """Pixel accuracy in the border band and in the interior (``border_width`` px from a ground-truth border)."""
        out = {}
        for region, (correct, scored) in self.regions.get(key, {}).items():
            out[region] = float(correct / scored) if scored else None
        return out


def evaluate_model(model, dataset, test: TestConfig, *, max_images: int | None = None,
                   num_workers: int | None = None, device="auto", num_examples: int = 4, amp: bool = True,
                   keep_predictions: bool = False, border_width: int = 5) -> EvaluationResult:
    """With ``test``'s class filtering (its predicted scores pick the classes: ``use_cls_label`` is refused
    here, it would leak labels on val) and its scales: single-scale and multi-scale + flip passes over the
    first ``max_images`` (None: all) images of
    ``dataset``, each with and without CRF when ``test.apply_crf``: confusion matrices, per-image IoU, and the
    best / worst ``num_examples`` images of the final setting (multi-scale + flip, + CRF when applied;
    at most half the images each, so the two lists share no image when all are scored). Images without pixel labels
    are not scored (per-image IoU NaN). ``keep_predictions`` also keeps every predicted map (memory:
    images x settings x H x W bytes) for ``slrnet.viz.evaluation.prediction_explorer``.

    Also counted on the way: pixel accuracy in the border band (scored pixels within ``border_width`` px of a
    ground-truth label border, void included) and in the interior, for every setting; the pixels the CRF
    fixed and broke in each region, for every pass; and ``failure_mode`` of every image in the final setting
    (the worst examples carry theirs as ``"failure"``)."""
    from slrnet.metrics import ConfusionMatrix

    if test.use_cls_label:
        raise ValueError("evaluate_model: test.use_cls_label would pick classes by the ground truth on the "
                         "evaluated split; evaluate with use_cls_label=False")
    apply_crf, scales = test.apply_crf, test.scales
    count = len(dataset) if not max_images else min(len(dataset), int(max_images))
    if count == 0:
        raise ValueError(f"evaluate_model: the dataset {dataset!r} is empty")
    class_names = list(getattr(dataset, "class_names", None) or [])
    num_classes = len(class_names) or int(model.num_classes)
    if not class_names:
        from slrnet.metrics import default_class_names
        class_names = default_class_names(num_classes)
    passes = inference_passes(scales)
    model = Predictor(model, device=device).model        # prepared once for all passes
    final_key = "multi_scale_crf" if apply_crf else "multi_scale"
    extremes = ExtremeExamples(min(num_examples, count // 2))
    confusion = {}
    image_ious: dict[str, list[float]] = {}
    names: list[str] = []
    seconds = {}
    kept_preds: dict[str, list] | None = {} if keep_predictions else None
    regions: dict[str, dict] = {}
    crf_changes: dict[str, dict] = {}
    failure_modes: list = []
    for p in passes:
        start = time.perf_counter()
        predictor = Predictor(model, test.replace(scales=p.scales, flip=p.flip), device=device, amp=amp)
        records = predictor.iter_dataset(dataset, max_images=count, num_workers=num_workers)
        keys = (p.key, p.key + "_crf") if apply_crf else (p.key,)
        for index, rec in enumerate(records):
            if p is passes[0]:
                names.append(rec["name"])
            preds = {p.key: rec["pred"], p.key + "_crf": rec["pred_crf"]}
            band = None if rec["mask"] is None else border_band(rec["mask"], border_width)
            if band is not None:
                scored = np.asarray(rec["mask"]) != 255
                for key in keys:
                    right = (np.asarray(preds[key]) == np.asarray(rec["mask"])) & scored
                    counts = regions.setdefault(key, {"border": [0, 0], "interior": [0, 0]})
                    for region, where in (("border", band & scored), ("interior", ~band & scored)):
                        counts[region][0] += int(right[where].sum())
                        counts[region][1] += int(where.sum())
                if apply_crf:
                    gt = np.asarray(rec["mask"])
                    before, after = np.asarray(preds[p.key]) == gt, np.asarray(preds[p.key + "_crf"]) == gt
                    changed = np.asarray(preds[p.key]) != np.asarray(preds[p.key + "_crf"])
                    changes = crf_changes.setdefault(p.key, {r: {"fixed": 0, "broken": 0, "changed": 0, "scored": 0}
                                                             for r in ("border", "interior")})
                    for region, where in (("border", band & scored), ("interior", ~band & scored)):
                        changes[region]["fixed"] += int((~before & after & where).sum())
                        changes[region]["broken"] += int((before & ~after & where).sum())
                        changes[region]["changed"] += int((changed & where).sum())
                        changes[region]["scored"] += int(where.sum())
            if final_key in keys:
                failure_modes.append(None if rec["mask"] is None else
                                     failure_mode(preds[final_key], rec["mask"], num_classes, class_names))
            for key in keys:
                if kept_preds is not None:
                    kept_preds.setdefault(key, []).append(preds[key])
                if rec["mask"] is None:                      # no pixel labels: not scored, kept in order
                    image_ious.setdefault(key, []).append(float("nan"))
                    continue
                confusion.setdefault(key, ConfusionMatrix(num_classes)).update(preds[key], rec["mask"])
                iou = image_iou(preds[key], rec["mask"], num_classes)
                image_ious.setdefault(key, []).append(iou)
                if key == final_key:
                    extremes.add(index, iou, (rec["name"], preds[key]))
        seconds[p.key] = time.perf_counter() - start
    if not confusion:
        raise ValueError(f"evaluate_model: none of the {count} images of {dataset!r} has pixel labels")

    def entries(items):
        return [{"index": e["index"], "name": e["payload"][0], "pred": e["payload"][1],
                 "iou": image_ious[final_key][e["index"]], "failure": failure_modes[e["index"]]} for e in items]

    examples = {"setting": final_key, "best": entries(extremes.best()), "worst": entries(extremes.worst())}
    settings = {"scales": list(scales), "fp_cut": test.fp_cut, "top_k": test.top_k, "bg_pow": test.bg_pow,
                "crf_iters": test.crf_iters}
    return EvaluationResult(class_names, passes, apply_crf, confusion, image_ious, names, examples, seconds, settings,
                            kept_preds, regions=regions, crf_changes=crf_changes, failure_modes=failure_modes,
                            border_width=int(border_width))


def example_rows(dataset, entries: Sequence[dict]) -> list[tuple]:
    """``(image uint8 (H, W, 3), ground truth, prediction, caption)`` rows for ``slrnet.viz.evaluation.plot_prediction_rows``."""
    from slrnet.data.transforms import denormalize

    rows = []
    for e in entries:
        sample = dataset[e["index"]]
        caption = f"{e['name']}\nIoU {e['iou']:.3f}"
        if e.get("failure") and e["failure"]["mode"] != "no error":
            caption += "\n" + e["failure"]["mode"]
        rows.append((denormalize(sample["image"]), np.asarray(sample["mask"]), e["pred"], caption))
    return rows


# ----------------------------------------------------------------------------- borders and failure modes

def border_band(gt, width: int) -> np.ndarray:
    """Bool (H, W): pixels within ``width`` px (a (2 width + 1) square) of a place where the ground-truth label
    changes between 4-neighbours (void counts as a label, so the band runs along VOC-style void borders too)."""
    import torch

    gt = np.asarray(gt)
    edge = np.zeros(gt.shape, dtype=bool)
    dy, dx = gt[1:, :] != gt[:-1, :], gt[:, 1:] != gt[:, :-1]
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    if width <= 0:
        return edge
    t = torch.from_numpy(edge).float()[None, None]
    return torch.nn.functional.max_pool2d(t, 2 * width + 1, stride=1, padding=width)[0, 0].numpy() > 0


def _dilate(mask: np.ndarray, width: int) -> np.ndarray:
    import torch

    t = torch.from_numpy(np.ascontiguousarray(mask)).float()[None, None]
    return torch.nn.functional.max_pool2d(t, 2 * width + 1, stride=1, padding=width)[0, 0].numpy() > 0


FAILURE_MODES = ("missed object", "wrong class", "merged overlapping objects", "background leak",
                 "masks too small", "minor errors", "no error")
MINOR_ERROR_SHARE = 0.01     # the right classes and under 1 % of the pixels wrong: a few border pixels, not a failure

ERROR_KINDS = ("object -> background", "background -> object", "object -> another object of the image",
               "object -> a class not in the image")


def _name(class_names, c: int) -> str:
    return class_names[c] if class_names is not None and c < len(class_names) else f"class {c}"


def failure_mode(pred, gt, num_classes: int, class_names: Sequence[str] | None = None, ignore_index: int = 255,
                 touch: int = 3) -> dict:
    """Why one image's prediction is wrong, from its class sets and its pixel confusion (void not scored).

    Class-level failures first, for the ground-truth class with the most pixels that fails:
    * a ground-truth class the prediction lacks: its pixels went mostly to background -> **missed object**;
      mostly to another class of the image whose object it touches (within ``touch`` px) -> **merged overlapping
      objects**; otherwise to another class -> **wrong class**;
    * a predicted class the image lacks: its pixels are mostly an object's -> **wrong class**, mostly
      background's -> **background leak** (an object where there is none).
    With the class sets equal and fewer than ``MINOR_ERROR_SHARE`` of the pixels wrong -> **minor errors**;
    with more, the largest kind of error pixel decides: background taken for an object ->
    **background leak**; object pixels taken for background -> **masks too small**; one object class taken
    for another -> **merged overlapping objects** when the two objects touch, else **wrong class**.

    Returns ``{"mode", "detail", "error_share" (wrong / scored pixels), "shares" ({ERROR_KINDS: share of the
    wrong pixels}), "gt_classes", "pred_classes"}`` (class names).
    """
    pred, gt = np.asarray(pred).astype(np.int64), np.asarray(gt).astype(np.int64)
    if pred.shape != gt.shape:
        raise ValueError(f"failure_mode: prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    k = int(num_classes)
    valid = gt != ignore_index
    cm = np.bincount(gt[valid] * k + pred[valid].clip(0, k - 1), minlength=k * k).reshape(k, k)
    total = int(cm.sum())
    errors = total - int(np.trace(cm))
    gt_set = [c for c in range(1, k) if cm[c].sum() > 0]
    pred_set = [c for c in range(1, k) if (pred[valid] == c).any()]
    kinds = dict.fromkeys(ERROR_KINDS, 0)
    kinds["object -> background"] = int(cm[1:, 0].sum())
    kinds["background -> object"] = int(cm[0, 1:].sum())
    for c in range(1, k):
        for j in range(1, k):
            if j != c and cm[c, j]:
                kinds["object -> another object of the image" if j in gt_set else
                      "object -> a class not in the image"] += int(cm[c, j])
    out = {"error_share": float(errors / total) if total else float("nan"),
           "shares": {kind: float(v / errors) if errors else 0.0 for kind, v in kinds.items()},
           "gt_classes": [_name(class_names, c) for c in gt_set],
           "pred_classes": [_name(class_names, c) for c in pred_set]}
    if errors == 0:
        return {"mode": "no error", "detail": "every scored pixel right", **out}

    def touching(c: int, j: int) -> bool:
        return bool((_dilate(gt == c, touch) & (gt == j)).any())

    def as_object(c: int, j: int, what: str) -> tuple[str, str]:
        if j in gt_set and touching(c, j):
            return ("merged overlapping objects",
                    f"{_name(class_names, c)} {what} {_name(class_names, j)}, which it touches")
        return "wrong class", f"{_name(class_names, c)} {what} {_name(class_names, j)}"

    missing = sorted((c for c in gt_set if c not in pred_set), key=lambda c: -cm[c].sum())
    extra = sorted((c for c in pred_set if c not in gt_set), key=lambda c: -cm[:, c].sum())
    if missing:
        c = missing[0]
        j = int(np.argmax(np.where(np.arange(k) == c, -1, cm[c])))
        if j == 0:
            mode, detail = "missed object", f"{_name(class_names, c)} not found (predicted as background)"
        else:
            mode, detail = as_object(c, j, "predicted as")
    elif extra:
        j = extra[0]
        c = int(np.argmax(cm[:, j]))
        if c == 0:
            mode, detail = "background leak", f"{_name(class_names, j)} predicted where there is none"
        else:
            mode, detail = "wrong class", f"{_name(class_names, c)} predicted as {_name(class_names, j)}"
    elif out["error_share"] < MINOR_ERROR_SHARE:
        mode, detail = "minor errors", f"the classes right, {_pct(out['error_share'])} of the pixels wrong"
    else:
        kind = max(kinds, key=kinds.get)
        if kind == "background -> object":
            j = int(np.argmax(cm[0, 1:])) + 1
            mode, detail = "background leak", f"background taken for {_name(class_names, j)}"
        elif kind == "object -> background":
            c = int(np.argmax(cm[1:, 0])) + 1
            mode, detail = "masks too small", f"part of {_name(class_names, c)} predicted as background"
        else:
            off = cm.copy()
            off[0, :], off[:, 0] = 0, 0
            np.fill_diagonal(off, 0)
            c, j = np.unravel_index(int(np.argmax(off)), off.shape)
            mode, detail = as_object(int(c), int(j), "partly predicted as")
    return {"mode": mode, "detail": detail, **out}


def error_counts(matrix) -> dict:
    """The wrong pixels of a (K_gt, K_pred) confusion matrix by kind (class 0 the background): object ->
    background, background -> object, object -> (another) object."""
    m = np.asarray(matrix)
    objects = m[1:, 1:]
    return {"object -> background": m[1:, 0].sum(), "background -> object": m[0, 1:].sum(),
            "object -> object": objects.sum() - np.trace(objects)}


def error_breakdown(matrix, class_names: Sequence[str] | None = None) -> dict:
    """Where a (K, K) confusion matrix's wrong pixels are (rows ground truth, columns prediction, class 0
    background): ``error_share`` of the scored pixels, the shares of the wrong pixels that are object ->
    background, background -> object and object -> object, and the largest off-diagonal cell (``largest``:
    ground truth, prediction, its share of that class's pixels and of all wrong pixels). JSON-ready."""
    m = np.asarray(matrix, dtype=np.float64)
    total = m.sum()
    counts = error_counts(m)
    wrong = sum(counts.values())
    to_bg, from_bg, between = (counts[k] for k in ("object -> background", "background -> object",
                                                    "object -> object"))
    out = {"error_share": float(wrong / total) if total else None,
           "object -> background": float(to_bg / wrong) if wrong else 0.0,
           "background -> object": float(from_bg / wrong) if wrong else 0.0,
           "object -> object": float(between / wrong) if wrong else 0.0, "largest": None}
    if wrong:
        off = m.copy()
        np.fill_diagonal(off, 0)
        r, c = np.unravel_index(int(np.argmax(off)), off.shape)
        out["largest"] = {"ground_truth": _name(class_names, int(r)), "prediction": _name(class_names, int(c)),
                          "share_of_class": float(off[r, c] / max(1.0, m[r].sum())),
                          "share_of_errors": float(off[r, c] / wrong)}
    return out


# ----------------------------------------------------------------------------- examples beyond best / worst

PERFECT_IOU = 1.0 - 1e-9


def perfect_share(result: EvaluationResult, key: str | None = None) -> float:
    """The share of scored images whose per-image IoU (setting ``key``, default the final one) is perfect."""
    scores = np.asarray(result.image_ious[key or result.final_key], dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    return float((scores >= PERFECT_IOU).mean()) if scores.size else 0.0


def median_examples(result: EvaluationResult, k: int, key: str | None = None,
                    exclude: Sequence[int] | None = None, skip_perfect: bool = False) -> list[dict]:
    """The ``k`` scored images whose per-image IoU (setting ``key``, default the final one) sits around the
    median, in rising IoU: what a typical image looks like. ``{"index", "name", "iou", "failure"}`` entries.
    ``exclude``: image indices not to pick (default: the result's worst examples, so no image is shown twice
    when many images tie); the median's place is taken over all scored images, and the ``k`` images picked are
    the ones not excluded that rank closest to it. ``skip_perfect``: the median of the images that are not
    perfect (when most images are, the plain median shows perfect images, which teach nothing)."""
    key = key or result.final_key
    if exclude is None:
        exclude = [e["index"] for e in result.examples.get("worst", [])]
    excluded = set(int(i) for i in exclude)
    scores = np.asarray(result.image_ious[key], dtype=np.float64)
    ranked = np.isfinite(scores) & ((scores < PERFECT_IOU) if skip_perfect else True)
    order = sorted(np.flatnonzero(ranked).tolist(), key=lambda i: (scores[i], i))   # all scored (not perfect)
    centre = (len(order) - 1) / 2                                       # the median's place among all of them
    free = [pos for pos, i in enumerate(order) if i not in excluded]
    picked = sorted(sorted(free, key=lambda pos: (abs(pos - centre), pos))[:max(0, int(k))])
    modes = result.failure_modes if key == result.final_key and result.failure_modes else [None] * len(scores)
    return [{"index": order[pos], "name": result.names[order[pos]], "iou": float(scores[order[pos]]),
             "failure": modes[order[pos]]} for pos in picked]


def crf_change_examples(result: EvaluationResult, k: int = 4, pass_key: str = "multi_scale") -> list[dict]:
    """Images where the CRF changed the per-image IoU of pass ``pass_key`` most: up to ``ceil(k / 2)`` largest
    gains, then the largest losses, filled up to ``k`` by the next largest changes. Entries ``{"index",
    "name", "iou_before", "iou_after", "delta"}``, gains first (falling), then losses (rising)."""
    if not result.apply_crf:
        raise ValueError("crf_change_examples: the evaluation ran without the CRF (test.apply_crf)")
    before = np.asarray(result.image_ious[pass_key], dtype=np.float64)
    after = np.asarray(result.image_ious[pass_key + "_crf"], dtype=np.float64)
    delta = after - before
    ok = np.flatnonzero(np.isfinite(delta)).tolist()
    gains = sorted((i for i in ok if delta[i] > 0), key=lambda i: (-delta[i], i))
    losses = sorted((i for i in ok if delta[i] < 0), key=lambda i: (delta[i], i))
    picked = gains[:-(-k // 2)] if k else []
    picked += losses[:k - len(picked)]
    rest = sorted((i for i in ok if i not in picked), key=lambda i: (-abs(delta[i]), i))
    picked += rest[:k - len(picked)]
    picked.sort(key=lambda i: (-delta[i], i))
    return [{"index": i, "name": result.names[i], "iou_before": float(before[i]), "iou_after": float(after[i]),
             "delta": float(delta[i])} for i in picked]


class _Picked:
    """A few items of a dataset, in the given order (for ``Predictor.iter_dataset``)."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[self.indices[i]]


def predict_examples(model, dataset, test: TestConfig, indices: Sequence[int], *, device="auto",
                     amp: bool = True) -> dict[int, dict]:
    """The multi-scale + flip pass of ``evaluate_model`` again for a few images (same settings, same code path,
    so the same maps): ``{index: {"index", "name", "pred", "pred_crf" (None without the CRF), "mask"}}``.
    Cheaper than keeping every map of the split when only a handful are shown."""
    if test.use_cls_label:
        raise ValueError("predict_examples: test.use_cls_label would pick classes by the ground truth")
    indices = list(dict.fromkeys(int(i) for i in indices))
    predictor = Predictor(model, test.replace(flip=True), device=device, amp=amp)
    records = predictor.iter_dataset(_Picked(dataset, indices), num_workers=1)
    return {i: {"index": i, "name": rec["name"], "pred": rec["pred"], "pred_crf": rec["pred_crf"], "mask": rec["mask"]}
            for i, rec in zip(indices, records)}


# ----------------------------------------------------------------------------- readings

def _pts(x: float) -> str:
    text = f"{100 * x:+.1f}"
    return ("+0.0" if text == "-0.0" else text) + " points"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def error_kind_changes(before, after) -> dict:
    """How many wrong pixels of each kind (:func:`error_counts`) disappear from confusion matrix ``before`` to
    ``after`` (negative: more of them after), named as the CRF reading words them."""
    a, b = error_counts(before), error_counts(after)
    words = {"object -> object": "object as another object", "background -> object": "background as object",
             "object -> background": "object as background"}
    return {words[k]: int(a[k] - b[k]) for k in words}


def crf_reading(result: EvaluationResult, pass_key: str = "multi_scale", top: int = 2) -> str:
    """What the CRF did in this run, worded from its numbers: the mIoU of every pass without and with it, the
    classes that gain and lose most, how many images improve or worsen, and where the pixels it fixed and
    broke lie (the border band against the interior)."""
    if not result.apply_crf:
        return "The CRF was not applied (apply_crf = False): nothing to compare."
    lines = []
    parts = []
    for p in result.passes:
        a, b = result.miou(p.key), result.miou(p.key + "_crf")
        if a is not None and b is not None:
            parts.append(f"{p.label} {a:.3f} -> {b:.3f} ({_pts(b - a)})")
    lines.append("mIoU without -> with the CRF: " + "; ".join(parts) + ".")
    label = result.label(pass_key)
    before, after = result.per_class_iou(pass_key), result.per_class_iou(pass_key + "_crf")
    deltas = {n: after[n] - before[n] for n in before if before[n] is not None and after[n] is not None}
    if deltas:
        ranked = sorted(deltas, key=deltas.get, reverse=True)
        gains = [n for n in ranked if deltas[n] > 0][:top]
        losses = [n for n in reversed(ranked) if deltas[n] < 0][:top]
        text = f"Per class ({label}): "
        text += ("largest gains " + ", ".join(f"{n} {deltas[n]:+.3f}" for n in gains)) if gains else "no class gains"
        text += ("; largest losses " + ", ".join(f"{n} {deltas[n]:+.3f}" for n in losses)) if losses else \
            "; no class loses"
        lines.append(text + " (IoU).")
    d = (np.asarray(result.image_ious[pass_key + "_crf"], dtype=float)
         - np.asarray(result.image_ious[pass_key], dtype=float))
    d = d[np.isfinite(d)]
    if d.size:
        up, down = int((d > 1e-9).sum()), int((d < -1e-9).sum())
        lines.append(f"Per image: {up} of {d.size} improve, {down} get worse, {d.size - up - down} are unchanged "
                     f"(median change {np.median(d):+.3f} IoU).")
    ch = result.crf_changes.get(pass_key)
    if ch:
        scored = ch["border"]["scored"] + ch["interior"]["scored"]
        fixed = ch["border"]["fixed"] + ch["interior"]["fixed"]
        broken = ch["border"]["broken"] + ch["interior"]["broken"]
        changed = ch["border"]["changed"] + ch["interior"]["changed"]
        w = result.border_width
        if scored and fixed + broken:
            band = ch["border"]["scored"] / scored
            text = (f"Pixels: the CRF changed the label of {_pct(changed / scored)} of the scored pixels ({label}): it "
                    f"fixed {_pct(fixed / scored)}, broke {_pct(broken / scored)}, and moved "
                    f"{_pct((changed - fixed - broken) / scored)} from one wrong label to another. "
                    f"The border band (within {w} px of a ground-truth border) holds {_pct(band)} of the scored pixels "
                    f"but {_pct(ch['border']['fixed'] / fixed) if fixed else 'none'} of the fixed ones and "
                    f"{_pct(ch['border']['broken'] / broken) if broken else 'none'} of the broken ones. ")
            acc_b, acc_a = result.region_accuracy(pass_key), result.region_accuracy(pass_key + "_crf")
            if acc_b.get("border") is not None and acc_b.get("interior") is not None:
                text += (f"Pixel accuracy in the band {acc_b['border']:.3f} -> {acc_a['border']:.3f}, in the interior "
                         f"{acc_b['interior']:.3f} -> {acc_a['interior']:.3f}. ")
            net_b = ch["border"]["fixed"] - ch["border"]["broken"]
            net_i = ch["interior"]["fixed"] - ch["interior"]["broken"]
            kinds = error_kind_changes(result.confusion[pass_key].matrix, result.confusion[pass_key + "_crf"].matrix)
            net = sum(kinds.values())
            if net > 0:
                text += ("By kind of error (the confusion matrices), of the wrong pixels the CRF removed net "
                         f"{_pct(kinds['object as another object'] / net)} were object pixels labelled as another "
                         f"object class, {_pct(kinds['background as object'] / net)} background labelled as an object "
                         f"and {_pct(kinds['object as background'] / net)} object labelled as background. ")
            if net > 0 and kinds["object as another object"] > net / 2:
                text += ("Net, most of its gain relabels parts of objects from one class to another, whole regions "
                         f"rather than edges; the {w} px border band holds {_pct(band)} of the scored pixels and "
                         "covers thin parts of objects entirely, so the band cannot tell those regions from snapped "
                         "edges here.")
            elif net_b + net_i > 0 and min(net_b, net_i) < 0:
                inside, outside = ("border band", "interior") if net_b > 0 else ("interior", "border band")
                text += (f"Net, the CRF gains only in the {inside}; in the {outside} it breaks more pixels than it "
                         "fixes.")
            elif net_b + net_i > 0:
                share = net_b / (net_b + net_i)
                where = ("mostly at borders: it snaps mask edges to the image's edges" if share > 0.5 else
                         "mostly away from borders: it relabels whole regions (filling holes, removing or "
                         "changing the class of blobs), not only their edges")
                text += f"Net, {_pct(share)} of its gain lies in the border band: the CRF helps here {where}."
            else:
                text += "Net, the CRF breaks more pixels than it fixes here."
            lines.append(text)
        elif scored and changed:
            lines.append(f"Pixels: the CRF changed the label of {_pct(changed / scored)} of the scored pixels "
                         f"({label}), each from one wrong label to another: it fixed and broke none.")
        elif scored:
            lines.append(f"Pixels: the CRF changed no scored pixel ({label}).")
    return "\n".join(lines)


def _error_line(label: str, e: dict) -> str:
    return (f"{label}: {_pct(e['error_share'] or 0.0)} of the scored pixels are wrong; of these "
            f"{_pct(e['object -> background'])} object -> background, {_pct(e['background -> object'])} "
            f"background -> object, {_pct(e['object -> object'])} object -> another object class.")


def error_reading(result: EvaluationResult, key: str | None = None) -> str:
    """Where the errors of the confusion matrix of ``key`` (default the final setting) lie, worded from the
    matrix: with background (masks too small / bleeding out) or between object classes, the largest single
    confusion, and the same shares without the CRF when it was applied."""
    key = key or result.final_key
    e = error_breakdown(result.confusion[key].matrix, result.class_names)
    lines = [_error_line(result.label(key), e)]
    with_bg = e["object -> background"] + e["background -> object"]
    if e["error_share"]:
        if e["object -> object"] > 0.5:
            lines.append(f"So this run's errors lie mostly between object classes ({_pct(e['object -> object'])}): "
                         "the masks find the objects but name some of them wrong (look off the diagonal, away from "
                         "the first row and column).")
        elif with_bg > 0.5:
            side = ("objects predicted as background: masks too small or objects missed (first column)"
                    if e["object -> background"] >= e["background -> object"] else
                    "background predicted as an object: masks bleeding out (first row)")
            lines.append(f"So this run's errors lie mostly with background ({_pct(with_bg)}), the larger part "
                         f"{side}.")
        big = e["largest"]
        lines.append(f"Largest single confusion: {big['ground_truth']} predicted as {big['prediction']} "
                     f"({_pct(big['share_of_class'])} of the {big['ground_truth']} pixels, "
                     f"{_pct(big['share_of_errors'])} of all wrong pixels).")
    if key.endswith("_crf"):
        raw = key[:-4]
        lines.append(_error_line(f"Without the CRF ({result.label(raw)})",
                                 error_breakdown(result.confusion[raw].matrix, result.class_names)))
    return "\n".join(lines)


def failure_reading(result: EvaluationResult, entries: Sequence[dict], what: str = "worst") -> str:
    """One line per shown image (name, per-image IoU, failure mode and what went wrong), then how often each
    mode is the reason over all scored images of the final setting."""
    lines = []
    for e in entries:
        f = e.get("failure")
        if f is None:
            continue
        lines.append(f"{e['name']} (IoU {e['iou']:.3f}): {f['mode']} - {f['detail']}; "
                     f"{_pct(f['error_share'])} of its pixels wrong.")
    shown = [e["failure"]["mode"] for e in entries if e.get("failure")]
    if shown:
        counts = {m: shown.count(m) for m in dict.fromkeys(shown)}
        lines.append(f"The {len(shown)} {what} images: " + ", ".join(f"{n} {m}" for m, n in counts.items()) + ".")
    modes = [m["mode"] for m in result.failure_modes if m is not None]
    if modes:
        counts = {m: modes.count(m) for m in sorted(set(modes), key=lambda m: (-modes.count(m), m))}
        lines.append(f"All {len(modes)} scored images ({result.label(result.final_key)}): " +
                     ", ".join(f"{m} {n}" for m, n in counts.items()) + ".")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- tables

def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A GitHub-style markdown table of dict rows (columns default to the first row's keys)."""
    if not rows:
        raise ValueError("markdown_table: no rows")
    columns = list(columns or rows[0])

    def cell(v) -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):                 # three decimals, as the readings print mIoU; no trailing zeros
            return f"{v:.3f}".rstrip("0").rstrip(".") if math.isfinite(v) else str(v)
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def paper_rows() -> list[dict]:
    """METHOD.md section 6 as table rows, labelled as reported numbers."""
    return [{"setting (reported in the paper, VOC 2012, not measured here)": r["setting"], "backbone": r["backbone"],
             "VOC val mIoU (%)": r["voc_val_miou"], "note": r["note"]} for r in PAPER_VOC_RESULTS]
