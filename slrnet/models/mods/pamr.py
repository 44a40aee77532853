"""PAMR: Pixel-Adaptive Mask Refinement (memory-lean), used to refine pseudo labels.

Masks are propagated between neighbouring pixels with weights computed from the image
(METHOD.md section 2; fixture README section 3). For dilations D and the 8 offsets of each
(raster order (-d,-d), (-d,0), (-d,+d), (0,-d), (0,+d), (+d,-d), (+d,0), (+d,+d), dilation-major,
P = 8|D| neighbours, out-of-image neighbours clamped to the border):

    sigma_c(x) = unbiased std of I_c over the 9|D| samples of the dilated 3x3 windows
                 (the centre counted once per dilation)
    a_p(x)     = mean_c  -|I_c(x) - I_c(x + o_p)| / (1e-8 + 0.1 sigma_c(x))
    alpha(x)   = softmax_p a(x)                                  (B, 1, P, H, W)
    repeat T times:  M_k(x) <- sum_p alpha_p(x) M_k(x + o_p)     (no self term, no renormalising)

    >>> pamr = PAMR(num_iter=10, dilations=(1, 2, 4, 8, 12, 24))
    >>> refined = pamr(image, mask)               # image (B, 3, H, W), mask (B, K, h, w) -> (B, K, H, W)
    >>> refined = run_pamr(pamr, image, mask)     # image resized to the mask size instead (training)

Implementation. The straightforward formulation materialises every shifted copy of the mask as a
(B, K, P, H, W) tensor each iteration (P = 48: 48x the mask's memory, several times over). Here the
affinity is a (B, P, H, W) tensor (no class axis) and propagation accumulates one neighbour at a
time into a (B, K, H, W) buffer, reading each neighbour as a slice of one replicate-padded copy (padded
by the largest dilation) per pass. sigma uses running sums over the same slices (two passes: mean, then squared
deviations, for float32 accuracy). Peak extra memory is a few mask-sized tensors. The fixed +-1/0
shift kernels of the original implementation are kept as buffers (``aff_x.kernel``,
``aff_m.kernel`` (8,1,3,3), ``aff_std.kernel`` (9,1,3,3)) so that, with the module registered as
``_aff`` in the network, official checkpoints load strictly; they are not used for computing.
Any device and floating dtype: half-precision inputs are processed in float32 (the 1e-8 guard
would flush to 0 in float16) and the result is returned in the inputs' promoted dtype.

References: Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels", CVPR 2020;
Pan et al., SLRNet, IJCV 2022.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

# (dy, dx) in units of the dilation, raster order without the centre; the order of the neighbour axis
NEIGHBOUR_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
WINDOW_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))   # 3x3 incl. centre


def _shift_kernel(offsets, centre: float) -> torch.Tensor:
    """(len(offsets), 1, 3, 3): +1 at each offset's tap, ``centre`` added at the middle tap."""
    kernel = torch.zeros(len(offsets), 1, 3, 3)
    for i, (dy, dx) in enumerate(offsets):
        kernel[i, 0, 1, 1] += centre
        kernel[i, 0, 1 + dy, 1 + dx] += -1.0 if centre else 1.0
    return kernel


class _ShiftKernel(nn.Module):
    """Holds one fixed shift kernel as buffer ``kernel`` (checkpoint compatibility)."""

    def __init__(self, kernel: torch.Tensor):
        super().__init__()
        self.register_buffer("kernel", kernel)


def _neighbours(x: torch.Tensor, dilations: Sequence[int], offsets=NEIGHBOUR_OFFSETS) -> Iterator[torch.Tensor]:
    """Yield x shifted by each offset * d, dilation-major over ``dilations``, (B, C, H, W) views of one copy of x
    replicate-padded by the largest d: clamping an out-of-image read to the border is the same for every
    padding width that holds it, so one pad serves all dilations (one copy instead of one per dilation)."""
    H, W = x.shape[-2:]
    m = max(dilations)
    padded = F.pad(x, (m, m, m, m), mode="replicate")    # (B, C, H + 2m, W + 2m); clamps out-of-image reads
    for d in dilations:
        for dy, dx in offsets:
            top, left = m + dy * d, m + dx * d
            yield padded[..., top:top + H, left:left + W]


