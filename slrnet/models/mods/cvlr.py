"""The cross-view low-rank (CVLR) layers of SLRNet: dictionary initialisation and factorisation.

SLRNet stacks the decoder features of both views along the pixel axis and factorises them
collectively with one dictionary of K atoms (one per class) shared by the views (METHOD.md 1.5-1.6;
fixture README sections 1-2):

    D0 = DictionaryInitialization()(features (B, C, h, w), aux_logits (B, K, h, w))   (B, C, K)
         a soft class-wise mean of view-1 features, weights softmax_K(logits) normalised over pixels
    x_out, coding, dictionary = FactorizationReconstruction(C)(x (B, N, C), D0ᵀ (B, K, C))
         X = f1(x), D = l2n(f1(D0ᵀ)); T times: Z = softmax_K(D Xᵀ / τ), D = l2n(A X)  (cvlr_step)
         x_out = ReLU(x + f2(ReLU(Zᵀ D)))     (B, N, C); coding Z (B, K, N); dictionary D (B, K, C)

``reconstruction`` (an ablation, not the method): ``"removed"`` returns x itself as x_out (the codes and the
dictionary are still computed, so the code-consistency loss still trains the features through them); ``"mean"``
replaces Zᵀ D by its mean over the N pixels, a rank-1 reconstruction with no spatial structure.

    >>> init, fr = DictionaryInitialization(), FactorizationReconstruction(256)
    >>> d0 = init(x1, aux_logits)                                  # (B, 256, 21), no gradient
    >>> x_out, coding, dictionary = fr(torch.cat([x1f, x2f], 1), d0.transpose(1, 2))

The factorisation step is ``slrnet.cmf.cvlr_step`` (one implementation of the math for the
solver and the layer). By default the layer folds f1 into the step, so the (B, N, C) tensor f1(x) is
never formed: about half the FLOPs and memory of the literal formula at the training shape (see
``benchmarks/cmf.py``); ``fused=False`` runs the formula as written, and a test proves the two equal.
Attribute names ``transform1`` / ``transform2`` match the authors' keys.

Reference: Pan et al., "Learning Self-Supervised Low-Rank Network for Single-Stage Weakly and
Semi-Supervised Semantic Segmentation", IJCV 2022.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from slrnet.cmf import EPS, cvlr_step, l2_normalize


RECONSTRUCTIONS = ("used", "removed", "mean")


class DictionaryInitialization(nn.Module):
    """forward(features (B, C, h, w), logits (B, K, h, w)) -> initial dictionary (B, C, K).

    Q = softmax_K(logits) (B, K, N); Q̃ = Q / (Σ_n Q + 1e-6); D0 = F Q̃ᵀ. With ``detach=True``
    (the network's use) no gradient flows to the logits nor out of the result; ``detach=False``
    differentiates through both features and logits.
    """

    def __init__(self, detach: bool = True, eps: float = EPS):
        super().__init__()
        self.detach, self.eps = bool(detach), float(eps)

    def extra_repr(self) -> str:
        return f"detach={self.detach}"

    def forward(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if features.dim() != 4 or logits.dim() != 4 or features.shape[0] != logits.shape[0] \
                or features.shape[-2:] != logits.shape[-2:]:
            raise ValueError(f"DictionaryInitialization.forward: expected features (B, C, h, w) and logits "
                             f"(B, K, h, w) with the same B, h, w; got {tuple(features.shape)} and "
                             f"{tuple(logits.shape)}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach):
            weights = logits.flatten(2).softmax(dim=1)                                   # (B, K, N)
            weights = weights / (weights.sum(dim=2, keepdim=True) + self.eps)            # (B, K, N)
            return torch.bmm(features.flatten(2), weights.transpose(1, 2))               # (B, C, K)


class FactorizationReconstruction(nn.Module):
    """forward(x (B, N, C), inits (B, K, C)) -> (x_out (B, N, C), coding (B, K, N), dictionary (B, K, C)).

    ``forward(..., return_iterates=True)`` also returns what the loop computes on the way, for analysis:
    ``{"codes": (T, B, K, N), "dictionaries": (T+1, B, K, C), "reconstruction": (B, N, C)}`` (the initial
    dictionary first). ``num_iters`` / ``temperature`` given to ``forward`` override the module's for that
    call (to watch the iteration run longer, or sharper codes), without changing any weight.

    ``fused=True`` (the default) runs the step with W1 folded in (``slrnet.cmf.cvlr_step``), so the
    (B, N, C) tensor X' = W1 x is never formed; ``fused=False`` forms X' and runs the formula as written.
    Both compute the same numbers (``tests/test_cvlr.py``).
    """

    def __init__(self, channels: int, num_iters: int = 1, temperature: float = 1.0, eps: float = EPS,
                 fused: bool = True):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"FactorizationReconstruction: channels must be a positive int, got {channels!r}")
        _check_iters(num_iters)
        _check_temperature(temperature)
        self.channels, self.num_iters, self.temperature, self.eps = channels, num_iters, float(temperature), eps
        self.fused = bool(fused)
        self.transform1 = nn.Linear(channels, channels)   # W1: features and initial atoms
        self.transform2 = nn.Linear(channels, channels)   # W2: reconstruction back into the residual

    @property
    def scale(self) -> float:
        return 1.0 / self.temperature

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_iters={self.num_iters}, temperature={self.temperature}, "
                f"fused={self.fused}")

    def forward(self, x: torch.Tensor, inits: torch.Tensor, num_iters: int | None = None,
                temperature: float | None = None, return_iterates: bool = False, reconstruction: str = "used"):
        C = self.channels
        if x.dim() != 3 or x.shape[2] != C:
            raise ValueError(f"FactorizationReconstruction.forward: expected x of shape (B, N, {C}), "
                             f"got {tuple(x.shape)}")
        if inits.dim() != 3 or inits.shape[0] != x.shape[0] or inits.shape[2] != C:
            raise ValueError(f"FactorizationReconstruction.forward: expected inits of shape ({x.shape[0]}, K, {C}), "
                             f"got {tuple(inits.shape)}")
        steps = self.num_iters if num_iters is None else _check_iters(num_iters)
        scale = self.scale if temperature is None else 1.0 / _check_temperature(temperature)
        w1, b1 = self.transform1.weight, self.transform1.bias
        dictionary = l2_normalize(self.transform1(inits), self.eps)             # D = l2n(W1 D0ᵀ)     (B, K, C)
        features = None if self.fused else self.transform1(x)                   # X' = W1 x           (B, N, C)
        codes, dictionaries = [], [dictionary]
        for _ in range(steps):
            # Z = softmax_K(D X'ᵀ / τ) (B, K, N); A = Z normalised over pixels; D = l2n(A X') (B, K, C)
            if self.fused:       # the same step with W1 folded in: X' is never formed
                coding, dictionary = cvlr_step(x, dictionary, scale, w1, b1, self.eps)
            else:
                coding, dictionary = cvlr_step(features, dictionary, scale, eps=self.eps)
            if return_iterates:
                codes.append(coding)
                dictionaries.append(dictionary)
        recon = torch.bmm(coding.transpose(1, 2), dictionary)                   # R = Zᵀ D, rank <= K (B, N, C)
        if reconstruction == "used":
            x_out = F.relu(x + self.transform2(F.relu(recon)))                  # residual on the raw x
        elif reconstruction == "mean":                                          # no spatial structure left
            x_out = F.relu(x + self.transform2(F.relu(recon.mean(dim=1, keepdim=True))))
        elif reconstruction == "removed":
            x_out = x
        else:
            raise ValueError(f"FactorizationReconstruction: reconstruction must be one of {RECONSTRUCTIONS}, "
                             f"got {reconstruction!r}")
        if not return_iterates:
            return x_out, coding, dictionary
        iterates = {"codes": torch.stack(codes), "dictionaries": torch.stack(dictionaries), "reconstruction": recon}
        return x_out, coding, dictionary, iterates


def _check_iters(num_iters) -> int:
    if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
        raise ValueError(f"FactorizationReconstruction: num_iters must be a positive int, got {num_iters!r}")
    return num_iters


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not (isinstance(temperature, (int, float)) and temperature > 0
                                             and math.isfinite(temperature)):
        raise ValueError(f"FactorizationReconstruction: temperature must be positive and finite, "
                         f"got {temperature!r}")
    return float(temperature)
