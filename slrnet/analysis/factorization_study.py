"""Collective matrix factorisation without a trained network (notebook 01): SLRNet-like two-view features
of an image, the sweeps over rank, temperature and iterations that the notebook plots, what sets how sharp
the codes are, and a shared dictionary against a dictionary per view (atoms matched by the Hungarian algorithm).

    >>> from slrnet.analysis.factorization_study import dataset_image, rank_sweep, two_view_features
    >>> name, image = dataset_image("data/shapes", index=0)
    >>> views, shapes = two_view_features(image)         # [(1, N1, C), (1, N2, C)], [(H, W), (h, w)]
    >>> errors = rank_sweep(views, ranks=[1, 2, 4, 8])   # final relative error per rank: CVLR, NMF, SVD
    >>> cmp = separate_vs_joint(views, shapes, num_atoms=6)
    >>> cmp["agreement"]                                  # {"joint": .., "separate": .., "separate (matched)": ..}

``two_view_features`` builds SLRNet-like inputs without a trained network: per-pixel colour,
position and the responses of a small fixed random conv net, for the image and its 0.5-scale view.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from slrnet.cmf import (cross_view_agreement, cvlr_factorize, l2_normalize, match_atoms, nmf_factorize,
                        svd_reconstruct)
from slrnet.diagnostics import mean_offdiagonal_cosine


def pixel_features(image: torch.Tensor, position_weight: float = 1.0, conv_channels: int = 16,
                   seed: int = 0) -> torch.Tensor:
    """image (3, H, W) in [0, 1] -> (H·W, 3 + 2 + conv_channels) per-pixel features.

    Colour, (y, x) in [0, 1] (align-corner coordinates, so a rescaled view gets the same positions)
    times ``position_weight``, and a fixed random two-layer 3x3 conv net with ReLU (seeded; the same
    weights for every view) as a stand-in for learned texture features.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"pixel_features: image must be (3, H, W), got {tuple(image.shape)}")
    _, H, W = image.shape
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    feats = [image.float(), position_weight * torch.stack([yy, xx])]                    # (3, H, W), (2, H, W)
    if conv_channels > 0:
        gen = torch.Generator().manual_seed(int(seed))
        w1 = torch.randn(conv_channels, 3, 3, 3, generator=gen) / 27 ** 0.5
        w2 = torch.randn(conv_channels, conv_channels, 3, 3, generator=gen) / (9 * conv_channels) ** 0.5
        h = F.relu(F.conv2d(image.float()[None] - 0.5, w1, padding=1))
        feats.append(F.relu(F.conv2d(h, w2, padding=1))[0])                             # (c, H, W)
    return torch.cat(feats).flatten(1).T                                                # (H·W, C)


def two_view_features(image: torch.Tensor, scale: float = 0.5, position_weight: float = 1.0,
                      conv_channels: int = 16, seed: int = 0):
    """Features of an image and of its ``scale``-resized view, standardised jointly, unit rows.

    Returns ([(1, N1, C), (1, N2, C)], [(H, W), (h, w)]). Standardising per channel over both views
    is a fixed stand-in for SLRNet's learned transform1; unit-norm rows suit CVLR's unit atoms (spherical
    soft k-means), so reconstruction errors are comparable across solvers.
    """
    H, W = image.shape[-2:]
    small = F.interpolate(image[None].float(), size=(max(1, round(H * scale)), max(1, round(W * scale))),
                          mode="bilinear", align_corners=True)[0]                       # view 2, like SLRNet's
    raw = [pixel_features(im, position_weight, conv_channels, seed) for im in (image, small)]
    both = torch.cat(raw)                                                               # (N1 + N2, C)
    mean, std = both.mean(0), both.std(0).clamp_min(1e-6)
    views = [l2_normalize((f - mean) / std)[None] for f in raw]                          # [(1, N_v, C)]
    return views, [(H, W), tuple(small.shape[-2:])]


