"""Collective matrix factorisation (CMF): several views, one shared dictionary, per-view codes.

V views of the same scene, X_v of shape (B, N_v, C) (one row per pixel; the pixel counts may
differ), are factorised jointly as

    X_v ≈ Z_vᵀ D        D (B, K, C): K atoms shared by every view,  Z_v (B, K, N_v): codes of view v

which is the same as factorising the views stacked along the pixel axis, X = [X_1; ...; X_V]
(B, N, C), with the codes split back apart. Sharing D is what makes it "collective": an atom means
the same thing in every view, so the code maps of two views can be compared pixel by pixel.
Three solvers, all batched, on any device, float32 or float64:

* ``cvlr_factorize``: the CVLR iteration of SLRNet (METHOD.md section 1.6), a soft k-means / EM
  step on the sphere: Z = softmax_K(D Xᵀ / τ), A = rows of (Z + eps) normalised over pixels,
  D = l2n(A X). ``cvlr_step`` is the single step; the network layer
  ``slrnet.models.mods.cvlr.FactorizationReconstruction`` calls it too.
* ``nmf_factorize``: non-negative matrix factorisation by Lee & Seung's multiplicative updates,
  the classic matrix-decomposition baseline of Hamburger (Geng et al., ICLR 2021).
* ``svd_reconstruct``: truncated SVD of the stacked views, the best rank-K reconstruction
  (Eckart-Young), a lower bound on the error of every rank-K factorisation above.

    >>> x1, x2 = torch.rand(2, 400, 16), torch.rand(2, 100, 16)       # two views, B=2, C=16
    >>> res = cvlr_factorize([x1, x2], num_atoms=4, num_iters=10, temperature=0.1)
    >>> [z.shape for z in res.codes], res.dictionary.shape, res.objective.shape
    ([torch.Size([2, 4, 400]), torch.Size([2, 4, 100])], torch.Size([2, 4, 16]), torch.Size([10, 2]))
    >>> svd_reconstruct([x1, x2], rank=4).objective[-1] <= res.objective[-1]    # Eckart-Young
    tensor([True, True])

References: Singh & Gordon, "Relational learning via collective matrix factorization", KDD 2008;
Lee & Seung, "Algorithms for non-negative matrix factorization", NeurIPS 2000; Geng et al.,
"Is Attention Better Than Matrix Decomposition?", ICLR 2021; Pan et al., SLRNet, IJCV 2022.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import torch
import torch.nn.functional as F

from slrnet.ops import resize

Views = Union[torch.Tensor, Sequence[torch.Tensor]]
EPS = 1e-6   # the epsilon of SLRNet's CVLR (norm and code smoothing)


# ----------------------------------------------------------------------------- inputs / outputs
def stack_views(views: Views, view_sizes: Sequence[int] | None = None, caller: str = "cmf"):
    """Validate the views and return (X (B, N, C) stacked along pixels, view_sizes tuple)."""
    if isinstance(views, torch.Tensor):
        if views.dim() != 3:
            raise ValueError(f"{caller}: views as one tensor must be (B, N, C), got shape {tuple(views.shape)}")
        x = views
        sizes = (x.shape[1],) if view_sizes is None else tuple(int(s) for s in view_sizes)
        if any(s < 1 for s in sizes) or sum(sizes) != x.shape[1]:
            raise ValueError(f"{caller}: view_sizes must be positive and sum to N={x.shape[1]}, got {sizes}")
    else:
        views = list(views)
        if not views or not all(isinstance(v, torch.Tensor) for v in views):
            raise TypeError(f"{caller}: views must be a tensor (B, N, C) or a non-empty list of (B, N_v, C) tensors")
        if view_sizes is not None:
            raise ValueError(f"{caller}: view_sizes is only for a single stacked tensor; a list gives its own sizes")
        ref = views[0]
        for i, v in enumerate(views):
            if v.dim() != 3 or v.shape[0] != ref.shape[0] or v.shape[2] != ref.shape[-1] or v.shape[1] < 1:
                raise ValueError(f"{caller}: every view must be (B, N_v, C) with the same B and C; view 0 is "
                                 f"{tuple(ref.shape)}, view {i} is {tuple(v.shape)}")
            if v.dtype != ref.dtype or v.device != ref.device:
                raise ValueError(f"{caller}: views must share dtype and device; view 0 is {ref.dtype} on "
                                 f"{ref.device}, view {i} is {v.dtype} on {v.device}")
        sizes = tuple(v.shape[1] for v in views)
        x = views[0] if len(views) == 1 else torch.cat(views, dim=1)
    if not x.is_floating_point():
        raise TypeError(f"{caller}: views must be floating point (float32 or float64), got {x.dtype}")
    return x, sizes


@dataclass
class FactorizationResult:
    """A factorisation X ≈ codingᵀ dictionary of the stacked views; per-view splits as properties."""
    coding: torch.Tensor           # (B, K, N) codes of all views, concatenated along pixels
    dictionary: torch.Tensor       # (B, K, C) shared atoms
    reconstruction: torch.Tensor   # (B, N, C) = codingᵀ dictionary
    objective: torch.Tensor        # (T, B) Σ_v ||X_v − Z_vᵀ D||² after each iteration (T = 1 for SVD)
    data_norm2: torch.Tensor       # (B,) ||X||², to turn the objective into a relative error
    view_sizes: tuple
    method: str

    @property
    def codes(self) -> list:
        return list(self.coding.split(self.view_sizes, dim=2))          # [(B, K, N_v)]

    @property
    def reconstructions(self) -> list:
        return list(self.reconstruction.split(self.view_sizes, dim=1))  # [(B, N_v, C)]

    def code_maps(self, shapes) -> list:
        """Codes as maps [(B, K, h_v, w_v)] given each view's grid shape (h_v, w_v)."""
        if len(shapes) != len(self.view_sizes) or any(h * w != n for (h, w), n in zip(shapes, self.view_sizes)):
            raise ValueError(f"code_maps: shapes {list(shapes)} do not match the view sizes {self.view_sizes}")
        return [z.reshape(*z.shape[:2], h, w) for z, (h, w) in zip(self.codes, shapes)]

    @property
    def relative_error(self) -> torch.Tensor:
        """(T, B) objective / ||X||²: 0 is perfect, 1 is as bad as predicting zeros."""
        return self.objective / self.data_norm2.clamp_min(torch.finfo(self.objective.dtype).tiny)


