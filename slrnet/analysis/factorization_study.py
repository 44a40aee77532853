"""Collective matrix factorisation without a trained network (notebook 01): SLRNet-like two-view features
of an image, and the sweeps over rank, temperature and iterations that the notebook plots.

    >>> from slrnet.analysis.factorization_study import dataset_image, rank_sweep, two_view_features
    >>> name, image = dataset_image("data/shapes", index=0)
    >>> views, shapes = two_view_features(image)         # [(1, N1, C), (1, N2, C)], [(H, W), (h, w)]
    >>> errors = rank_sweep(views, ranks=[1, 2, 4, 8])   # final relative error per rank: CVLR, NMF, SVD

``two_view_features`` builds SLRNet-like inputs without a trained network: per-pixel colour,
position and the responses of a small fixed random conv net, for the image and its 0.5-scale view.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from slrnet.cmf import cvlr_factorize, l2_normalize, match_atoms, nmf_factorize, svd_reconstruct


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
    plays the role of SLRNet's learned transform1; unit-norm rows suit CVLR's unit atoms (spherical
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


