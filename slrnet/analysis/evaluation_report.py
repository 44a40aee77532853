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

Per-image IoU (for the best / worst examples) is the mean IoU over the classes present in that image's
ground truth or prediction, the per-image analogue of ``ConfusionMatrix.miou``.
"""
from __future__ import annotations

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
                           **{which: [{"name": e["name"], "iou": e["iou"]} for e in self.examples[which]]
                              for which in ("best", "worst")}}
        return out


def evaluate_model(model, dataset, test: TestConfig, *, max_images: int | None = None,
                   num_workers: int | None = None, device="auto", num_examples: int = 4, amp: bool = True,
                   keep_predictions: bool = False) -> EvaluationResult:
    """With ``test``'s class filtering (its predicted scores pick the classes: ``use_cls_label`` is refused
    here, it would leak labels on val) and its scales: single-scale and multi-scale + flip passes over the
    first ``max_images`` (None: all) images of
    ``dataset``, each with and without CRF when ``test.apply_crf``: confusion matrices, per-image IoU, and the
    best / worst ``num_examples`` images of the final setting (multi-scale + flip, + CRF when applied;
    at most half the images each, so the two lists share no image when all are scored). Images without pixel labels
    are not scored (per-image IoU NaN). ``keep_predictions`` also keeps every predicted map (memory:
    images x settings x H x W bytes) for ``slrnet.viz.evaluation.prediction_explorer``."""
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
    for p in passes:
        start = time.perf_counter()
        predictor = Predictor(model, test.replace(scales=p.scales, flip=p.flip), device=device, amp=amp)
        records = predictor.iter_dataset(dataset, max_images=count, num_workers=num_workers)
        keys = (p.key, p.key + "_crf") if apply_crf else (p.key,)
        for index, rec in enumerate(records):
            if p is passes[0]:
                names.append(rec["name"])
            preds = {p.key: rec["pred"], p.key + "_crf": rec["pred_crf"]}
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
                 "iou": image_ious[final_key][e["index"]]} for e in items]

    examples = {"setting": final_key, "best": entries(extremes.best()), "worst": entries(extremes.worst())}
    settings = {"scales": list(scales), "fp_cut": test.fp_cut, "top_k": test.top_k, "bg_pow": test.bg_pow}
    return EvaluationResult(class_names, passes, apply_crf, confusion, image_ious, names, examples, seconds, settings,
                            kept_preds)


def example_rows(dataset, entries: Sequence[dict]) -> list[tuple]:
    """``(image uint8 (H, W, 3), ground truth, prediction, caption)`` rows for ``slrnet.viz.evaluation.plot_prediction_rows``."""
    from slrnet.data.transforms import denormalize

    rows = []
    for e in entries:
        sample = dataset[e["index"]]
        rows.append((denormalize(sample["image"]), np.asarray(sample["mask"]), e["pred"],
                     f"{e['name']}\nIoU {e['iou']:.3f}"))
    return rows


# ----------------------------------------------------------------------------- tables

def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A GitHub-style markdown table of dict rows (columns default to the first row's keys)."""
    if not rows:
        raise ValueError("markdown_table: no rows")
    columns = list(columns or rows[0])

    def cell(v) -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:.2f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def paper_rows() -> list[dict]:
    """METHOD.md section 6 as table rows, labelled as reported numbers."""
    return [{"setting (reported in the paper, VOC 2012, not measured here)": r["setting"], "backbone": r["backbone"],
             "VOC val mIoU (%)": r["voc_val_miou"], "note": r["note"]} for r in PAPER_VOC_RESULTS]
