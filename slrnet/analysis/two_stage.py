"""The two-stage recipe on equal terms (notebook 06, METHOD.md section 6).

A second stage is a fully supervised segmenter trained on the first stage's pseudo labels of the training images.
Whether it "beats" the first stage is only a fair question when both had the same chance, so notebook 06 trains:

* ``second_stage`` -- DeepLabV3+ on the CRF pseudo labels of **every** training image the first stage trained on;
* ``real_masks``   -- the same DeepLabV3+ on the real masks of those images: what a perfect first stage would
                      give the second, a ceiling when the budget lets it converge (:func:`comparison_reading` says
                      when it does not);

both with the training config of the second stage (``configs/<dataset>_two_stage_quick.yaml``: the first stage's
backbone, its starting weights, crop, batch size and number of epochs, hence the same number of SGD steps), and
every model is evaluated with and without the CRF, on the same val images.

    >>> from slrnet.analysis import two_stage
    >>> cfg = two_stage.segmenter_config("second_stage", None, "quick", out, out / "pseudo_labels",
    ...                                  train_set.root, train_set.mask_dir, num_classes=7)
    >>> trainer = two_stage.train_segmenter(cfg, out / "runs" / "second_stage")
    >>> two_stage.budget_row("second stage", trainer.cfg, len(trainer.train_set))
"""
from __future__ import annotations

import time
from pathlib import Path

from slrnet.learning_check import still_rising  # noqa: F401  (notebook 06 reads it here)
from slrnet.profiles import dataset_config, training_config

SEGMENTERS = ("second_stage", "real_masks")
SEGMENTER_LABELS = {"second_stage": "second stage (DeepLabV3+ on the CRF pseudo labels)",
                    "real_masks": "DeepLabV3+ on the real masks"}
PSEUDO_MASK_DIR = "SegmentationClassAug"          # where export_pseudo_labels writes the (CRF) labels
RAW_MASK_DIR = "SegmentationClassRaw"              # and the labels before the CRF


def segmenter_config(kind: str, config, profile: str, output_dir, labels_root, real_root, real_mask_dir: str,
                     num_classes: int, seed: int = 0, device: str = "auto", dataset: str = "shapes",
                     real_list=None, pseudo_mask_dir: str = PSEUDO_MASK_DIR) -> dict:
    """The training config of one segmenter: ``config`` (None: ``configs/<dataset>_two_stage_quick.yaml``) under
    ``profile``, training on the pseudo labels in ``labels_root``/``pseudo_mask_dir`` (``second_stage``; the labels
    before the CRF are in ``RAW_MASK_DIR``) or on the real masks in
    ``real_root``/``real_mask_dir`` of the images ``real_list`` names (``real_masks``; None: the root's training
    list), validating on ``real_root``'s val split."""
    if kind not in SEGMENTERS:
        raise ValueError(f"segmenter_config: kind must be one of {SEGMENTERS}, got {kind!r}")
    config = dataset_config(dataset, "two_stage_quick") if config is None else config
    real_root = str(Path(real_root).resolve())
    data = ({"dataset.root": str(Path(labels_root).resolve()), "dataset.mask_dir": pseudo_mask_dir}
            if kind == "second_stage" else
            {"dataset.root": real_root, "dataset.mask_dir": real_mask_dir,
             "dataset.train_list": None if real_list is None else str(real_list)})
    return training_config(config, profile, output_dir, overrides={
        **data, "dataset.val_root": real_root, "model.num_classes": int(num_classes), "misc.seed": int(seed),
        "misc.device": device})


def train_segmenter(cfg: dict, run_dir, device=None):
    """Train ``cfg`` into ``run_dir`` (replacing an earlier run there); returns (trainer, seconds)."""
    from slrnet.train import Trainer

    trainer = Trainer.build(cfg, Path(run_dir), overwrite=True, **({} if device is None else {"device": device}))
    start = time.time()
    trainer.fit()
    return trainer, time.time() - start


def steps_per_epoch(cfg: dict, num_images: int) -> int:
    """The SGD steps one epoch of ``cfg`` takes over ``num_images`` training images (one process, as
    ``slrnet.data.sampling.TrainingBatches`` counts them)."""
    t = cfg["train"]
    batches = int(num_images) // int(t["batch_size"])
    return min(batches, int(t["max_steps_per_epoch"])) if t.get("max_steps_per_epoch") else batches


