"""Look inside SLRNet's low-rank module: the dictionary, the codes of both views, step by step.

``extract_factors`` runs a trained SLRNet on one image (eval mode, no gradient) exactly as its
training forward does (view 2 = the image resized by ``scale_factor``, optionally flipped, and the
model says which), and asks the cross-view factorisation (METHOD.md 1.5-1.6) for its iterates
(``SLRNet.factorise(..., return_iterates=True)``), keeping what the module discards:

    X' = W1 X               (N1+N2, C)  stacked features of both views, the matrix being factorised
    D_0 = l2n(W1 D0ᵀ)       (K, C)      atom k = the soft mean of class k under the aux head
    for t = 1..T:  Z_t = softmax_K(D_{t-1} X'ᵀ / τ),  D_t = l2n(A_t X')      (codes, dictionary)
                   objective_t = ||X' − Z_tᵀ D_t||²  (Σ over both views)
    R = Z_Tᵀ D_T            (N1+N2, C)  the rank-≤K reconstruction fed back through W2

    >>> from slrnet.analysis.factors import extract_factors, summarize_factors
    >>> f = extract_factors(model, image)                   # image (3, H, W), normalised
    >>> f["codes1"].shape, f["codes2"].shape, f["dictionaries"].shape     # (K,h,w) (K,h2,w2) (T+1,K,C)
    >>> summarize_factors([f], [mask])["code_agreement"]

Plus the numbers the figures summarise: per-pixel code disagreement (the code-consistency term of
the loss), the atom/class overlap with the ground truth and its purity, singular values and the
entropy-based effective rank (Roy & Vetterli, "The effective rank: a measure of effective
dimensionality", EUSIPCO 2007). Notebook 04 gets its model from ``slrnet.analysis.trained_model.load_or_train``
(notebook 02's checkpoint, or a short run trained on the spot so the notebook also runs alone).

Reference: Pan et al., "Learning Self-Supervised Low-Rank Network for Single-Stage Weakly and
Semi-Supervised Semantic Segmentation", IJCV 2022.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from slrnet.losses import max_onehot
from slrnet.ops import resize

COLLAPSED_ATOM_COS = 0.99    # mean cosine between atoms above which the dictionary is one vector repeated
COLLAPSED_RANK = 1.5         # effective rank of the reconstruction below which it is one vector per image

VOID = 255


def _as_batch(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise TypeError(f"extract_factors: image must be a float tensor (3, H, W) or (1, 3, H, W), "
                        f"got {type(image).__name__} {getattr(image, 'dtype', '')}")
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"extract_factors: image must be (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
    return image


# ----------------------------------------------------------------------------- extraction
@torch.no_grad()
def extract_factors(model, image: torch.Tensor, num_iters: int | None = None,
                    generator: torch.Generator | None = None, temperature: float | None = None) -> dict:
    """Every factor of SLRNet's cross-view factorisation for one image; tensors on the CPU.

    image: (3, H, W) or (1, 3, H, W), normalised like the training data. ``num_iters``: CVLR steps to
    run (None = the module's T; more shows where the iteration heads); ``temperature``: the codes' softmax
    temperature for this call (None = the module's τ; the network's weights are unchanged). ``generator``
    draws the optional flip of view 2 (``model.second_view``; None = the global RNG, as the training forward).
    The model is put in eval mode and restored afterwards.

    Keys (K atoms = classes incl. background, T iterations, views 1 (h, w) and 2 (h2, w2)):
      codes1 (K, h, w), codes2 (K, h2, w2), codes2_up (K, h, w) = inverse(codes2): final codes;
      codes1_iters / codes2_iters / codes2_up_iters (T, K, ...): the codes after each step;
      dictionary_init (K, C): D0ᵀ, class means of the raw features X; dictionaries (T+1, K, C): l2n(W1 D0ᵀ)
      then D_t; objective / relative_objective (T,): ||X' − Z_tᵀ D_t||² (and / ||X'||²);
      features (N1+N2, C): X' = W1 X; reconstruction (N1+N2, C): R = Z_Tᵀ D_T; output (N1+N2, C):
      ReLU(X + W2 ReLU(R)), what the heads see; aux_masks (K, h, w): softmax of the aux head;
      masks (K, H, W), prediction (H, W), scores (K-1,) or None: ``model.predict`` (single view);
      image (3, H, W), view2 (3, H2, W2), view2_flipped, view_shapes, view_sizes, num_iters, temperature.
    """
    if not getattr(model, "use_cvlr", False):
        raise ValueError("extract_factors: the model was built with use_cvlr=False (the single-stage baseline): "
                         "it has no dictionary or codes to extract; build it with model.use_cvlr=true")
    fr = model.factorization_reconstruction
    steps = fr.num_iters if num_iters is None else num_iters
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"extract_factors: num_iters must be a positive int or None, got {num_iters!r}")
    param = next(model.parameters())
    images = _as_batch(image).to(device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        view2, inverse, flip = model.second_view(images, generator=generator)      # (1, 3, H2, W2)
        x1, _ = model.features(images)                                              # (1, C, h, w)
        x2, _ = model.features(view2)                                               # (1, C, h2, w2)
        aux_logits, aux_masks = model.aux(x1)                                       # (1, K, h, w)
        *_, it = model.factorise(x1, aux_logits, x2, return_iterates=True, num_iters=steps,
                                 temperature=temperature)
        features = fr.transform1(it["input"])                                       # (1, N, C) X' = W1 X
        recons = torch.matmul(it["codes"].transpose(2, 3), it["dictionaries"][1:])  # (T, 1, N, C) Z_tᵀ D_t
        objective = (features - recons).pow(2).sum(dim=(1, 2, 3))                   # (T,)
        predicted = model.predict(images)
    finally:
        model.train(was_training)

    (h, w), (h2, w2) = x1.shape[-2:], x2.shape[-2:]
    n1 = h * w
    codes = it["codes"][:, 0]                                                       # (T, K, N)
    codes1 = codes[:, :, :n1].reshape(steps, -1, h, w)                              # (T, K, h, w)
    codes2 = codes[:, :, n1:].reshape(steps, -1, h2, w2)                            # (T, K, h2, w2)
    codes2_up = inverse(codes2, (h, w))                                             # (T, K, h, w)
    cpu = lambda t: t.detach().cpu()  # noqa: E731
    masks = predicted["masks"][0]
    return {
        "image": cpu(images[0]), "view2": cpu(view2[0]), "view2_flipped": bool(flip is not None and flip[0]),
        "view_shapes": ((h, w), (h2, w2)), "view_sizes": (n1, h2 * w2),
        "num_iters": steps, "temperature": fr.temperature if temperature is None else float(temperature),
        "codes1": cpu(codes1[-1]), "codes2": cpu(codes2[-1]), "codes2_up": cpu(codes2_up[-1]),
        "codes1_iters": cpu(codes1), "codes2_iters": cpu(codes2), "codes2_up_iters": cpu(codes2_up),
        "dictionary_init": cpu(it["dictionary_init"][0].T), "dictionaries": cpu(it["dictionaries"][:, 0]),
        "objective": cpu(objective), "relative_objective": cpu(objective / features.pow(2).sum().clamp_min(1e-30)),
        "features": cpu(features[0]), "reconstruction": cpu(it["reconstruction"][0]), "output": cpu(it["output"][0]),
        "aux_masks": cpu(aux_masks[0]), "masks": cpu(masks), "prediction": masks.argmax(0).cpu(),
        "scores": None if predicted["scores"] is None else cpu(predicted["scores"][0]),
    }


# ----------------------------------------------------------------------------- per-image numbers
def winning_atoms(codes: torch.Tensor, size=None) -> torch.Tensor:
    """Codes (K, h, w) -> index of the largest code per pixel (h, w); resized (bilinear) to ``size`` first."""
    if codes.dim() != 3:
        raise ValueError(f"winning_atoms: codes must be (K, h, w), got {tuple(codes.shape)}")
    if size is not None:
        codes = resize(codes[None], size)[0]
    return codes.argmax(0)


def code_disagreement(codes1: torch.Tensor, codes2_up: torch.Tensor) -> torch.Tensor:
    """Per-pixel code-consistency term mean_k |keepmax(Z1) − keepmax(inv(Z2))|, (K, h, w) x 2 -> (h, w).

    Its mean over pixels is the loss term ``slrnet.losses.code_consistency`` of the image.
    """
    if codes1.dim() != 3 or codes1.shape != codes2_up.shape:
        raise ValueError(f"code_disagreement: expected two (K, h, w) codes of one shape, got "
                         f"{tuple(codes1.shape)} and {tuple(codes2_up.shape)}")
    return (max_onehot(codes1[None]) - max_onehot(codes2_up[None])).abs().mean(dim=1)[0]


def code_agreement(codes1: torch.Tensor, codes2_up: torch.Tensor) -> float:
    """Fraction of view-1 pixels whose winning atom is the same in both views."""
    return float((winning_atoms(codes1) == winning_atoms(codes2_up)).float().mean())


def atom_class_overlap(codes: torch.Tensor, mask: torch.Tensor | np.ndarray, num_classes: int) -> np.ndarray:
    """Pixel counts (K atoms, num_classes): winning atom (codes upsampled to the mask) vs ground truth.

    codes (K, h, w); mask (H, W) class indices with 255 void (void pixels are not counted).
    """
    mask = torch.as_tensor(np.asarray(mask)).long()
    if mask.dim() != 2:
        raise ValueError(f"atom_class_overlap: mask must be (H, W), got {tuple(mask.shape)}")
    valid = mask != VOID
    if bool((mask[valid] >= num_classes).any() or (mask[valid] < 0).any()):
        raise ValueError(f"atom_class_overlap: mask values must be in [0, {num_classes}) or 255, got "
                         f"{sorted(set(mask.unique().tolist()))}")
    atoms = winning_atoms(codes, mask.shape)[valid]                                  # (M,)
    flat = atoms * num_classes + mask[valid]
    counts = torch.bincount(flat, minlength=codes.shape[0] * num_classes)
    return counts.reshape(codes.shape[0], num_classes).numpy()


def purity(overlap: np.ndarray) -> float:
    """Cluster purity: Σ_atoms max_class count / Σ counts (1 = every atom covers a single class)."""
    total = overlap.sum()
    return float(overlap.max(axis=1).sum() / total) if total else float("nan")


def atom_identity_rate(overlap: np.ndarray) -> float:
    """Fraction of pixels whose winning atom is the one initialised from their class (atom k = class k)."""
    k = min(overlap.shape)
    total = overlap.sum()
    return float(np.trace(overlap[:k, :k]) / total) if total else float("nan")


def singular_values(x: torch.Tensor) -> torch.Tensor:
    """Singular values (float64, descending) of a (N, C) matrix."""
    if x.dim() != 2:
        raise ValueError(f"singular_values: expected a (N, C) matrix, got {tuple(x.shape)}")
    return torch.linalg.svdvals(x.double())


def effective_rank(x: torch.Tensor) -> float:
    """Roy & Vetterli's effective rank exp(H(p)), p_i = σ_i / Σ σ; x a (N, C) matrix or its singular values.

    Equals r for r equal singular values and no others; 0 for the zero matrix.
    """
    s = singular_values(x) if x.dim() == 2 else x.double()
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def summarize_factors(factors: Sequence[dict], masks: Sequence | None = None, num_classes: int | None = None) -> dict:
    """Means over images of the numbers notebook 04 reports; masks (H, W) (255 void) add purity.

    code_agreement: winning atoms equal in both views; code_consistency: the L_code term;
    effective_rank_features / _reconstruction: of X' and R; final_objective, final_relative_objective;
    with masks, the pooled atom/class ``overlap`` (K, num_classes), its ``purity``, ``atom_identity_rate`` and
    ``purity_single_atom``, the purity of one atom for every pixel (the majority class share: purity's floor), and
    the same two over the object pixels only (``purity_foreground``, ``purity_foreground_single_atom``): background
    is every atom's majority class, so the overall purity can sit at its floor while atoms still follow objects.
    """
    if not factors:
        raise ValueError("summarize_factors: got no factors")
    mean = lambda values: float(np.mean(values))  # noqa: E731
    out = {
        "num_images": len(factors),
        "code_agreement": mean([code_agreement(f["codes1"], f["codes2_up"]) for f in factors]),
        "code_consistency": mean([float(code_disagreement(f["codes1"], f["codes2_up"]).mean()) for f in factors]),
        "effective_rank_features": mean([effective_rank(f["features"]) for f in factors]),
        "effective_rank_reconstruction": mean([effective_rank(f["reconstruction"]) for f in factors]),
        "num_atoms": int(factors[0]["codes1"].shape[0]),
        "final_objective": mean([float(f["objective"][-1]) for f in factors]),
        "final_relative_objective": mean([float(f["relative_objective"][-1]) for f in factors]),
    }
    if masks is not None:
        if len(masks) != len(factors):
            raise ValueError(f"summarize_factors: {len(masks)} masks for {len(factors)} factors")
        k = num_classes or out["num_atoms"]
        overlap = sum(atom_class_overlap(f["codes1"], m, k) for f, m in zip(factors, masks))
        objects = overlap[:, 1:]                                                      # ground truth not background
        out.update(overlap=overlap.tolist(), purity=purity(overlap), atom_identity_rate=atom_identity_rate(overlap),
                   purity_single_atom=float(overlap.sum(axis=0).max() / max(overlap.sum(), 1)),
                   purity_foreground=purity(objects),
                   purity_foreground_single_atom=float(objects.sum(axis=0).max() / max(objects.sum(), 1)))
    return out


def code_sharpness(factors: dict) -> dict:
    """How far the final codes are from uniform, and why: ``uniform`` 1/K; ``min`` / ``max`` code; ``mean_top``, the
    mean over pixels of the winning atom's code (1/K: no preference, 1: one-hot); ``score_range``, the mean over
    pixels of max_k − min_k of the scores D X'ᵀ / τ the last step's softmax saw. Codes are near 1/K when that range
    is small against 1: the softmax then barely separates the atoms."""
    codes = torch.cat([factors["codes1"].flatten(1), factors["codes2"].flatten(1)], dim=1)      # (K, N)
    scores = factors["dictionaries"][-2] @ factors["features"].T / factors["temperature"]     # (K, N)
    return {"uniform": 1.0 / codes.shape[0], "min": float(codes.min()), "max": float(codes.max()),
            "mean_top": float(codes.max(dim=0).values.mean()),
            "score_range": float((scores.max(dim=0).values - scores.min(dim=0).values).mean()),
            "temperature": float(factors["temperature"])}


# ----------------------------------------------------------------------------- notebook 04's images

def select_images(dataset, image_ids=None, count: int = 4, seed: int = 0) -> list[int]:
    """Indices of ``image_ids`` (names in the split), or ``count`` distinct ones drawn with ``seed``."""
    if image_ids is None:
        rng = np.random.default_rng(seed)
        return sorted(rng.choice(len(dataset), size=min(count, len(dataset)), replace=False).tolist())
    index = {name: i for i, name in enumerate(dataset.names)}
    missing = [n for n in image_ids if n not in index]
    if missing:
        raise ValueError(f"image_ids: {missing} are not in the {dataset.split} split of {dataset.root} "
                         f"(e.g. {dataset.names[:3]})")
    return [index[n] for n in image_ids]


# ----------------------------------------------------------------------------- any checkpoint
def checkpoint_diagnostics(model, dataset, indices: Sequence[int] | None = None, count: int = 16, seed: int = 0,
                           generator_seed: int = 0) -> dict:
    """Is this trained SLRNet's low-rank module factorising? The numbers of :mod:`slrnet.diagnostics` and
    :func:`summarize_factors` (purity against its one-atom floor, cross-view agreement, effective ranks) over
    ``count`` images of ``dataset`` (its masks), for any checkpoint: the suite's models or the authors' released
    VOC model on VOC images (``slrnet.models.loading.load_trained_model``).

        >>> checkpoint_diagnostics(model, val_set)["purity"], ...["code_top"], ...["atom_cos"]
    """
    from slrnet.diagnostics import mean_offdiagonal_cosine

    indices = list(indices) if indices is not None else select_images(dataset, count=count, seed=seed)
    generator = torch.Generator().manual_seed(generator_seed)
    factors, masks = [], []
    for i in indices:
        sample = dataset[i]
        factors.append(extract_factors(model, sample["image"], generator=generator))
        masks.append(sample["mask"])
    out = summarize_factors(factors, masks, num_classes=model.num_classes)
    sharp = [code_sharpness(f) for f in factors]
    mean = lambda key: float(np.mean([s[key] for s in sharp]))  # noqa: E731
    out.update(code_top=mean("mean_top"), score_range=mean("score_range"), code_min=min(s["min"] for s in sharp),
               code_max=max(s["max"] for s in sharp), uniform_code=sharp[0]["uniform"],
               atom_cos=float(np.mean([float(mean_offdiagonal_cosine(f["dictionaries"][-1:])) for f in factors])),
               init_atom_cos=float(np.mean([float(mean_offdiagonal_cosine(f["dictionaries"][:1])) for f in factors])),
               features_s2_s1=float(np.mean([_s2_over_s1(f["features"]) for f in factors])),
               images=[int(i) for i in indices])
    return out


def _s2_over_s1(x: torch.Tensor) -> float:
    """σ2 / σ1 of a (N, C) matrix: small when one direction carries every pixel."""
    s = singular_values(x)
    return float(s[1] / s[0]) if len(s) > 1 and s[0] > 0 else float("nan")


def read_diagnostics(d: dict, temperature: float) -> list[str]:
    """One sentence per diagnostic of :func:`checkpoint_diagnostics`, saying what this model's numbers show (the
    numbers come from ``d``; the verdicts from fixed thresholds stated in each sentence)."""
    K = d["num_atoms"]
    top, uniform = d["code_top"], 1.0 / K
    sharp = (top - uniform) / (1 - uniform)                 # 0: flat codes, 1: one-hot
    floor, pure = d["purity_single_atom"], d["purity"]
    return [
        f"Codes: the winning atom's code averages {top:.3f} against 1/K = {uniform:.3f} (one-hot would be 1), "
        f"{sharp:.0%} of the way from flat to one-hot; codes lie in [{d['code_min']:.3f}, {d['code_max']:.3f}]. "
        + ("The codes are flat: every pixel spreads itself almost evenly over the atoms." if sharp < 0.1 else
           "The codes prefer one atom per pixel." if sharp > 0.5 else "The codes prefer an atom, weakly."),
        f"Scores: a pixel's scores D X'ᵀ/τ span {d['score_range']:.3f} on average at τ = {temperature:g}; "
        + ("a softmax of scores that close is near uniform (a span of several units is needed for a clear winner)."
           if d["score_range"] < 1 else "enough for the softmax to pick a winner."),
        f"Atoms: two different atoms have mean cosine {d['atom_cos']:.4f} after the iteration, "
        f"{d['init_atom_cos']:.4f} as initialised from the class activation maps; "
        + ("the atoms point the same way: what tells them apart is a small part of each, which only a much lower "
           "temperature brings out." if d["atom_cos"] > COLLAPSED_ATOM_COS else
           "the atoms are distinct directions." if d["atom_cos"] < 0.5 else "the atoms overlap strongly."),
        f"Rank: the reconstruction Zᵀ D has effective rank {d['effective_rank_reconstruction']:.2f} of at most "
        f"K = {K} (the features: {d['effective_rank_features']:.2f}); "
        + ("it is one vector repeated at every pixel." if d["effective_rank_reconstruction"] < COLLAPSED_RANK else
           "it keeps several directions."),
        f"Atoms and classes: purity {pure:.3f} against {floor:.3f} for one atom covering every pixel; "
        + ("the atoms separate the classes barely better than a single atom would" if pure - floor < 0.05 else
           "the atoms separate the classes")
        + (f". On object pixels alone (background is every atom's majority class): {d['purity_foreground']:.3f} against "
           f"{d['purity_foreground_single_atom']:.3f}; "
           + ("there the atoms do follow the object classes." if d["purity_foreground"] - d["purity_foreground_single_atom"] >= 0.05
              else "there too they barely do.") if "purity_foreground" in d else "."),
        f"Views: the winning atom is the same in both views on {d['code_agreement']:.1%} of view-1 pixels.",
    ]


def disagreement_location(factors: Sequence[dict], masks: Sequence, border: int = 4) -> dict:
    """Where do the views' winning atoms disagree? The share of view-1 pixels (at mask resolution) within
    ``border`` pixels of a class boundary (default 4: one code cell of the stride-4 features at mask resolution), and
    the share of the disagreeing pixels that lie there: near the
    boundary share of pixels means the disagreement is spread over the image, well above it that it sits at borders."""
    import torch.nn.functional as F

    near, disagree, both = 0, 0, 0
    total = 0
    for f, mask in zip(factors, masks):
        m = torch.as_tensor(np.asarray(mask)).long()
        onehot = F.one_hot(m.clamp(max=255), 256).permute(2, 0, 1)[None].float()          # (1, 256, H, W)
        size = 2 * border + 1
        grown = F.max_pool2d(onehot, size, stride=1, padding=border)
        edge = (grown.sum(1)[0] > 1)                                                     # two labels nearby
        differ = winning_atoms(f["codes1"], m.shape) != winning_atoms(f["codes2_up"], m.shape)
        near += int(edge.sum()); disagree += int(differ.sum()); both += int((edge & differ).sum())  # noqa: E702
        total += m.numel()
    return {"border_share_of_pixels": near / max(total, 1), "border_share_of_disagreement": both / max(disagree, 1),
            "disagreement": disagree / max(total, 1), "border": border}


def module_verdict(d: dict, ladder_rows: Sequence[dict] | None = None, dataset: str | None = None) -> list[str]:
    """What the low-rank module does in this run, derived from :func:`checkpoint_diagnostics` (``d``) and, when
    given, the ablation ladder's rows of ``dataset`` (test-time ablations and the no-code-consistency regime)."""
    out = []
    rank = d["effective_rank_reconstruction"]
    if rank < COLLAPSED_RANK:
        out.append(f"The reconstruction Zᵀ D has effective rank {rank:.2f}: one vector at every pixel of an image, so "
                   f"what the module adds to the features, W2 ReLU(Zᵀ D), is a per-image bias, not a low-rank picture "
                   f"of the scene.")
    else:
        out.append(f"The reconstruction has effective rank {rank:.2f} of at most {d['num_atoms']}: it varies over the "
                   f"image, so the module adds more than a per-image bias.")
    rows = [r for r in ladder_rows or [] if dataset is None or r["dataset"] == dataset]
    tests = [r["test_time"] for r in rows if r["setting"] == "full_cvlr" and "test_time" in r]
    full = [r for r in rows if r["setting"] == "full_cvlr"]
    if tests:
        mean = np.mean([t["mean"]["val_miou"] for t in tests]) - np.mean([r["val_miou"] for r in full])
        removed = np.mean([t["removed"]["val_miou"] for t in tests]) - np.mean([r["val_miou"] for r in full])
        out.append(f"The ladder's SLRNet runs ({len(tests)} seed(s)): replacing the reconstruction by its spatial mean at "
                   f"test time changes val mIoU by {mean:+.3f}, removing it by {removed:+.3f}.")
    free = [r for r in rows if r["setting"] == "full_cvlr_no_code" and "factors" in r]
    if free and full and "factors" in full[0]:
        f, g = free[0]["factors"], full[0]["factors"]
        verdict = ("that loss is what collapses it" if f["atom_cos"] < COLLAPSED_ATOM_COS <= g["atom_cos"] else
                   "removing it does not undo the collapse" if f["atom_cos"] >= COLLAPSED_ATOM_COS else
                   "neither run collapsed")
        out.append(f"Without the code-consistency loss (the ladder's full_cvlr_no_code run, seed {free[0]['seed']}) the "
                   f"atoms' cosine is {f['atom_cos']:.3f} (with it {g['atom_cos']:.3f}), the winning code "
                   f"{f['code_top']:.3f} ({g['code_top']:.3f}), the reconstruction's rank "
                   f"{f['effective_rank_reconstruction']:.2f} ({g['effective_rank_reconstruction']:.2f}), at mean val mIoU "
                   f"{np.mean([r['val_miou'] for r in free]):.3f} against {np.mean([r['val_miou'] for r in full]):.3f}: "
                   f"{verdict}.")
    return out
