"""Did the run learn? Three symptoms of a run that finished without learning, and one paragraph that says so.

A training run can end "ok" with a checkpoint that knows nothing: the classification loss never left the label
prior (the network answers with the classes' frequencies, whatever the image), the pseudo labels stayed empty
(so the segmentation loss had nothing to teach), or the val mIoU is what predicting background everywhere scores.
``check_learning`` looks for each after training; the trainer stores the result in its history and checkpoint,
notebook 02 prints it, and the notebooks that analyse a checkpoint (04, 05, 06) repeat it before they start.

    >>> from slrnet.learning_check import check_learning, label_prior_loss
    >>> report = check_learning(history, prior_cls_loss=label_prior_loss(labels, terms=2.4),
    ...                         background_only_miou=0.12)
    >>> report["learned"], report["message"]

The thresholds are deliberately loose (a run has to be close to a symptom to be flagged): ``PRIOR_MARGIN`` of the
prior loss, ``EMPTY_PSEUDO_SHARE`` of the images, ``BACKGROUND_MARGIN`` of mIoU above background-only.
"""
from __future__ import annotations

import math

import numpy as np

PRIOR_MARGIN = 0.9           # classification loss at >= 90 % of the prior's: still at the prior
EMPTY_PSEUDO_SHARE = 0.5     # pseudo labels without any foreground pixel for more than half the images
BACKGROUND_MARGIN = 0.02     # val mIoU within 0.02 of predicting background everywhere

CAUSES = ("Likely causes: the backbone's starting weights do not carry features for these images (check "
          "model.pretrained), the schedule is too short for this data (train.num_epochs) or the learning rate is off "
          "(train.lr), the objects are too small for the crop and the feature stride (dataset.crop_size, the backbone), "
          "or the labels do not fit the images (run notebook 00 on the data). Figures and numbers computed from this "
          "checkpoint describe an untrained network.")


def label_prior_loss(labels, terms: float = 1.0) -> float:
    """The multi-label soft-margin loss of the best constant answer, p_c = the share of images with class c:
    ``terms`` x mean over classes of the binary entropy H(p_c) (nats). ``labels`` (N, K-1) multi-hot; ``terms``
    counts the classification terms the model sums (SLRNet: view 1 + view 2 + 0.4 x auxiliary head = 2.4)."""
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2 or not len(y):
        raise ValueError(f"label_prior_loss: expected multi-hot labels (N, K-1), got shape {y.shape}")
    p = y.mean(0).clip(1e-6, 1 - 1e-6)
    entropy = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    return float(terms * entropy.mean())


def background_only_miou(dataset, num_classes: int, max_images: int | None = None) -> float:
    """The mIoU of predicting background on every pixel of ``dataset`` (over its first ``max_images``)."""
    from slrnet.metrics import ConfusionMatrix

    cm = ConfusionMatrix(num_classes)
    count = len(dataset) if not max_images else min(len(dataset), int(max_images))
    for i in range(count):
        mask = np.asarray(dataset[i]["mask"])
        cm.update(np.zeros_like(mask), mask)
    return float(cm.miou())


def check_learning(history: list[dict], prior_cls_loss: float | None = None,
                   background_only_miou: float | None = None, judge_pseudo_labels: bool = True) -> dict:
    """{"learned": bool, "findings": [...], "message": one paragraph, and the numbers compared}.

    Reads the last epoch of ``history`` (the trainer's records): ``train_cls`` against ``prior_cls_loss``,
    ``train_pseudo_empty`` (share of images whose pseudo label has no foreground pixel, after the pretraining
    epochs), and the last ``val_miou`` against ``background_only_miou``. A number that is missing is not judged;
    ``judge_pseudo_labels=False`` leaves the pseudo labels out (semi-supervised runs learn from their pixel labels,
    and their strict thresholds leave many unlabelled images without foreground while they do).
    """
    if not history:
        raise ValueError("check_learning: the history is empty (nothing was trained)")
    last = history[-1]
    findings = []
    cls = last.get("train_cls")
    if prior_cls_loss is not None and cls is not None and math.isfinite(cls) and cls >= PRIOR_MARGIN * prior_cls_loss:
        findings.append(f"the classification loss ended at {cls:.3f}, {cls / prior_cls_loss:.0%} of what answering "
                        f"every image with the label frequencies scores ({prior_cls_loss:.3f}): the network did not "
                        f"learn to tell the images apart")
    empty = last.get("train_pseudo_empty")
    if judge_pseudo_labels and empty is not None and empty > EMPTY_PSEUDO_SHARE:
        findings.append(f"the pseudo labels of {empty:.0%} of the training images in the last epoch had no "
                        f"foreground pixel, so the segmentation loss had almost nothing to learn from")
    vals = [h["val_miou"] for h in history if h.get("val_miou") is not None]
    if background_only_miou is not None and vals and vals[-1] <= background_only_miou + BACKGROUND_MARGIN:
        findings.append(f"the val mIoU is {vals[-1]:.3f}, what predicting background everywhere scores "
                        f"({background_only_miou:.3f})")
    learned = not findings
    if learned:
        message = "The run learned: none of the symptoms of an untrained network (classification loss at the label " \
                  "prior, empty pseudo labels, background-only mIoU) was found."
    else:
        message = "This run did not learn: " + "; ".join(findings) + ". " + CAUSES
    return {"learned": learned, "findings": findings, "message": message, "train_cls": cls,
            "prior_cls_loss": prior_cls_loss, "train_pseudo_empty": empty,
            "val_miou": vals[-1] if vals else None, "background_only_miou": background_only_miou}


STILL_RISING_MARGIN = 0.005  # val mIoU gained at the last validation above which a run had not converged


def still_rising(history: list[dict], margin: float = STILL_RISING_MARGIN) -> bool:
    """True when a run's last validation beat the one before by more than ``margin`` mIoU: it had not converged
    (records without ``val_miou`` are skipped)."""
    vals = [h["val_miou"] for h in history if h.get("val_miou") is not None]
    return len(vals) >= 2 and vals[-1] > vals[-2] + margin