def budget_row(name: str, cfg: dict, num_images: int) -> dict:
    """What a run trains with: its training images, epochs, steps per epoch, SGD steps, batch and base LR."""
    t = cfg["train"]
    per_epoch = steps_per_epoch(cfg, num_images)
    return {"model": name, "network": f"{cfg['model']['name']} ({cfg['model']['backbone']})",
            "training images": int(num_images), "epochs": int(t["num_epochs"]), "steps per epoch": per_epoch,
            "SGD steps": per_epoch * int(t["num_epochs"]), "batch": int(t["batch_size"]), "lr": t["lr"]}


def equal_budget(rows: list[dict]) -> bool:
    """True when every row trains the same images for the same number of SGD steps with the same batch."""
    keys = ("training images", "SGD steps", "batch")
    return len({tuple(r[k] for k in keys) for r in rows}) == 1


def crf_label_changes(raw_labels, crf_labels, masks, names, class_names) -> dict:
    """What the CRF did to each pseudo label, judged against the real mask (void ignored): the images it made
    more or less accurate, and for the image it hurt most the confusion it introduced (the (true class, CRF class)
    pair with the most pixels that were right before the CRF and are wrong after it).

    ``raw_labels``, ``crf_labels``, ``masks``: sequences of (H, W) label maps of the images ``names``."""
    import numpy as np

    from slrnet.data.files import VOID

    per_image = []
    for raw, crf, mask, name in zip(raw_labels, crf_labels, masks, names):
        raw, crf, mask = np.asarray(raw), np.asarray(crf), np.asarray(mask)
        scored = mask != VOID
        if not scored.any():
            continue
        before, after = float((raw == mask)[scored].mean()), float((crf == mask)[scored].mean())
        broken = scored & (raw == mask) & (crf != mask)                     # right before the CRF, wrong after
        pairs = np.stack([mask[broken], crf[broken]], 1)                    # (n, 2) true class, CRF class
        worst = None
        if len(pairs):
            values, counts = np.unique(pairs, axis=0, return_counts=True)
            true, new = values[counts.argmax()]
            worst = {"true": class_names[int(true)], "crf": class_names[int(new)], "pixels": int(counts.max())}
        per_image.append({"name": str(name), "accuracy_before": before, "accuracy_after": after,
                          "change": after - before, "worst_confusion": worst})
    if not per_image:
        raise ValueError("crf_label_changes: no image has scored pixels")
    hurt = min(per_image, key=lambda r: r["change"])
    return {"images": len(per_image), "better": sum(r["change"] > 0 for r in per_image),
            "worse": sum(r["change"] < 0 for r in per_image), "unchanged": sum(r["change"] == 0 for r in per_image),
            "most_hurt": hurt, "per_image": per_image}


def crf_reading(changes: dict) -> str:
    """One paragraph on :func:`crf_label_changes`."""
    hurt = changes["most_hurt"]
    text = (f"Against the real masks, the CRF made {changes['better']} of {changes['images']} pseudo labels more "
            f"accurate and {changes['worse']} less ({changes['unchanged']} unchanged).")
    if hurt["change"] < 0 and hurt["worst_confusion"]:
        w = hurt["worst_confusion"]
        text += (f" It hurt {hurt['name']} most (pixel accuracy {hurt['accuracy_before']:.3f} -> "
                 f"{hurt['accuracy_after']:.3f}): {w['pixels']} pixels of {w['true']} that were right became "
                 f"{w['crf']}. The CRF follows colour and edges, so where two touching objects look alike, or a "
                 f"thin part of one is a few pixels wide, it can hand a region to the neighbour's class; a second "
                 f"stage learns such errors only when they repeat across many labels.")
    return text


def comparison_reading(setting: str, first: float, second: float, ceiling: float,
                       ceiling_rising: bool | None = None) -> str:
    """One line on the second stage against the single stage and the real-mask model, for one test setting."""
    gain = second - first
    line = f"{setting}: second stage {second:.3f} vs single stage {first:.3f} ({gain:+.3f})"
    if ceiling < max(first, second):
        beaten = " and the ".join(name for name, v in (("single stage", first), ("second stage", second))
                                  if v > ceiling)
        line += (f"; the DeepLabV3+ on the real masks ({ceiling:.3f}) scores below the {beaten}: with perfect labels "
                 f"and this budget it does not beat them, so it is no ceiling here")
        if ceiling_rising:
            line += " (its val mIoU was still rising at its last validation: it had not converged)"
        return line
    room = ceiling - first
    if room <= 0:
        return line + f"; the single stage is already at the real-mask model's {ceiling:.3f}"
    if gain <= 0:
        return line + f"; it closes none of the single stage's gap of {room:.3f} to the real-mask model ({ceiling:.3f})"
    return line + f"; it closes {gain / room:.0%} of the single stage's gap to the real-mask model ({ceiling:.3f})"