def _check_positive_int(value, name: str, caller: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{caller}: {name} must be a positive int, got {value!r}")
    return value


def _residual(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    return (x - recon).pow(2).sum(dim=(1, 2))   # (B,)


# ----------------------------------------------------------------------------- dictionary init
def l2_normalize(v: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Rows over the last axis: v / (eps + ||v||) (the eps is outside the square root, as in SLRNet)."""
    return v / (eps + v.norm(dim=-1, keepdim=True))


def init_dictionary(x: torch.Tensor, num_atoms: int, method: str = "kmeans++",
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """K rows of x (B, N, C) per batch item -> (B, K, C): k-means++ seeding or uniformly random rows.

    k-means++ (Arthur & Vassilvitskii 2007) draws each new row with probability proportional to its
    squared distance to the nearest row drawn so far, which spreads the atoms over the data.
    """
    B, N, C = x.shape
    _check_positive_int(num_atoms, "num_atoms", "init_dictionary")
    if num_atoms > N:
        raise ValueError(f"init_dictionary: num_atoms={num_atoms} exceeds the number of rows N={N}")
    rows = torch.arange(B, device=x.device)
    if method == "random":
        idx = torch.rand(B, N, generator=generator, device=x.device).argsort(dim=1)[:, :num_atoms]
        return x[rows[:, None], idx]                                       # (B, K, C)
    if method != "kmeans++":
        raise ValueError(f"init_dictionary: method must be 'kmeans++' or 'random', got {method!r}")
    xd = x.detach()
    first = torch.randint(N, (B,), generator=generator, device=x.device)
    chosen = [first]
    d2 = (xd - xd[rows, first][:, None]).pow(2).sum(-1)                       # (B, N) to nearest chosen
    for _ in range(1, num_atoms):
        weights = d2.clamp_min(0)
        weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, torch.ones_like(weights))
        nxt = torch.multinomial(weights, 1, generator=generator).squeeze(1)  # (B,)
        chosen.append(nxt)
        d2 = torch.minimum(d2, (xd - xd[rows, nxt][:, None]).pow(2).sum(-1))
    return x[rows[:, None], torch.stack(chosen, dim=1)]                     # (B, K, C)


def _initial_atoms(x, num_atoms, init, seed, caller):
    """Resolve ``init`` (a method name or a tensor (B, K, C) / (K, C)) to atoms (B, K, C)."""
    B, N, C = x.shape
    if isinstance(init, torch.Tensor):
        atoms = init.to(dtype=x.dtype, device=x.device)
        if atoms.dim() == 2:
            atoms = atoms.expand(B, *atoms.shape)
        if atoms.dim() != 3 or atoms.shape[0] != B or atoms.shape[2] != C:
            raise ValueError(f"{caller}: init tensor must be (B, K, C) = ({B}, K, {C}) or (K, {C}), "
                             f"got {tuple(init.shape)}")
        if num_atoms is not None and num_atoms != atoms.shape[1]:
            raise ValueError(f"{caller}: num_atoms={num_atoms} disagrees with init's K={atoms.shape[1]}")
        return atoms
    if init not in ("kmeans++", "random"):
        raise ValueError(f"{caller}: init must be 'kmeans++', 'random' or a tensor of atoms, got {init!r}")
    if num_atoms is None:
        raise ValueError(f"{caller}: give num_atoms (or an init tensor of atoms)")
    _check_positive_int(num_atoms, "num_atoms", caller)
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    return init_dictionary(x, num_atoms, init, generator=gen)


# ----------------------------------------------------------------------------- CVLR
def cvlr_step(x: torch.Tensor, dictionary: torch.Tensor, scale: float = 1.0,
              weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, eps: float = EPS):
    """One CVLR step on features X = x Wᵀ + b (or X = x when weight is None) -> (coding, dictionary).

    x (B, N, C_in), dictionary (B, K, C) of unit atoms, weight (C, C_in), bias (C,):
        Z = softmax_K(scale · D Xᵀ)               (B, K, N)   codes, one simplex per pixel
        A = (Z + eps) / Σ_n (Z + eps)             (B, K, N)   each atom's distribution over pixels
        D' = l2n(A X)                             (B, K, C)   the atoms' weighted means, normalised
    With an affine map the (B, N, C) tensor X is never formed: D Xᵀ = (D W) xᵀ + D b and
    A X = (A x) Wᵀ + b (A's rows sum to 1), which moves the N·C·C matmul of the map onto K·C·C.
    """
    if weight is None:
        logits = torch.bmm(dictionary, x.transpose(1, 2)).mul(scale)                  # (B, K, N)
    else:
        proj = torch.matmul(dictionary, weight)                                        # (B, K, C_in)
        offset = dictionary @ bias if bias is not None else dictionary.new_zeros(dictionary.shape[:2])
        logits = torch.baddbmm(offset.unsqueeze(2), proj, x.transpose(1, 2), beta=scale, alpha=scale)
    coding = logits.softmax(dim=1)                                                     # (B, K, N)
    weights = coding + eps
    weights = weights / weights.sum(dim=2, keepdim=True)                               # (B, K, N)
    means = torch.bmm(weights, x)                                                      # (B, K, C_in)
    if weight is not None:
        means = F.linear(means, weight, bias)                                          # (B, K, C)
    return coding, l2_normalize(means, eps)


def cvlr_factorize(views: Views, num_atoms: int | None = None, num_iters: int = 10, temperature: float = 1.0,
                   init: Union[str, torch.Tensor] = "kmeans++", view_sizes: Sequence[int] | None = None,
                   seed: int = 0, eps: float = EPS) -> FactorizationResult:
    """SLRNet's CVLR iteration on raw features (no learned maps): T steps of ``cvlr_step``.

    init: "kmeans++" / "random" (rows of the data, then normalised) or atoms (B, K, C) / (K, C).
    The reconstruction pairs the last codes with the dictionary updated from them, as the network does.
    """
    x, sizes = stack_views(views, view_sizes, "cvlr_factorize")
    _check_positive_int(num_iters, "num_iters", "cvlr_factorize")
    if not (isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"cvlr_factorize: temperature must be a positive finite number, got {temperature!r}")
    dictionary = l2_normalize(_initial_atoms(x, num_atoms, init, seed, "cvlr_factorize"), eps)  # (B, K, C)
    objective = []
    for _ in range(num_iters):
        coding, dictionary = cvlr_step(x, dictionary, 1.0 / temperature, eps=eps)
        recon = torch.bmm(coding.transpose(1, 2), dictionary)                          # (B, N, C)
        objective.append(_residual(x, recon))
    return FactorizationResult(coding, dictionary, recon, torch.stack(objective), x.pow(2).sum(dim=(1, 2)),
                               sizes, "cvlr")


# ----------------------------------------------------------------------------- NMF
def nmf_factorize(views: Views, num_atoms: int | None = None, num_iters: int = 100,
                  init: Union[str, torch.Tensor] = "kmeans++", view_sizes: Sequence[int] | None = None,
                  seed: int = 0, eps: float = 1e-12) -> FactorizationResult:
    """Non-negative X ≈ Zᵀ D (Z, D ≥ 0) by Lee & Seung's multiplicative updates; T alternating rounds.

        Z ← Z ⊙ (D Xᵀ) / (D Dᵀ Z)       D ← D ⊙ (Z X) / (Z Zᵀ D)
    Each update minimises a quadratic upper bound of ||X − Zᵀ D||², so the objective never increases
    (denominators are clamped at ``eps`` only to avoid 0/0). Initial atoms: data rows lifted by 1% of
    the data mean (an exact zero could never move under multiplicative updates); initial codes 1/K.
    """
    x, sizes = stack_views(views, view_sizes, "nmf_factorize")
    _check_positive_int(num_iters, "num_iters", "nmf_factorize")
    if (x < 0).any():
        raise ValueError(f"nmf_factorize: views must be non-negative, got a minimum of {x.min().item():.4g}")
    atoms = _initial_atoms(x, num_atoms, init, seed, "nmf_factorize")
    if (atoms < 0).any():
        raise ValueError("nmf_factorize: init atoms must be non-negative")
    floor = 0.01 * x.mean(dim=(1, 2), keepdim=True).clamp_min(eps)                    # (B, 1, 1)
    dictionary = atoms + floor                                                         # (B, K, C)
    B, K = dictionary.shape[:2]
    coding = x.new_full((B, K, x.shape[1]), 1.0 / K)                                   # (B, K, N)
    xt = x.transpose(1, 2)                                                             # (B, C, N)
    objective = []
    for _ in range(num_iters):
        gram_d = torch.bmm(dictionary, dictionary.transpose(1, 2))                     # (B, K, K)
        coding = coding * torch.bmm(dictionary, xt) / torch.bmm(gram_d, coding).clamp_min(eps)
        gram_z = torch.bmm(coding, coding.transpose(1, 2))                             # (B, K, K)
        dictionary = dictionary * torch.bmm(coding, x) / torch.bmm(gram_z, dictionary).clamp_min(eps)
        recon = torch.bmm(coding.transpose(1, 2), dictionary)                          # (B, N, C)
        objective.append(_residual(x, recon))
    return FactorizationResult(coding, dictionary, recon, torch.stack(objective), x.pow(2).sum(dim=(1, 2)),
                               sizes, "nmf")


# ----------------------------------------------------------------------------- SVD
def svd_reconstruct(views: Views, rank: int, view_sizes: Sequence[int] | None = None) -> FactorizationResult:
    """Best rank-K approximation of the stacked views (truncated SVD, Eckart-Young).

    X = U S Vᵀ; coding = (U_K S_K)ᵀ (B, K, N), dictionary = V_Kᵀ (B, K, C) (orthonormal atoms). The
    objective (1, B) is the sum of the discarded squared singular values, a lower bound on the
    error of any factorisation with K atoms (CVLR, NMF, ...).
    """
    x, sizes = stack_views(views, view_sizes, "svd_reconstruct")
    _check_positive_int(rank, "rank", "svd_reconstruct")
    if rank > min(x.shape[1], x.shape[2]):
        raise ValueError(f"svd_reconstruct: rank={rank} exceeds min(N, C) = {min(x.shape[1], x.shape[2])}")
    u, s, vh = torch.linalg.svd(x, full_matrices=False)                                # (B,N,R) (B,R) (B,R,C)
    coding = (u[:, :, :rank] * s[:, None, :rank]).transpose(1, 2)                      # (B, K, N)
    dictionary = vh[:, :rank]                                                          # (B, K, C)
    recon = torch.bmm(coding.transpose(1, 2), dictionary)                              # (B, N, C)
    objective = s[:, rank:].pow(2).sum(dim=1)[None]                                    # (1, B)
    return FactorizationResult(coding, dictionary, recon, objective, x.pow(2).sum(dim=(1, 2)), sizes, "svd")


# ----------------------------------------------------------------------------- analysis helpers
def match_atoms(estimated: torch.Tensor, reference: torch.Tensor):
    """Pair estimated atoms (K, C) with reference atoms (K', C), K >= K', one-to-one, by cosine similarity.

    Returns (order, cosine): estimated[order[i]] is matched to reference[i] with cosine[i]. The pairing is
    an optimal assignment (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``): it maximises
    the summed cosine over all one-to-one pairings, which greedy best-pair-first does not (taking the
    single best pair first can force two poor ones later). Use it before comparing two factorisations
    whose atoms come in arbitrary orders, e.g. the codes of two views factorised separately.
    """
    from scipy.optimize import linear_sum_assignment

    if estimated.dim() != 2 or reference.dim() != 2 or estimated.shape[1] != reference.shape[1]:
        raise ValueError(f"match_atoms: expected (K, C) and (K', C), got {tuple(estimated.shape)} and "
                         f"{tuple(reference.shape)}")
    if estimated.shape[0] < reference.shape[0]:
        raise ValueError(f"match_atoms: need at least as many estimated atoms ({estimated.shape[0]}) as "
                         f"reference atoms ({reference.shape[0]})")
    sim = (l2_normalize(reference.detach().double(), 1e-12)
           @ l2_normalize(estimated.detach().double(), 1e-12).T).cpu()                # (K', K)
    rows, cols = linear_sum_assignment(sim.numpy(), maximize=True)                     # rows = 0..K'-1, sorted
    order = torch.as_tensor(cols, dtype=torch.long)[torch.as_tensor(rows).argsort()]
    return order, sim[torch.arange(sim.shape[0]), order]


def cross_view_agreement(code1: torch.Tensor, code2: torch.Tensor) -> torch.Tensor:
    """Fraction of view-1 pixels whose argmax atom equals view 2's, after resizing view 2's codes.

    code1 (B, K, h1, w1), code2 (B, K, h2, w2) -> (B,). Resizing is bilinear with align_corners=True,
    as every resize in SLRNet (it undoes a scaled second view).
    """
    if code1.dim() != 4 or code2.dim() != 4 or code1.shape[:2] != code2.shape[:2]:
        raise ValueError(f"cross_view_agreement: expected (B, K, h1, w1) and (B, K, h2, w2), got "
                         f"{tuple(code1.shape)} and {tuple(code2.shape)}")
    up = resize(code2, code1.shape[-2:])
    return (up.argmax(dim=1) == code1.argmax(dim=1)).float().mean(dim=(1, 2))


# ----------------------------------------------------------------------------- planted toy data
@dataclass
class PlantedViews:
    """Two (or more) views of one planted low-rank scene: X_v = Z_vᵀ D + noise."""
    views: list     # [(B, N_v, C)] the observed views, N_v = h_v * w_v
    atoms: torch.Tensor   # (B, K, C) the planted unit-norm atoms
    codes: list     # [(B, K, N_v)] the planted codes (each pixel a point of the simplex)
    shapes: list    # [(h_v, w_v)] grid of each view


def planted_views(num_atoms: int = 4, channels: int = 16, shapes=((24, 24), (12, 12)), noise: float = 0.05,
                  boundary: float = 0.005, batch: int = 1, nonnegative: bool = False, seed: int = 0,
                  dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> PlantedViews:
    """A scene of K soft Voronoi regions on [0, 1]² seen at several resolutions (views).

    Each region is one atom; a pixel at p has codes softmax_k(−||p − s_k||² / boundary) over the
    region seeds s_k, so codes are near one-hot inside regions and mixed at the borders, and every
    view samples the *same* continuous scene on its own grid (align-corner coordinates). Atoms are
    unit Gaussian directions (|Gaussian| with ``nonnegative``, then X is clamped at 0); noise is
    Gaussian with expected per-pixel norm ``noise``.
    """
    _check_positive_int(num_atoms, "num_atoms", "planted_views")
    _check_positive_int(channels, "channels", "planted_views")
    if boundary <= 0 or noise < 0:
        raise ValueError(f"planted_views: need boundary > 0 and noise >= 0, got {boundary}, {noise}")
    gen = torch.Generator().manual_seed(int(seed))
    atoms = torch.randn(batch, num_atoms, channels, generator=gen, dtype=torch.float64)
    atoms = l2_normalize(atoms.abs() if nonnegative else atoms, 0.0)                  # (B, K, C)
    seeds = torch.rand(batch, num_atoms, 2, generator=gen, dtype=torch.float64)        # (B, K, 2)
    views, codes = [], []
    for h, w in shapes:
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=torch.float64),
                                torch.linspace(0, 1, w, dtype=torch.float64), indexing="ij")
        pos = torch.stack([yy.flatten(), xx.flatten()], dim=1)                         # (N_v, 2)
        d2 = (seeds[:, :, None, :] - pos[None, None]).pow(2).sum(-1)                   # (B, K, N_v)
        z = (-d2 / boundary).softmax(dim=1)                                            # (B, K, N_v)
        x = z.transpose(1, 2) @ atoms                                                  # (B, N_v, C)
        x = x + noise / math.sqrt(channels) * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        views.append((x.clamp_min(0) if nonnegative else x).to(dtype=dtype, device=device))
        codes.append(z.to(dtype=dtype, device=device))
    return PlantedViews(views, atoms.to(dtype=dtype, device=device), codes, [tuple(s) for s in shapes])
