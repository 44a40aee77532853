"""Test-time inference: multi-scale + flip averaging, class filtering, optional dense CRF, palette PNGs.

METHOD.md section 5 (the authors' ``tools/infer_voc.py``):

1. ``predict_multiscale``: the image is resized to each scale (default 1, 1.5, 2, 0.5, 0.75, the authors'
   order) and also flipped horizontally; each view goes through ``model.predict`` (single view, eval mode).
   Each scale is made as the authors do (``resize="pil_bicubic"``): the decoded uint8 image is resized by
   PIL bicubic and then normalised; ``resize="tensor_bilinear"`` resizes the normalised tensor instead
   (stays on the GPU; docs/MEASUREMENTS.md, "Test-time resize", gives its measured effect). Masks (softmax
   probabilities) are un-flipped, resized back to the input size and averaged; class-score logits are averaged.
2. ``filter_classes``: foreground classes are kept either from the ground-truth image labels
   (``use_cls_label``; legitimate for pseudo-labelling the training set, a label leak on val/test)
   or when sigmoid(score) > ``fp_cut`` (0.3) and the class is among the ``top_k`` (6) scores. Dropped
   classes are zeroed; the background channel is raised to ``bg_pow`` (3 weakly, 1 semi), which
   lowers background confidence and lets objects grow. No renormalisation (argmax and the CRF unary
   do not need it). Models without class scores (the semi "wo_cls" variant) keep every class.
3. Prediction = argmax; optionally refined by the dense CRF (``slrnet.crf``) in a process pool.

    >>> from slrnet.infer import Predictor, TestConfig, run_inference
    >>> test = TestConfig.from_config(cfg)                      # the config's test section
    >>> pred = Predictor(model, test).predict(image)            # (H, W); image (3, H, W) normalised
    >>> summary = run_inference(model, val_set, "outputs/infer", test.replace(apply_crf=True))
    >>> # writes outputs/infer/raw/<name>.png, outputs/infer/crf/<name>.png, outputs/infer/summary.json

Command line: ``python -m slrnet infer --config C --checkpoint P --output DIR [--apply_crf 1] ...``
(the flags of the original script, plus ``--scales --device --num_workers --allow_label_leak --overwrite``). The
output folder lies apart from the data root and belongs to one job (``slrnet.output_folder``: locked while it writes,
``job.json``; another checkpoint's or setting's results are refused unless ``--overwrite``).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import re
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from slrnet.models.inference import is_prepared, prepare_for_inference, to_model_layout
from slrnet.models.loading import load_trained_model
from slrnet import ops

DEFAULT_SCALES = (1.0, 1.5, 2.0, 0.5, 0.75)


RESIZE_MODES = ("pil_bicubic", "tensor_bilinear")


def decode_batch(x: torch.Tensor) -> list[np.ndarray]:
    """Normalised (B, 3, H, W) -> B uint8 (H, W, 3) images; exact for images normalised from uint8."""
    from slrnet.data.transforms import denormalize

    return [denormalize(image) for image in x]


def scaled_views(x: torch.Tensor, s: float, resize: str = "pil_bicubic",
                 decoded: Sequence[np.ndarray] | None = None) -> torch.Tensor:
    """The batch ``x`` (B, 3, H, W) at scale ``s``: (B, 3, round(H s), round(W s)) normalised, on x's device.

    ``"pil_bicubic"`` (the authors' ``pil_rescale(img, s, order=3)``): the decoded uint8 image is resized by PIL
    bicubic, then normalised, so each scale sees the pixels a JPEG decoder would give at that size;
    ``"tensor_bilinear"`` resizes the normalised tensor (bilinear, align_corners=True) without leaving the device.
    """
    from PIL import Image

    from slrnet.data.transforms import normalize_to_tensor

    H, W = x.shape[-2:]
    size = (max(1, round(H * s)), max(1, round(W * s)))                  # int(np.round(.)): half to even, too
    if resize == "tensor_bilinear":
        return ops.resize(x, size)
    if resize != "pil_bicubic":
        raise ValueError(f"resize: expected one of {RESIZE_MODES}, got {resize!r}")
    if size == (H, W):
        return x
    decoded = decode_batch(x) if decoded is None else decoded
    views = [normalize_to_tensor(Image.fromarray(u8).resize(size[::-1], Image.BICUBIC)) for u8 in decoded]
    return torch.stack(views).to(device=x.device, dtype=x.dtype)


@torch.inference_mode()
def predict_multiscale(model, image: torch.Tensor, scales: Sequence[float] = DEFAULT_SCALES, flip: bool = True,
                       amp: bool = True, resize: str = "pil_bicubic") -> tuple[torch.Tensor | None, torch.Tensor]:
    """Average ``model.predict`` over scales x {identity, horizontal flip}, in the authors' order of operations.

    ``image`` is (3, H, W) or (B, 3, H, W), normalised, on the model's device; ``resize`` says how each scale's
    input is made (:func:`scaled_views`). Per scale, the flip pair runs as one batch, its masks are summed at that
    scale (the flipped one un-flipped), resized to (H, W), and its scores averaged; then masks are summed over the
    scales and divided by the number of views, scores averaged over the scales (``tools/infer_voc.py``). Returns
    ``(scores, probs)``: scores (B, K-1) float32 (None if the model has none), probs (B, K, H, W) float32; the
    batch axis is dropped for a (3, H, W) input.
    """
    if len(scales) == 0:
        raise ValueError("predict_multiscale: scales must hold at least one scale")
    single = image.dim() == 3
    x = image[None] if single else image                                   # (B, 3, H, W)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"predict_multiscale: expected an image (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize: expected one of {RESIZE_MODES}, got {resize!r}")
    B, _, H, W = x.shape
    use_amp = amp and x.device.type == "cuda"
    decoded = decode_batch(x) if resize == "pil_bicubic" and any(s != 1 for s in scales) else None
    probs_sum, scores_sum = None, None      # running sums, not a stack of every scale's (B, K, H, W) maps
    for s in scales:
        if s <= 0:
            raise ValueError(f"predict_multiscale: scales must be positive, got {s}")
        xs = scaled_views(x, s, resize, decoded)
        if flip:
            xs = torch.cat([xs, xs.flip(-1)])                              # (2B, 3, h, w): one forward pass
        with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
            out = model.predict(to_model_layout(model, xs))
        masks = out["masks"]
        if masks.dim() != 4 or masks.shape[0] != xs.shape[0]:
            raise ValueError(f"model.predict returned masks of shape {tuple(masks.shape)}; "
                             f"expected ({xs.shape[0]}, K, h, w)")
        masks = masks.float()                                              # (V*B, K, h, w)
        scores = None if out.get("scores") is None else out["scores"].float()  # (V*B, K-1)
        if flip:
            masks = masks[:B] + masks[B:].flip(-1)
            scores = None if scores is None else (scores[:B] + scores[B:]) / 2.0
        masks = ops.resize(masks, (H, W))                                     # (B, K, H, W)
        probs_sum = masks if probs_sum is None else probs_sum + masks
        if scores is not None:
            scores_sum = scores if scores_sum is None else scores_sum + scores
    views_per_scale = 2 if flip else 1
    probs = probs_sum / (views_per_scale * len(scales))                    # (B, K, H, W)
    scores = None if scores_sum is None else scores_sum / len(scales)      # (B, K-1)
    if single:
        return (None if scores is None else scores[0]), probs[0]
    return scores, probs


def select_classes(scores: torch.Tensor | None, labels=None, fp_cut: float = 0.3,
                   top_k: int = 6) -> torch.Tensor | None:
    """Which foreground classes to keep, bool (..., K-1); None = keep all (no scores, no labels).

    With ``labels`` (multi-hot ground-truth image labels) exactly those are kept; otherwise a class
    needs p = sigmoid(score) > fp_cut and p >= the ``top_k``-th largest p (top_k <= 0: no cap). As in the
    authors' code the rule compares float32 probabilities, so classes tied at the k-th value (sigmoid
    saturates at 1.0 for scores above about 17) are all kept: possibly more than ``top_k``.
    """
    if labels is not None:
        return torch.as_tensor(labels, device=None if scores is None else scores.device) > 0.5
    if scores is None:
        return None
    prob = torch.sigmoid(scores.float())                                    # (..., K-1)
    keep = prob > fp_cut
    if 0 < top_k < scores.shape[-1]:
        kth = prob.topk(top_k, dim=-1).values[..., -1:]                     # (..., 1)
        keep &= prob >= kth
    return keep


def apply_class_filter(probs: torch.Tensor, keep: torch.Tensor | None, bg_pow: float = 3) -> torch.Tensor:
    """Zero dropped foreground channels of probs (K, H, W) / (B, K, H, W), raise background to bg_pow."""
    out = probs.clone()
    fg = out[..., 1:, :, :]                                                  # (..., K-1, H, W), a view
    if keep is not None:
        keep = keep.to(device=out.device)
        if keep.shape != fg.shape[:-2]:
            raise ValueError(f"class filter: keep/labels/scores have shape {tuple(keep.shape)}, "
                             f"expected {tuple(fg.shape[:-2])} for probabilities of shape {tuple(probs.shape)}")
        fg.mul_(keep.to(out.dtype)[..., None, None])
    if bg_pow != 1:
        out[..., 0, :, :] = out[..., 0, :, :] ** bg_pow
    return out


def filter_classes(probs: torch.Tensor, scores: torch.Tensor | None, labels=None, fp_cut: float = 0.3,
                   top_k: int = 6, bg_pow: float = 3) -> torch.Tensor:
    """Class filtering of METHOD.md section 5; probs (K,H,W) or (B,K,H,W), scores (K-1,) / (B,K-1)."""
    if labels is not None:
        labels = torch.as_tensor(labels, device=probs.device)
    return apply_class_filter(probs, select_classes(scores, labels, fp_cut, top_k), bg_pow)


# ----------------------------------------------------------------------------- the test-time API

@dataclass(frozen=True)
class TestConfig:
    """What happens at test time, as the config's ``test`` section says it (METHOD.md section 5).

        >>> test = TestConfig.from_config(cfg)                      # cfg["test"], or the section itself
        >>> single = test.replace(scales=(1.0,), flip=False)         # validation: one view
    """

    __test__ = False                    # a settings record, not a pytest test class

    scales: tuple[float, ...] = DEFAULT_SCALES
    flip: bool = True
    resize: str = "pil_bicubic"
    use_cls_label: bool = False
    fp_cut: float = 0.3
    top_k: int = 6
    bg_pow: float = 3.0
    apply_crf: bool = False
    crf_iters: int = 10

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(float(x) for x in self.scales))
        if not self.scales or not all(0 < x < math.inf for x in self.scales):
            raise ValueError(f"test.scales: expected one or more positive, finite scales, got {list(self.scales)}")
        if not 0 < float(self.bg_pow) < math.inf:
            raise ValueError(f"test.bg_pow: expected a positive, finite power, got {self.bg_pow!r}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"test.resize: expected one of {RESIZE_MODES}, got {self.resize!r}")
        if not 0 <= self.fp_cut < 1:
            raise ValueError(f"test.fp_cut: expected a probability in [0, 1), got {self.fp_cut!r}")

    @classmethod
    def from_config(cls, cfg: dict | None = None, **overrides) -> "TestConfig":
        """From a full config (its ``test`` section) or the section itself; ``overrides`` that are None are
        skipped, so command-line flags left unset keep the config's value."""
        section = dict((cfg or {}).get("test", cfg or {}))
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"TestConfig: unknown settings {sorted(unknown)}; expected some of {sorted(names)}")
        values = {k: v for k, v in section.items() if k in names}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes) -> "TestConfig":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["scales"] = list(self.scales)
        return out


