"""Is the low-rank module factorising? Cheap numbers on the CVLR module's own tensors, computed in every training
step (no gradient) and logged per epoch next to the losses (``train_factor_*`` in ``log.jsonl``), and for any
checkpoint by ``slrnet.analysis.factors``.

    code_top           mean over pixels of the winning atom's code: 1/K when the codes are flat, 1 when one-hot
    code_entropy       mean over pixels of H(Z_:n) / log K: 1 flat, 0 one-hot
    score_range        mean over pixels of max_k - min_k of the scores D X'ᵀ / τ the last softmax saw; codes are
                       flat when this is small against 1 (softmax_K(s) ≈ 1/K + (s - mean s)/K)
    atom_cos           mean cosine between two different atoms of the final dictionary (1: all atoms the same)
    init_atom_cos      the same for the initial atoms l2n(W1 D0ᵀ), the auxiliary head's class-wise means
    rank               effective rank (Roy & Vetterli 2007) of the reconstruction R = Zᵀ D (at most K)
    feature_s2_s1      σ2 / σ1 of the stacked features X (small: one direction dominates every pixel)
    view_agreement     fraction of view-1 pixels whose winning atom is the same in inv(view 2)

    >>> d = factor_diagnostics(codes, codes1, codes2_up, dictionaries, reconstruction, features, scores)
    >>> {k: float(v) for k, v in d.items()}
"""
from __future__ import annotations

import math

import torch


def effective_rank_of(singular_values: torch.Tensor) -> torch.Tensor:
    """exp(H(p)), p = σ / Σσ over the last dimension (..., r) -> (...); 0 where every σ is 0."""
    s = singular_values.double().clamp(min=0)
    total = s.sum(-1, keepdim=True)
    p = s / total.clamp(min=1e-300)
    entropy = -(p * p.clamp(min=1e-300).log()).sum(-1)
    return torch.where(total[..., 0] > 0, entropy.exp(), torch.zeros_like(entropy))


def singular_values_of_rows(x: torch.Tensor) -> torch.Tensor:
    """Singular values (descending) of each (N, C) matrix of a batch (B, N, C), through the (C, C) Gram matrix."""
    gram = x.double().transpose(-1, -2) @ x.double()                      # (B, C, C)
    return torch.linalg.eigvalsh(gram).clamp(min=0).sqrt().flip(-1)       # (B, C)


def mean_offdiagonal_cosine(atoms: torch.Tensor) -> torch.Tensor:
    """Mean cosine between distinct atoms of each dictionary (B, K, C) -> (B,)."""
    unit = atoms / atoms.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    cos = unit @ unit.transpose(1, 2)                                     # (B, K, K)
    K = cos.shape[-1]
    return (cos.sum(dim=(1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1)) / max(1, K * (K - 1))


@torch.no_grad()
def factor_diagnostics(codes: torch.Tensor, codes1: torch.Tensor, codes2_up: torch.Tensor, dictionaries: torch.Tensor,
                       reconstruction: torch.Tensor, features: torch.Tensor, scores: torch.Tensor) -> dict:
    """The module docstring's numbers, each a 0-dim tensor (batch mean).

    codes (B, K, N) of both views stacked; codes1 / codes2_up (B, K, h, w) view 1 and view 2 mapped onto it;
    dictionaries (T+1, B, K, C) the initial and each step's atoms; reconstruction (B, N, C); features (B, N, C)
    the stacked input features; scores (B, K, N) the last softmax's input."""
    K = codes.shape[1]
    z = codes.float().clamp(min=1e-12)
    entropy = -(z * z.log()).sum(1) / math.log(K)                                  # (B, N)
    return {
        "factor_code_top": codes.max(dim=1).values.mean(),
        "factor_code_entropy": entropy.mean(),
        "factor_score_range": (scores.max(dim=1).values - scores.min(dim=1).values).mean(),
        "factor_atom_cos": mean_offdiagonal_cosine(dictionaries[-1]).mean(),
        "factor_init_atom_cos": mean_offdiagonal_cosine(dictionaries[0]).mean(),
        "factor_rank": effective_rank_of(singular_values_of_rows(reconstruction)).mean(),
        "factor_feature_s2_s1": _second_over_first(singular_values_of_rows(features)).mean(),
        "factor_view_agreement": (codes1.argmax(1) == codes2_up.argmax(1)).float().mean(),
    }


def _second_over_first(s: torch.Tensor) -> torch.Tensor:
    return s[..., 1] / s[..., 0].clamp(min=1e-300)