class PAMR(nn.Module):
    """forward(image (B, C, H, W), mask (B, K, h, w)) -> refined mask (B, K, H, W)."""

    def __init__(self, num_iter: int = 10, dilations: Sequence[int] = (1, 2, 4, 8, 12, 24)):
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        if not dilations or min(dilations) < 1:
            raise ValueError(f"PAMR: dilations must be a non-empty list of positive integers, got {dilations!r}")
        if num_iter < 0:
            raise ValueError(f"PAMR: num_iter must be >= 0, got {num_iter}")
        self.num_iter, self.dilations = int(num_iter), dilations
        self.aff_x = _ShiftKernel(_shift_kernel(NEIGHBOUR_OFFSETS, centre=1.0))    # centre - neighbour
        self.aff_m = _ShiftKernel(_shift_kernel(NEIGHBOUR_OFFSETS, centre=0.0))    # copy of the neighbour
        self.aff_std = _ShiftKernel(_shift_kernel(WINDOW_OFFSETS, centre=0.0))     # the 3x3 window

    def extra_repr(self) -> str:
        return f"num_iter={self.num_iter}, dilations={self.dilations}"

    @property
    def num_neighbours(self) -> int:
        return len(NEIGHBOUR_OFFSETS) * len(self.dilations)

    def local_std(self, image: torch.Tensor) -> torch.Tensor:
        """Unbiased std of each channel over the dilated 3x3 windows of all dilations, (B, C, H, W)."""
        n = len(WINDOW_OFFSETS) * len(self.dilations)
        total = torch.zeros_like(image)
        for sample in _neighbours(image, self.dilations, WINDOW_OFFSETS):
            total += sample
        mean = total / n
        squares = torch.zeros_like(image)          # second pass: sum of squared deviations (no cancellation)
        for sample in _neighbours(image, self.dilations, WINDOW_OFFSETS):
            squares += (sample - mean) ** 2
        return (squares / (n - 1)).sqrt()

    def affinity_logits(self, image: torch.Tensor) -> torch.Tensor:
        """a_p = mean_c -|I_c - I_c(neighbour p)| / (1e-8 + 0.1 sigma_c), (B, P, H, W)."""
        B, _, H, W = image.shape
        denom = 1e-8 + 0.1 * self.local_std(image)                       # (B, C, H, W)
        logits = image.new_empty(B, self.num_neighbours, H, W)
        for p, neighbour in enumerate(_neighbours(image, self.dilations)):
            logits[:, p] = (-(image - neighbour).abs() / denom).mean(dim=1)
        return logits

    def affinity(self, image: torch.Tensor) -> torch.Tensor:
        """Softmax over the P neighbours, in the original layout (B, 1, P, H, W)."""
        self._check_image(image)
        return F.softmax(self.affinity_logits(image), dim=1).unsqueeze(1)

    def propagate(self, mask: torch.Tensor, affinity: torch.Tensor) -> torch.Tensor:
        """T steps of M <- sum_p alpha_p M(neighbour p); mask (B, K, H, W), affinity (B, 1, P, H, W)."""
        alpha = affinity.squeeze(1)                                       # (B, P, H, W)
        if alpha.shape[0] != mask.shape[0] or alpha.shape[1] != self.num_neighbours \
                or alpha.shape[-2:] != mask.shape[-2:]:
            raise ValueError(f"PAMR.propagate: affinity {tuple(affinity.shape)} does not fit mask "
                             f"{tuple(mask.shape)} with {self.num_neighbours} neighbours")
        for _ in range(self.num_iter):
            refined = torch.zeros_like(mask)                              # (B, K, H, W)
            for p, neighbour in enumerate(_neighbours(mask, self.dilations)):   # (B, K, H, W) views
                refined.addcmul_(neighbour, alpha[:, p:p + 1])           # alpha broadcast over K
            mask = refined
        return mask

    @staticmethod
    def upsample_mask(mask: torch.Tensor, size) -> torch.Tensor:
        """Bilinear (align_corners=True) resize of the mask to the image size; exact no-op if equal."""
        if tuple(mask.shape[-2:]) == tuple(size):
            return mask
        return F.interpolate(mask, size=tuple(size), mode="bilinear", align_corners=True)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self._check_image(image)
        if mask.dim() != 4 or mask.shape[0] != image.shape[0]:
            raise ValueError(f"PAMR.forward: expected mask (B, K, h, w) with B = {image.shape[0]}, "
                             f"got {tuple(mask.shape)}")
        dtype = torch.promote_types(image.dtype, mask.dtype)
        # half precision would flush the 1e-8 guard to 0 (0/0 on flat patches): compute in >= float32
        work = torch.promote_types(dtype, torch.float32)
        image, mask = image.to(work), mask.to(work)
        mask = self.upsample_mask(mask, image.shape[-2:])                 # (B, K, H, W)
        return self.propagate(mask, self.affinity(image)).to(dtype)

    @staticmethod
    def _check_image(image: torch.Tensor):
        if image.dim() != 4 or not image.is_floating_point():
            raise ValueError(f"PAMR: expected a floating-point image (B, C, H, W), got "
                             f"{tuple(image.shape)} {image.dtype}")


@torch.no_grad()
def run_pamr(pamr: PAMR, image: torch.Tensor, mask: torch.Tensor, bg_pow: float | None = None) -> torch.Tensor:
    """Refine ``mask`` (B, K, h, w) at its own resolution, the image (B, 3, H, W) resized to (h, w).

    ``bg_pow`` raises the background channel (0) to that power first (semi-supervised wo_cls
    variant). Unlike the original, which does this **in place** on the caller's tensor, the
    caller's mask is left untouched; the refined result is the same. No gradient (pseudo labels).
    """
    if image.dim() != 4 or mask.dim() != 4 or image.shape[0] != mask.shape[0]:
        raise ValueError(f"run_pamr: expected image (B, 3, H, W) and mask (B, K, h, w) with the same B, "
                         f"got {tuple(image.shape)} and {tuple(mask.shape)}")
    image = F.interpolate(image, size=mask.shape[-2:], mode="bilinear", align_corners=True)
    if bg_pow is not None:
        mask = torch.cat([mask[:, :1] ** bg_pow, mask[:, 1:]], dim=1)   # a new tensor, not in place
    return pamr(image, mask)
