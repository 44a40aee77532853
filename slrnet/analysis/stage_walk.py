"""One image through every stage of a trained SLRNet, and the readings notebook 02 prints about its run.

``stage_walk`` runs the training forward's pieces on one training-style image (eval mode, no gradient), keeping
what the forward pass throws away, then the test-time prediction without and with the dense CRF:

    image ──► auxiliary head ──► class activation map (softmax over all classes)          "aux_cam"
          ──► CVLR (the aux map initialises the dictionary) ──► per-view heads:
                  view-1 mask                                                            "mask_view1"
                  view-2 mask, mapped onto view 1                                        "mask_view2"
          their average, classes absent from the image removed ("the CAM")               "cam"
          ──► PAMR refinement                                                            "refined"
          ──► thresholds ──► pseudo label (255 = ignored: no class or several)           "pseudo_label"
          the codes of both views (winning atom; atom k starts as class k's mean)        "codes_view1/2"
          test time: ``Predictor`` (class filter by the predicted scores) ──► argmax     "prediction"
          ──► dense CRF                                                                  "prediction_crf"

The maps are the forward pass's own (``SLRNet.features / aux / factorise / head / second_view / _pseudo_labels``),
so the CAM, PAMR map and pseudo label equal ``model(images, labels)["maps"]`` in eval mode (tested). The single-stage
baseline (``use_cvlr=False``) has no auxiliary head, second view or codes: those stages are None.

    >>> from slrnet.analysis import stage_walk as SW
    >>> walk = SW.stage_walk(model, image, labels, test=TestConfig.from_config(cfg, scales=[1.0], flip=False))
    >>> print(SW.stage_reading(walk, class_names))
    >>> # the run's readings (notebook 02)
    >>> SW.seg_loss_start(cfg)                       # first epoch (1-based) trained with the segmentation loss
    >>> print(SW.snapshot_reading(snapshots.history, cfg))   # the snapshot crops' pseudo labels, first to last
    >>> failures = SW.val_failures(records, class_names)   # records of Predictor.iter_dataset
    >>> print(SW.val_failure_reading(failures, shown=6))
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from slrnet.losses import pseudo_label_targets
from slrnet.ops import resize

IGNORED = 255
STAGES = ("aux_cam", "mask_view1", "mask_view2", "cam", "refined", "pseudo_label", "codes_view1", "codes_view2",
          "prediction", "prediction_crf")
FLAT_CODES = 0.05   # a mean winning code within 5 % of the way from uniform (1/K) to one-hot reads as "nearly uniform"
PROBABILITY_STAGES = ("aux_cam", "mask_view1", "mask_view2", "cam", "refined", "codes_view1", "codes_view2")


def _batch(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise TypeError(f"stage_walk: image must be a float tensor (3, H, W), got {type(image).__name__}")
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"stage_walk: image must be (3, H, W) (normalised), got {tuple(image.shape)}")
    return image[None]


@torch.no_grad()
def stage_walk(model, image: torch.Tensor, labels=None, *, test=None, mask=None, apply_crf: bool = True,
               generator: torch.Generator | None = None) -> dict:
    """Every stage of SLRNet for one image; maps on the CPU at the image's size (H, W).

    ``image`` (3, H, W) normalised like the training data; ``labels`` (K-1,) multi-hot image labels (the pseudo
    label drops the classes they lack, as in training; None keeps every class); ``test`` a
    :class:`slrnet.infer.TestConfig` for the prediction (default: single scale, no flip, the default class filter;
    its ``use_cls_label`` decides whether ``labels`` choose the classes); ``mask`` the ground truth (H, W), only
    kept for figures and readings; ``apply_crf=False`` skips the CRF (``prediction_crf`` None); ``generator``
    draws the optional flip of view 2. The model is run in eval mode and put back in its mode afterwards.

    Keys: ``image`` (3, H, W), ``labels`` (K-1,) or None, ``mask`` (H, W) or None, ``num_classes``; probability
    maps (K, H, W) ``aux_cam``, ``mask_view1``, ``mask_view2`` (view 2 mapped onto view 1), ``cam`` (their average,
    absent classes removed), ``refined`` (PAMR), ``codes_view1``, ``codes_view2`` (codes of view 2 mapped onto
    view 1); ``pseudo_label`` (H, W) int64, 255 ignored; ``probs`` (K, H, W) the test-time probabilities after the
    class filter, ``kept`` (kept foreground classes, 1-based, or None = all), ``prediction`` and
    ``prediction_crf`` (H, W) int64. Stages a model does not have are None.
    """
    from slrnet.infer import Predictor, TestConfig

    if not hasattr(model, "_pseudo_labels"):
        raise ValueError(f"stage_walk: expected an SLRNet (it makes pseudo labels), got {type(model).__name__}")
    test = test if test is not None else TestConfig(scales=(1.0,), flip=False)
    param = next(model.parameters())
    x = _batch(image).to(device=param.device, dtype=param.dtype)                     # (1, 3, H, W)
    H, W = x.shape[-2:]
    lab = None if labels is None else torch.as_tensor(labels, dtype=param.dtype, device=param.device).reshape(1, -1)
    if lab is not None and lab.shape[1] != model.num_classes - 1:
        raise ValueError(f"stage_walk: labels hold {lab.shape[1]} classes, the model {model.num_classes - 1} "
                         "foreground classes")
    was_training = model.training
    model.eval()
    try:
        out = dict.fromkeys(STAGES)
        x1, s1 = model.features(x)
        if model.use_cvlr:
            view2, inverse, _ = model.second_view(x, generator=generator)
            x2, s2 = model.features(view2)
            aux_logits, aux_masks = model.aux(x1)                                     # (1, K, h, w)
            (f1, f2), (z1, z2), _ = model.factorise(x1, aux_logits, x2)
            _, masks1 = model.head(f1, s1)
            _, masks2 = model.head(f2, s2)
            size = masks1.shape[-2:]
            masks2_up, z2_up = inverse(masks2, size), inverse(z2, size)
            cam = (masks1 + masks2_up) / 2
            out.update(aux_cam=aux_masks, mask_view2=masks2_up, codes_view1=z1, codes_view2=z2_up)
        else:
            _, masks1 = model.head(x1, s1)
            cam = masks1
        out["mask_view1"] = masks1
        maps = model._pseudo_labels(x, cam, lab, (H, W))
        out.update(cam=maps["cam"], refined=maps["refined"])
        out["pseudo_label"] = pseudo_label_targets(maps["pseudo_gt"])[0].cpu()
        for key in PROBABILITY_STAGES:
            if out[key] is not None:
                out[key] = resize(out[key].float(), (H, W))[0].cpu()
        predictor = Predictor(model, test, device=param.device, optimize=False)
        _, keep, probs = predictor.filtered(x[0], labels=None if lab is None else lab[0])
    finally:
        model.train(was_training)
    probs = probs.float().cpu()                                                       # (K, H, W)
    out["probs"] = probs
    out["kept"] = None if keep is None else (torch.nonzero(keep.cpu()).flatten() + 1).tolist()
    out["prediction"] = probs.argmax(0)
    if apply_crf:
        from slrnet.crf import crf_argmax
        from slrnet.data.transforms import denormalize

        rgb = denormalize(x[0].float().cpu())
        out["prediction_crf"] = torch.from_numpy(crf_argmax(rgb, probs.numpy(), test.crf_iters).astype(np.int64))
    out.update(image=x[0].float().cpu(), num_classes=int(model.num_classes),
               labels=None if lab is None else lab[0].cpu(),
               mask=None if mask is None else torch.as_tensor(mask).cpu().long())
    return out


def label_map(walk: dict, stage: str) -> torch.Tensor | None:
    """The stage as a class-index map (H, W): the argmax of a probability map (the winning atom for codes), the
    label maps as they are; None for a stage the model lacks."""
    value = walk.get(stage)
    if value is None:
        return None
    return value.argmax(0) if stage in PROBABILITY_STAGES else value


def confidence(walk: dict, stage: str) -> torch.Tensor | None:
    """How sure a probability stage is per pixel: its largest value (H, W) (the winning code for codes); None for
    label maps and missing stages."""
    value = walk.get(stage)
    if value is None or stage not in PROBABILITY_STAGES:
        return None
    return value.max(0).values


# ----------------------------------------------------------------------------- readings
def _pct(x: float) -> str:
    return "under 0.1 %" if 0 < x < 0.0005 else f"{100 * x:.1f} %"


def _name(class_names, c: int) -> str:
    if c == IGNORED:
        return "ignored"
    return class_names[c] if class_names is not None and c < len(class_names) else f"class {c}"


def _agree(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float:
    same = (a == b)
    if where is not None:
        same = same[where]
    return float(same.float().mean()) if same.numel() else float("nan")


def _iou(pred, gt, num_classes: int) -> float:
    from slrnet.analysis.evaluation_report import image_iou

    return image_iou(np.asarray(pred), np.asarray(gt), num_classes)


def stage_reading(walk: dict, class_names: Sequence[str] | None = None, name: str | None = None) -> str:
    """What one image's stages show, worded from their maps: the aux map's classes (absent ones included), how
    far the two views' masks agree, what PAMR changed, the pseudo label's shares (ignored included), whether the
    codes' winning atoms agree between the views and with the pseudo label, what the class filter kept, what the
    CRF changed and, with a ground truth, the per-image IoU of the pseudo label, the prediction and the CRF."""
    k = walk["num_classes"]
    present = set(range(1, k)) if walk["labels"] is None else \
        {c + 1 for c in torch.nonzero(walk["labels"] > 0.5).flatten().tolist()}
    head = f"{name}: " if name else ""
    lines = [head + "image labels " + (", ".join(_name(class_names, c) for c in sorted(present)) or "none") + "."]
    aux = label_map(walk, "aux_cam")
    if aux is not None:
        counts = torch.bincount(aux.flatten(), minlength=k).float() / aux.numel()
        absent = [c for c in range(1, k) if c not in present and counts[c] > 0]
        text = (f"Auxiliary CAM: argmax foreground on {_pct(float(counts[1:].sum()))} of the pixels, mean top "
                f"probability {float(confidence(walk, 'aux_cam').mean()):.2f}")
        text += ("; it also names " + ", ".join(f"{_name(class_names, c)} ({_pct(float(counts[c]))})" for c in absent)
                 + ", absent from the image (the dictionary starts from these maps; the pseudo label drops them)."
                 if absent else "; it names no class absent from the image.")
        lines.append(text)
    m1, m2 = label_map(walk, "mask_view1"), label_map(walk, "mask_view2")
    if m2 is not None:
        lines.append(f"Views: the two masks' argmax agree on {_pct(_agree(m1, m2))} of the pixels.")
    cam, refined = label_map(walk, "cam"), label_map(walk, "refined")
    lines.append(f"PAMR changed the argmax of {_pct(1 - _agree(cam, refined))} of the pixels of the averaged CAM "
                 f"(mean top probability {float(confidence(walk, 'cam').mean()):.2f} -> "
                 f"{float(confidence(walk, 'refined').mean()):.2f}).")
    pseudo = walk["pseudo_label"]
    shares = {c: float((pseudo == c).float().mean()) for c in [*range(k), IGNORED]}
    lines.append("Pseudo label: " + ", ".join(f"{_name(class_names, c)} {_pct(s)}" for c, s in shares.items()
                                              if s > 0) + ".")
    c1, c2 = label_map(walk, "codes_view1"), label_map(walk, "codes_view2")
    if c1 is not None:
        labelled = pseudo != IGNORED
        top = float(confidence(walk, "codes_view1").mean())
        text = (f"Codes: the winning atoms of the two views agree on {_pct(_agree(c1, c2))} of the pixels; the "
                f"view-1 winning atom is the pseudo label's class on {_pct(_agree(c1, pseudo, labelled))} of its "
                f"labelled pixels (mean winning code {top:.2f}, uniform {1 / k:.2f})")
        if top < 1 / k + FLAT_CODES * (1 - 1 / k):
            text += ("; the codes are nearly uniform, so each winning atom rests on small differences (notebook 04 "
                     "measures why)")
        lines.append(text + ".")
    pred, crf = walk["prediction"], walk["prediction_crf"]
    kept = walk["kept"]
    text = ("Prediction: the class filter kept " + ("every class" if kept is None else
            (", ".join(_name(class_names, c) for c in kept) or "no object class")))
    text += (f"; it agrees with the pseudo label on {_pct(_agree(pred, pseudo, pseudo != IGNORED))} of its labelled "
             "pixels")
    if crf is not None:
        text += f"; the CRF changed {_pct(1 - _agree(pred, crf))} of the pixels"
    lines.append(text + ".")
    gt = walk["mask"]
    if gt is not None:
        parts = [f"pseudo label {_iou(pseudo.numpy(), gt.numpy(), k):.3f} (its ignored pixels not scored)",
                 f"prediction {_iou(pred.numpy(), gt.numpy(), k):.3f}"]
        if crf is not None:
            parts.append(f"with the CRF {_iou(crf.numpy(), gt.numpy(), k):.3f}")
        lines.append("Against the ground truth (per-image IoU): " + ", ".join(parts) + ".")
    return "\n".join(lines)


def seg_loss_start(cfg: dict) -> dict:
    """When the segmentation loss is on, from the config: the trainer adds it for epoch index > ``pretrain_epochs``
    (0-based), so the first ``pretrain_epochs + 1`` epochs train without it. Returns 1-based epoch numbers as the
    figures print them: ``{"num_epochs", "pretrain_epochs", "epochs_without", "first_epoch"}`` (``first_epoch``
    None when no epoch has it)."""
    t = cfg["train"]
    n, p = int(t["num_epochs"]), int(t["pretrain_epochs"])
    without = min(n, p + 1)
    return {"num_epochs": n, "pretrain_epochs": p, "epochs_without": without,
            "first_epoch": without + 1 if without < n else None}


def seg_loss_reading(cfg: dict) -> str:
    s = seg_loss_start(cfg)
    if s["first_epoch"] is None:
        return (f"train.pretrain_epochs = {s['pretrain_epochs']}: no epoch of the {s['num_epochs']} adds the "
                "segmentation loss (it is on for epoch index > pretrain_epochs, counted from 0).")
    without = (f"epoch 1 of {s['num_epochs']} trains" if s["epochs_without"] == 1 else
               f"epochs 1-{s['epochs_without']} of {s['num_epochs']} train")
    return (f"train.pretrain_epochs = {s['pretrain_epochs']}: the segmentation loss is on for epoch index > "
            f"{s['pretrain_epochs']} (counted from 0), so {without} without it and it starts at epoch "
            f"{s['first_epoch']} (as the figures count).")


def _pseudo_stack(entry) -> tuple[int, torch.Tensor]:
    epoch, maps = entry
    pseudo = maps["pseudo"] if isinstance(maps, dict) else maps
    return int(epoch), torch.as_tensor(pseudo)


def pseudo_label_change(history: Sequence) -> dict:
    """How the snapshot crops' pseudo labels change over training, from the callback's history (a list of
    ``(epoch, labels (n, H, W))`` or ``(epoch, {"pseudo": labels, ...})``, 255 ignored).

    Returns ``epochs`` (1-based), ``ignored`` and ``foreground`` (share of pixels per snapshot epoch, over all
    crops), ``changed`` (per crop: share of pixels whose pseudo label differs between the first and the last
    snapshot epoch), ``changed_all`` (over all crops) and ``changed_step`` (share changed from each snapshot
    epoch to the next)."""
    if not history:
        raise ValueError("pseudo_label_change: the snapshot history is empty (no validation ran with snapshots)")
    entries = [_pseudo_stack(e) for e in history]
    epochs = [e + 1 for e, _ in entries]
    stacks = [p for _, p in entries]
    first, last = stacks[0], stacks[-1]
    diff = (first != last).flatten(1).float()                                          # (n, H*W)
    return {"epochs": epochs,
            "ignored": [float((p == IGNORED).float().mean()) for p in stacks],
            "foreground": [float(((p > 0) & (p != IGNORED)).float().mean()) for p in stacks],
            "changed": diff.mean(1).tolist(), "changed_all": float(diff.mean()),
            "changed_step": [float((a != b).float().mean()) for a, b in zip(stacks[:-1], stacks[1:])]}


def _trend(first: float, last: float, words: tuple[str, str, str]) -> str:
    """words[0] (down), words[1] (up) or words[2] (the same): a change counts when it exceeds half a point of the
    pixels and a tenth of the larger share."""
    d = last - first
    if abs(d) <= max(0.005, 0.1 * max(first, last)):
        return words[2]
    return words[1] if d > 0 else words[0]


def snapshot_reading(history: Sequence, cfg: dict | None = None) -> str:
    """The pseudo labels of the snapshot crops over training, worded from :func:`pseudo_label_change`: the share
    of ignored and foreground pixels at each snapshot epoch, how much changed between the first and the last, which
    epoch the change happened in, and (with ``cfg``) whether the first snapshot came before the segmentation loss
    started."""
    c = pseudo_label_change(history)
    epochs = c["epochs"]
    lines = ["Ignored pixels (cream in the figures) per snapshot epoch: " +
             ", ".join(f"epoch {e} {_pct(s)}" for e, s in zip(epochs, c["ignored"])) + ".",
             "Foreground pixels per snapshot epoch: " +
             ", ".join(f"epoch {e} {_pct(s)}" for e, s in zip(epochs, c["foreground"])) + "."]
    if len(epochs) == 1:
        lines.append(f"Only one snapshot (epoch {epochs[0]}): nothing to compare.")
    else:
        per_crop = ", ".join(_pct(x) for x in c["changed"])
        lines.append(f"Between epoch {epochs[0]} and epoch {epochs[-1]} the pseudo label changed on "
                     f"{_pct(c['changed_all'])} of the pixels (per crop: {per_crop}).")
        steps = c["changed_step"]
        if len(steps) > 1:
            j = int(np.argmax(steps))
            lines.append(f"The largest change between consecutive snapshots is from epoch {epochs[j]} to epoch "
                         f"{epochs[j + 1]} ({_pct(steps[j])} of the pixels); the last step changed {_pct(steps[-1])}.")
        ignored = _trend(c["ignored"][0], c["ignored"][-1], ("fewer", "more", "about as many"))
        foreground = _trend(c["foreground"][0], c["foreground"][-1], ("less", "more", "about as much"))
        lines.append(f"From the first to the last snapshot: {ignored} ignored pixels ({_pct(c['ignored'][0])} -> "
                     f"{_pct(c['ignored'][-1])}) and {foreground} foreground ({_pct(c['foreground'][0])} -> "
                     f"{_pct(c['foreground'][-1])}).")
    if cfg is not None:
        s = seg_loss_start(cfg)
        if s["first_epoch"] is not None:
            before = [e for e in epochs if e < s["first_epoch"]]
            lines.append(f"The segmentation loss starts at epoch {s['first_epoch']}: " +
                         (f"the snapshot of epoch {before[-1]} shows the pseudo labels before the network ever trained "
                          "on them." if before else
                          f"every snapshot (the first at epoch {epochs[0]}) comes after it started, so the first one "
                          "already shows pseudo labels the network has trained on."))
    return "\n".join(lines)


def val_failures(records: Sequence[dict], class_names: Sequence[str] | None = None,
                 num_classes: int | None = None) -> list[dict]:
    """Per scored val image (``records`` with ``name``, ``pred`` and ``mask``, e.g. from
    ``Predictor.iter_dataset``; images without a ground truth are skipped): ``{"name", "iou", "mode", "detail",
    "error_share"}``, the mode from :func:`slrnet.analysis.evaluation_report.failure_mode`, in record order."""
    from slrnet.analysis.evaluation_report import failure_mode, image_iou

    scored = [r for r in records if r.get("mask") is not None]
    if not scored:
        return []
    k = int(num_classes or len(class_names or []) or max(int(r["num_classes"]) for r in scored))
    out = []
    for r in scored:
        f = failure_mode(r["pred"], r["mask"], k, class_names)
        out.append({"name": str(r["name"]), "iou": float(image_iou(r["pred"], r["mask"], k)), "mode": f["mode"],
                    "detail": f["detail"], "error_share": f["error_share"]})
    return out


def failure_counts(failures: Sequence[dict]) -> dict[str, int]:
    """How many images each failure mode explains, most frequent first."""
    modes = [f["mode"] for f in failures]
    return {m: modes.count(m) for m in sorted(set(modes), key=lambda m: (-modes.count(m), m))}


def val_failure_reading(failures: Sequence[dict], shown: int | None = None) -> str:
    """Which val images fail and how, from :func:`val_failures`: the first ``shown`` images (those a figure shows)
    one line each, then the count of each failure mode over all of them and the three lowest per-image IoUs."""
    if not failures:
        return "No val image has a ground truth: nothing to score."
    lines = []
    for f in failures[: len(failures) if shown is None else shown]:
        if f["mode"] == "no error":
            lines.append(f"{f['name']} (IoU {f['iou']:.3f}): every scored pixel right.")
        else:
            lines.append(f"{f['name']} (IoU {f['iou']:.3f}): {f['mode']} - {f['detail']}; "
                         f"{_pct(f['error_share'])} of its pixels wrong.")
    lines.append(f"All {len(failures)} val images: " +
                 ", ".join(f"{m} {n}" for m, n in failure_counts(failures).items()) + ".")
    worst = sorted(failures, key=lambda f: f["iou"])[:3]
    lines.append("Lowest per-image IoU: " + "; ".join(f"{f['name']} {f['iou']:.3f} ({f['mode']}: {f['detail']})"
                                                      for f in worst) + ".")
    return "\n".join(lines)


def per_class_reading(per_class_iou: dict, top: int = 2) -> str:
    """The per-class IoU bars in words: the best and the worst classes, and what a bar cannot say."""
    values = {n: v for n, v in per_class_iou.items() if v is not None and np.isfinite(v)}
    if not values:
        return "No class was scored."
    ranked = sorted(values, key=values.get)
    low = ", ".join(f"{n} {values[n]:.3f}" for n in ranked[:top])
    high = ", ".join(f"{n} {values[n]:.3f}" for n in reversed(ranked[-top:]))
    spread = values[ranked[-1]] - values[ranked[0]]
    return (f"Per-class IoU: highest {high}; lowest {low} (a spread of {spread:.3f}). A low bar says that class's "
            "pixels and predictions overlap poorly, not what they were taken for: that is the confusion matrix's "
            "job (notebook 05).")


def factor_history_reading(history: Sequence[dict]) -> str:
    """What the low-rank module's training diagnostics (``train_factor_*``, :mod:`slrnet.diagnostics`) show at the
    first and the last epoch: whether its atoms stayed distinct and its reconstruction low-rank, or collapsed."""
    rows = [h for h in history if h.get("train_factor_atom_cos") is not None]
    if not rows:
        return "no factor diagnostics in this run's history (a run without the low-rank module)"
    first, last = rows[0], rows[-1]
    text = (f"Low-rank module, epoch {first['epoch'] + 1} -> {last['epoch'] + 1}: mean cosine between atoms "
            f"{first['train_factor_atom_cos']:.3f} -> {last['train_factor_atom_cos']:.3f}, effective rank of the "
            f"reconstruction {first['train_factor_rank']:.2f} -> {last['train_factor_rank']:.2f}, winning code "
            f"{first['train_factor_code_top']:.3f} -> {last['train_factor_code_top']:.3f}.")
    from slrnet.analysis.factors import COLLAPSED_ATOM_COS, COLLAPSED_RANK

    if last["train_factor_atom_cos"] > COLLAPSED_ATOM_COS and last["train_factor_rank"] < COLLAPSED_RANK:
        text += (" The dictionary has collapsed: every atom is the same vector and every pixel the same mix of them, "
                 "so the reconstruction adds one vector per image to the features, not a low-rank picture of the "
                 "scene. What this model segments with comes from the rest of the network; notebook 04 measures "
                 "the collapse and its cause, and what each part of CVLR earns.")
    return text