def dataset_image(root, index: int = 0, split: str = "val"):
    """(name, image (3, H, W) float in [0, 1]) of the ``index``-th image listed in a VOC-layout split."""
    from pathlib import Path

    from PIL import Image

    root = Path(root)
    names = (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()
    if not 0 <= index < len(names):
        raise ValueError(f"dataset_image: index must be in [0, {len(names)}) for split {split!r}, got {index}")
    rgb = np.asarray(Image.open(root / "JPEGImages" / f"{names[index]}.jpg").convert("RGB"))
    return names[index], torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255


def rank_sweep(views, ranks: Sequence[int], temperature: float = 0.1, cvlr_iters: int = 20,
               nmf_iters: int = 200, seed: int = 0) -> dict:
    """Final relative error (batch item 0) per rank K for CVLR, NMF (if the data is non-negative) and SVD."""
    nonneg = all(bool((v >= 0).all()) for v in views)
    errors = {"CVLR": [], "NMF": [], "SVD": []} if nonneg else {"CVLR": [], "SVD": []}
    for k in ranks:
        errors["CVLR"].append(float(cvlr_factorize(views, k, cvlr_iters, temperature, seed=seed).relative_error[-1, 0]))
        if nonneg:
            errors["NMF"].append(float(nmf_factorize(views, k, nmf_iters, seed=seed).relative_error[-1, 0]))
        errors["SVD"].append(float(svd_reconstruct(views, k).relative_error[-1, 0]))
    return errors


def temperature_sweep(views, atoms: torch.Tensor, temperatures: Sequence[float], iterations: Sequence[int],
                      init: str = "kmeans++", seed: int = 0) -> dict:
    """CVLR over a grid of (T, temperature): final relative error and worst matched-atom cosine.

    atoms (K, C) are the planted ones (batch item 0 is used); returns arrays of shape (len(T), len(temperatures)).
    """
    error = np.zeros((len(iterations), len(temperatures)))
    cosine = np.zeros_like(error)
    for i, t in enumerate(iterations):
        for j, tau in enumerate(temperatures):
            res = cvlr_factorize(views, atoms.shape[0], t, tau, init=init, seed=seed)
            error[i, j] = float(res.relative_error[-1, 0])
            cosine[i, j] = float(match_atoms(res.dictionary[0], atoms)[1].min())
    return {"error": error, "min_cosine": cosine}




# ----------------------------------------------------------------------------- how sharp are the codes?
def code_sharpness(views, atoms: torch.Tensor, temperature: float = 1.0, feature_scale: float = 1.0) -> dict:
    """What one CVLR code step Z = softmax_K(D (c·X)ᵀ / τ) does to the stacked views (batch item 0).

    atoms (K, C) (normalised here, as CVLR's), c = ``feature_scale``. Returns floats:
      score_range   mean over pixels of max_k − min_k of the scores D (c·X)ᵀ / τ (the softmax's input)
      code_top      mean over pixels of the winning code max_k Z (1/K: flat codes, 1: one-hot)
      uniform       1/K
      atom_cos      mean cosine between two different atoms (1: all atoms the same direction)
      feature_norm  mean norm of a pixel's feature c·x
    A score range small against 1 leaves the codes near 1/K. The range grows with the features' norm c·|x|
    and with the atoms' spread, and shrinks with τ: scaling the features by c is the same as dividing τ by c.
    """
    if not (temperature > 0 and feature_scale > 0):
        raise ValueError(f"code_sharpness: temperature and feature_scale must be positive, got {temperature}, "
                         f"{feature_scale}")
    x = torch.cat([v[:1] for v in views], dim=1).double() * feature_scale             # (1, N, C)
    d = l2_normalize(atoms.detach().double().to(x.device), 1e-12)[None]               # (1, K, C)
    scores = torch.bmm(d, x.transpose(1, 2)) / temperature                             # (1, K, N)
    codes = scores.softmax(dim=1)
    return {"score_range": float((scores.max(dim=1).values - scores.min(dim=1).values).mean()),
            "code_top": float(codes.max(dim=1).values.mean()),
            "uniform": 1.0 / d.shape[1],
            "atom_cos": float(mean_offdiagonal_cosine(d)[0]),
            "feature_norm": float(x.norm(dim=-1).mean())}


def sharpness_table(views, settings) -> list:
    """``code_sharpness`` for each (label, atoms (K, C), temperature, feature_scale) -> rows (dicts with those keys)."""
    return [{"label": label, "temperature": float(tau), "feature_scale": float(scale),
             **code_sharpness(views, atoms, tau, scale)} for label, atoms, tau, scale in settings]


def format_sharpness(rows) -> str:
    """The rows of ``sharpness_table`` as a text table."""
    width = max(len(r["label"]) for r in rows)
    lines = [f"{'atoms':<{width}}  {'x scale':>7} {'tau':>6} {'|x|':>6} {'atom cos':>8} {'score range':>11} "
             f"{'winning code':>12} {'1/K':>6}"]
    lines += [f"{r['label']:<{width}}  {r['feature_scale']:>7g} {r['temperature']:>6g} {r['feature_norm']:>6.3f} "
              f"{r['atom_cos']:>8.3f} {r['score_range']:>11.3f} {r['code_top']:>12.3f} {r['uniform']:>6.3f}"
              for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- one dictionary or one per view?
def separate_vs_joint(views, shapes, num_atoms: int, num_iters: int = 20, temperature: float = 0.1,
                      seed: int = 0) -> dict:
    """Cross-view agreement of CVLR with one shared dictionary against one dictionary per view (batch item 0).

    views [(B, N1, C), (B, N2, C)], shapes [(h1, w1), (h2, w2)]. "joint" factorises both views together;
    "separate" factorises view v alone (seed + v), so its atoms come in an arbitrary order per view;
    "separate (matched)" first reorders view 2's atoms (and codes) to view 1's by the optimal one-to-one
    assignment on the atoms' cosine (``match_atoms``, Hungarian algorithm). Agreement is
    ``cross_view_agreement``: the share of view-1 pixels whose argmax atom equals view 2's, resized.
    Returns {"agreement": {name: float}, "matched_cosine": (K,) cosine of each view-1 atom with its
    view-2 match, "order": (K,), "maps": {name: (code map 1 (K, h1, w1), code map 2 (K, h2, w2))},
    "joint": FactorizationResult, "separate": [FactorizationResult per view]}.
    """
    if len(views) != 2 or len(shapes) != 2:
        raise ValueError(f"separate_vs_joint: expected two views and two shapes, got {len(views)} and {len(shapes)}")
    views = [v[:1] for v in views]
    joint = cvlr_factorize(views, num_atoms, num_iters, temperature, seed=seed)
    separate = [cvlr_factorize(v, num_atoms, num_iters, temperature, seed=seed + i) for i, v in enumerate(views)]
    joint_maps = joint.code_maps(shapes)                                               # [(1, K, h_v, w_v)]
    sep_maps = [r.code_maps([hw])[0] for r, hw in zip(separate, shapes)]
    order, cosine = match_atoms(separate[1].dictionary[0], separate[0].dictionary[0])  # view 2's order[k] ~ view 1's k
    maps = {"joint": joint_maps, "separate": sep_maps,
            "separate (matched)": [sep_maps[0], sep_maps[1][:, order.to(sep_maps[1].device)]]}
    return {"agreement": {name: float(cross_view_agreement(*m)[0]) for name, m in maps.items()},
            "matched_cosine": cosine, "order": order,
            "maps": {name: (m1[0], m2[0]) for name, (m1, m2) in maps.items()},
            "joint": joint, "separate": separate}


def format_agreement(comparison: dict) -> str:
    """Three lines from ``separate_vs_joint``: the agreements, the matched atoms' cosines, the shared dictionary's gain
    over separate factorisations before and after matching."""
    a = comparison["agreement"]
    return "\n".join([
        "cross-view agreement: " + ", ".join(f"{name} {value:.3f}" for name, value in a.items()),
        "cosine of each view-1 atom with its matched view-2 atom: "
        + ", ".join(f"{c:.3f}" for c in comparison["matched_cosine"].tolist()),
        f"gain of the shared dictionary: {a['joint'] - a['separate']:+.3f} over separate atoms as they come, "
        f"{a['joint'] - a['separate (matched)']:+.3f} over separate atoms matched"])


def rises(values: Sequence[float], tolerance: float = 1e-6) -> list[tuple[int, float, float]]:
    """``(i, values[i - 1], values[i])`` wherever the sequence goes up by more than ``tolerance`` (relative)."""
    return [(i, float(a), float(b)) for i, (a, b) in enumerate(zip(values, values[1:]), start=1)
            if b > a * (1 + tolerance)]


def iteration_reading(errors: dict) -> str:
    """One line per solver on its relative error per iteration (``{name: (T,) errors}``): whether it ever rose,
    and its last value."""
    lines = []
    for name, curve in errors.items():
        curve = [float(x) for x in curve]
        up = rises(curve)
        told = (f"rose at {len(up)} of {len(curve) - 1} steps (first at step {up[0][0]}: {up[0][1]:.5f} -> "
                f"{up[0][2]:.5f})" if up else "never rose")
        lines.append(f"{name}: the error {told}; it ends at {curve[-1]:.5f}")
    return "\n".join(lines)


def rank_reading(ranks: Sequence[int], errors: dict) -> str:
    """One line per solver on its error against the rank (``{name: errors per rank}``): where it rose with K."""
    lines = []
    for name, values in errors.items():
        up = rises(values)
        told = ("rises with K at " + ", ".join(f"K={ranks[i - 1]}->{ranks[i]} ({a:.4f} -> {b:.4f})" for i, a, b in up)
                if up else "never rises with K")
        lines.append(f"{name}: the error {told}")
    return "\n".join(lines)