class Predictor:
    """A trained model at test time: multi-scale + flip averaging, class filtering, argmax (and the CRF).

        >>> predictor = Predictor(model, TestConfig.from_config(cfg))
        >>> pred = predictor.predict(image)                         # (H, W) int64 class indices
        >>> for rec in predictor.iter_dataset(val_set): ...         # one record per image, CRF overlapped

    ``optimize`` runs a copy prepared by :func:`slrnet.models.inference.prepare_for_inference` (BatchNorm
    folded, channels-last; a model already prepared is used as it is); ``False`` runs ``model`` itself (what
    validation during training does: the weights change between calls).
    """

    def __init__(self, model, test: TestConfig | None = None, device="auto", amp: bool = True,
                 optimize: bool = True):
        from slrnet.utils import resolve_device

        self.test = test if test is not None else TestConfig()
        self.device = resolve_device(device)
        self.amp = amp
        model.to(self.device).eval()
        self.model = prepare_for_inference(model) if optimize and not is_prepared(model) else model

    @property
    def num_classes(self) -> int | None:
        return getattr(self.model, "num_classes", None)

    def probabilities(self, image: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(scores (B, K-1) or None, probs (B, K, H, W)) averaged over the views; a (3, H, W) image drops B."""
        t = self.test
        return predict_multiscale(self.model, image.to(self.device), t.scales, flip=t.flip, amp=self.amp,
                                  resize=t.resize)

    def filtered(self, image: torch.Tensor, labels=None) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(scores, kept foreground classes (bool, K-1) or None = all, filtered probs (K, H, W)).

        ``labels``: ground-truth image labels when ``test.use_cls_label`` (pseudo-labelling a training set)."""
        return self.filter(*self.probabilities(image), labels)

    def filter(self, scores: torch.Tensor | None, probs: torch.Tensor, labels=None):
        """Class filtering of averaged ``probs`` by ``scores`` (or ``labels``): (scores, keep, filtered probs)."""
        if self.test.use_cls_label and labels is None:
            raise ValueError("test.use_cls_label: pass the image's ground-truth labels")
        labels = torch.as_tensor(labels, device=probs.device) if self.test.use_cls_label else None
        keep = select_classes(scores, labels, self.test.fp_cut, self.test.top_k)
        return scores, keep, apply_class_filter(probs, keep, self.test.bg_pow)

    def predict(self, image: torch.Tensor, labels=None) -> torch.Tensor:
        """Class indices (H, W) (or (B, H, W)) on the CPU: views averaged, classes filtered, argmax."""
        return self.filtered(image, labels)[2].argmax(-3).cpu()

    __call__ = predict

    def confusion_matrix(self, dataset, max_images: int | None = None, batch_size: int = 1):
        """The :class:`slrnet.metrics.ConfusionMatrix` of this predictor's label maps against ``dataset``'s masks
        (its first ``max_images``). Consecutive images of one size go through the network together, up to
        ``batch_size`` at a time (validation during training; the class filter needs no image labels here)."""
        from slrnet.metrics import ConfusionMatrix

        cm = ConfusionMatrix(self.num_classes)
        limit = min(max_images or len(dataset), len(dataset))
        batch: list[dict] = []

        def flush():
            for pred, sample in zip(self.predict(torch.stack([s["image"] for s in batch])), batch):   # (B, H, W)
                cm.update(pred, sample["mask"])
            batch.clear()

        for i in range(limit):
            sample = dataset[i]
            if batch and (len(batch) == batch_size or sample["image"].shape != batch[0]["image"].shape):
                flush()
            batch.append(sample)
        if batch:
            flush()
        return cm

    def iter_dataset(self, dataset, *, max_images: int | None = None, keep_probs: bool = False,
                     num_workers: int | None = None, denormalize: Callable | None = None) -> Iterator[dict]:
        """Yield one record per image, in dataset order: ``name``, ``num_classes``, ``pred`` uint8 (H, W),
        ``pred_crf`` (or None), ``mask`` (ground truth numpy or None), ``kept`` (kept foreground class
        indices, 1-based, or None = all), ``scores`` and, with ``keep_probs``, ``probs`` (K, H, W) averaged
        before filtering. The network runs in this process; CRF jobs go to a process pool and overlap with it."""
        from slrnet.crf import crf_argmax, crf_executor, resolve_num_workers
        from slrnet.utils import progress

        apply_crf = self.test.apply_crf
        if apply_crf and denormalize is None:
            from slrnet.data.transforms import denormalize
        count = len(dataset) if not max_images else min(len(dataset), int(max_images))
        workers = min(resolve_num_workers(num_workers), max(1, count))
        pool_ctx = crf_executor(workers) if apply_crf else contextlib.nullcontext(None)
        pending: deque = deque()

        def finish(rec: dict) -> dict:
            future = rec.pop("_crf", None)
            rec["pred_crf"] = None if future is None else future.result()
            return rec

        with pool_ctx as pool:
            for i in progress(range(count), desc="infer"):
                sample = dataset[i]
                image = torch.as_tensor(sample["image"])                          # (3, H, W)
                labels = None
                if self.test.use_cls_label:
                    if sample.get("labels") is None:
                        raise ValueError(f"use_cls_label: sample {sample.get('name', i)!r} has no 'labels'")
                    labels = sample["labels"]
                scores, probs = self.probabilities(image)
                scores, keep, filtered = self.filter(scores, probs, labels)          # (K, H, W)
                if filtered.shape[0] > 255:
                    raise ValueError(f"at most 255 classes fit a palette PNG, got {filtered.shape[0]}")
                has_mask = bool(sample.get("has_mask", sample.get("mask") is not None))
                rec = {"name": str(sample.get("name", f"{i:06d}")), "num_classes": filtered.shape[0],
                       "pred": filtered.argmax(0).to(torch.uint8).cpu().numpy(),
                       "mask": np.asarray(torch.as_tensor(sample["mask"]).cpu()) if has_mask else None,
                       "kept": None if keep is None else (torch.nonzero(keep).flatten() + 1).tolist(),
                       "scores": None if scores is None else scores.cpu().numpy()}
                if keep_probs:
                    rec["probs"] = probs.cpu().numpy()
                if pool is not None:
                    rec["_crf"] = pool.submit(crf_argmax, denormalize(sample["image"]),
                                              filtered.float().cpu().numpy(), self.test.crf_iters)
                pending.append(rec)
                while len(pending) > 2 * workers or (pending and pool is None):
                    yield finish(pending.popleft())
            while pending:
                yield finish(pending.popleft())


# ----------------------------------------------------------------------------- datasets

def split_description(dataset) -> str:
    """The dataset's split name and list file, as far as it tells (``""`` if it does not)."""
    parts = [str(getattr(dataset, "split", "") or "")]
    list_file = getattr(dataset, "list_file", None)
    if list_file and Path(list_file).stem != parts[0]:
        parts.append(f"(list {Path(list_file).name})")
    return " ".join(p for p in parts if p)


def is_training_name(text: str) -> bool:
    """True when ``text`` (split names, list file names) says train and nothing says val or test."""
    text = text.lower()
    return "train" in text and not re.search(r"val|test", text)


def is_training_split(dataset) -> bool:
    return is_training_name(split_description(dataset))


def check_label_leak(dataset, use_cls_label: bool, allow_label_leak: bool) -> None:
    """Ground-truth image labels at test time are a leak unless the split is a training split."""
    if use_cls_label and not allow_label_leak and not is_training_split(dataset):
        raise ValueError(
            f"use_cls_label=True filters classes with the ground-truth image labels, which leaks labels on the "
            f"split '{split_description(dataset) or 'unknown'}' (only training splits are exempt). Pass "
            f"allow_label_leak=True (--allow_label_leak 1) to do it anyway; results are marked uses_gt_labels.")


def check_class_count(model, dataset) -> None:
    """The model's classes must be the data's: a 5-class model on 7-class masks would score silently wrong."""
    num_classes, model_classes = getattr(dataset, "num_classes", None), getattr(model, "num_classes", None)
    if num_classes is not None and model_classes is not None and int(num_classes) != int(model_classes):
        where = getattr(dataset, "classes_source", None) or getattr(dataset, "root", "the dataset")
        raise ValueError(f"the model predicts {model_classes} classes but the data has {num_classes} (background "
                         f"included; from {where}); use a checkpoint and config with model.num_classes={num_classes}")


def check_before_writing(model, dataset, out_dir, use_cls_label: bool, allow_label_leak: bool,
                         max_images: int | None = None) -> None:
    """Everything ``run_inference`` / ``export_pseudo_labels`` check before any work: no label leak, the model's
    classes are the data's, the output folder is apart from the data root it reads, no two images share an
    output name. Protects the dataset and the results from being overwritten."""
    from slrnet.output_folder import check_unique_names
    from slrnet.paths import check_output_apart

    check_label_leak(dataset, use_cls_label, allow_label_leak)
    check_class_count(model, dataset)
    check_output_apart(out_dir, getattr(dataset, "root", None), what="output folder")
    check_unique_names(dataset, max_images)


def run_inference(model, dataset, out_dir, test: TestConfig | None = None, *, allow_label_leak: bool = False,
                  num_workers: int | None = None, device="auto", verbose: bool = False, save_probs: bool = False,
                  amp: bool = True, max_images: int | None = None, denormalize: Callable | None = None,
                  job: dict | None = None) -> dict:
    """Infer a whole dataset with ``test`` (default ``TestConfig()``); write ``<out>/raw/<name>.png`` (and
    ``crf/``, ``probs/<name>.npy`` when asked) as VOC palette PNGs, evaluate images with masks, write
    ``<out>/summary.json`` (with ``job``, what made the results: ``slrnet.output_folder.describe_job``), return it."""
    from slrnet.data.files import save_palette_png
    from slrnet.metrics import ConfusionMatrix, default_class_names
    from slrnet.utils import atomic_write_bytes, write_json

    test = test if test is not None else TestConfig()
    check_before_writing(model, dataset, out_dir, test.use_cls_label, allow_label_leak, max_images)
    out_dir = Path(out_dir)
    num_classes = getattr(dataset, "num_classes", None)
    class_names = getattr(dataset, "class_names", None)
    cms: dict[str, ConfusionMatrix] = {}
    names: list[str] = []
    records = Predictor(model, test, device=device, amp=amp).iter_dataset(
        dataset, max_images=max_images, keep_probs=save_probs, num_workers=num_workers, denormalize=denormalize)
    num_evaluated = 0
    for rec in records:
        names.append(rec["name"])
        save_palette_png(rec["pred"], out_dir / "raw" / f"{rec['name']}.png")
        if rec["pred_crf"] is not None:
            save_palette_png(rec["pred_crf"], out_dir / "crf" / f"{rec['name']}.png")
        if save_probs:
            buffer = io.BytesIO()
            np.save(buffer, rec["probs"].astype(np.float32))
            atomic_write_bytes(out_dir / "probs" / f"{rec['name']}.npy", buffer.getvalue())
        if verbose:
            print(f"{rec['name']}: kept classes {rec['kept'] if rec['kept'] is not None else 'all'}", flush=True)
        if rec["mask"] is None:
            continue
        num_evaluated += 1
        for kind in ("raw", "crf"):
            pred = rec["pred"] if kind == "raw" else rec["pred_crf"]
            if pred is None:
                continue
            if kind not in cms:
                cms[kind] = ConfusionMatrix(num_classes or rec["num_classes"])
            cms[kind].update(pred, rec["mask"])

    uses_gt = bool(test.use_cls_label)
    summary = {"out_dir": str(out_dir), "split": split_description(dataset), "num_images": len(names),
               "num_evaluated": num_evaluated, "uses_gt_labels": uses_gt, "settings": test.as_dict(),
               "raw": None, "crf": None, "job": job}    # metrics when the dataset has pixel labels
    for kind, cm in cms.items():
        names_k = class_names if class_names is not None else default_class_names(cm.num_classes)
        summary[kind] = {**cm.summary(names_k), "uses_gt_labels": uses_gt}
        if verbose:
            title = f"{kind} predictions ({num_evaluated} images)" + (
                " -- classes chosen with the GROUND-TRUTH image labels" if uses_gt else "")
            print(cm.format_table(names_k, title=title), flush=True)
    write_json(out_dir / "summary.json", summary)
    return summary


# ----------------------------------------------------------------------------- command line

def parse_scales(text: str) -> list[float]:
    try:
        return [float(s) for s in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scales: expected numbers like '1,1.5,2,0.5,0.75', got {text!r}")


def count_type(flag: str) -> Callable[[str], int]:
    """An argparse type for a count: a whole number, 0 or more (``--max_images -1`` is refused by name)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"{flag}: expected a whole number, 0 or more, got {text!r}")
        return value
    return parse


def add_model_data_arguments(parser: argparse.ArgumentParser, output_help: str, data_list_help: str) -> None:
    """--config, --checkpoint, --output, --data_root, --data_list: shared by ``infer`` and ``export``."""
    parser.add_argument("--config", required=True, help="YAML experiment config (model and test sections)")
    parser.add_argument("--checkpoint", required=True, help="trained weights (.pth; official or slrnet format)")
    parser.add_argument("--output", required=True, help=output_help)
    parser.add_argument("--data_root", default=None, help="VOC-layout root (default: the config's dataset.root)")
    parser.add_argument("--data_list", default=None, help=data_list_help)


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """--max_images, --device, --num_workers: shared by ``infer`` and ``export``."""
    parser.add_argument("--max_images", type=count_type("--max_images"), default=0,
                        help="stop after this many images (0 = all)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 | mps")
    parser.add_argument("--num_workers", type=count_type("--num_workers"), default=0,
                        help="CRF processes (0 = all CPU cores)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the results another checkpoint or configuration left in --output first")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the authors' tools/infer_voc.py, plus --scales/--device/--num_workers/--allow_label_leak."""
    add_model_data_arguments(parser, output_help="output folder: raw/, crf/, summary.json",
                             data_list_help="list file (default: the val list of the root)")
    parser.add_argument("--use_cls_label", type=int, default=None, choices=(0, 1),
                        help="keep ground-truth image classes (1 only for pseudo-labelling training data)")
    parser.add_argument("--allow_label_leak", type=int, default=0, choices=(0, 1),
                        help="permit --use_cls_label 1 on a non-training split (results are marked)")
    parser.add_argument("--fp_cut", type=float, default=None, help="sigmoid score threshold (config: test.fp_cut)")
    parser.add_argument("--top_k", type=int, default=None, help="max kept classes (config: test.top_k)")
    parser.add_argument("--bg_pow", type=float, default=None, help="background power (config: test.bg_pow)")
    parser.add_argument("--apply_crf", type=int, default=None, choices=(0, 1),
                        help="dense CRF (config: test.apply_crf)")
    parser.add_argument("--scales", type=parse_scales, default=None,
                        help="comma-separated scales (config: test.scales)")
    parser.add_argument("--flip", type=int, default=None, choices=(0, 1), help="flip averaging (config: test.flip)")
    parser.add_argument("--resize", default=None, choices=RESIZE_MODES,
                        help="how each scale is made (config: test.resize; pil_bicubic = the authors')")
    parser.add_argument("--save_probs", type=int, default=0, choices=(0, 1), help="also write probs/<name>.npy")
    add_runtime_arguments(parser)
    parser.add_argument("--verbose", type=int, default=0, help="1: print per-image kept classes and the metrics table")


def build_split(cfg_dataset: dict, data_root=None, data_list=None, default_split: str = "val"):
    """A full-image dataset for a list file; the split name comes from the list's file name."""
    from slrnet.data.build import build_dataset

    cfg = dict(cfg_dataset)
    if data_root:   # the given root holds every split (a config's val_root no longer applies)
        cfg["root"], cfg["name"], cfg["val_root"] = str(data_root), "voc", None
    split = default_split
    if data_list:
        split = "train" if is_training_name(Path(data_list).stem) else "val"
        cfg["list"] = str(data_list)
    return build_dataset(cfg, split=split, train=False)


def test_config_from_args(cfg: dict, args: argparse.Namespace) -> TestConfig:
    """The config's ``test`` section with the flags the user gave (a flag left unset keeps the config's value)."""
    flags = {name: getattr(args, name, None) for name in ("scales", "flip", "resize", "use_cls_label", "fp_cut",
                                                          "top_k", "bg_pow", "apply_crf")}
    for name in ("flip", "use_cls_label", "apply_crf"):
        flags[name] = None if flags[name] is None else bool(flags[name])
    return TestConfig.from_config(cfg, **flags)


def cli_run(args: argparse.Namespace) -> int:
    from slrnet.output_folder import INFER_RESULTS, OutputFolder, describe_job
    from slrnet.utils import resolve_device

    device = resolve_device(args.device)
    model, cfg = load_trained_model(args.checkpoint, args.config, device, prepare=True)
    dataset = build_split(cfg["dataset"], args.data_root, args.data_list)
    test = test_config_from_args(cfg, args)
    check_before_writing(model, dataset, args.output, test.use_cls_label, bool(args.allow_label_leak),
                         args.max_images or None)
    job = describe_job("infer", args.checkpoint, cfg, dataset, test.as_dict(), results=INFER_RESULTS)
    folder = OutputFolder(args.output, job).claim(overwrite=args.overwrite)
    try:
        summary = run_inference(model, dataset, args.output, test, allow_label_leak=bool(args.allow_label_leak),
                                num_workers=args.num_workers, device=device, verbose=bool(args.verbose),
                                save_probs=bool(args.save_probs), max_images=args.max_images or None, job=job)
    finally:
        folder.release()
    for kind in ("raw", "crf"):
        if summary.get(kind):
            print(f"{kind}: mIoU {100 * (summary[kind]['miou'] or float('nan')):.2f} over "
                  f"{summary['num_evaluated']} images" + (" (uses ground-truth image labels)"
                                                          if summary["uses_gt_labels"] else ""))
    print(f"wrote {summary['num_images']} predictions to {args.output}")
    return 0
