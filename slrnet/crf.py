"""Dense CRF post-processing (Krähenbühl & Koltun, NIPS 2011) with the parameters SLRNet uses.

A fully connected CRF over the pixels of one image: unary energies from the network's class
probabilities, a Gaussian (smoothness) kernel and a bilateral (appearance) kernel with Potts
compatibilities, solved by mean-field iterations (METHOD.md section 5). Two entry points match the
authors' ``utils/dcrf.py`` and the reference fixture ``tests/fixtures/crf.npz``:

    >>> from slrnet.crf import crf_inference, crf_inference_label, crf_inference_many
    >>> q = crf_inference(img, probs, t=10, labels=21)            # img uint8 (H,W,3), probs (21,H,W)
    >>> pred = q.argmax(0)                                         # (H, W)
    >>> refined = crf_inference_label(img, pred, n_labels=21)      # label map in, label map out
    >>> qs = crf_inference_many(imgs, probs_list, num_workers=8)  # a process pool over images

The solver is the C++ library behind ``pydensecrf`` (PyPI package ``pydensecrf2``); it is
single-threaded, so many images are spread over processes (``crf_inference_many``, ``crf_executor``).
"""
from __future__ import annotations

import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Callable, Sequence

import multiprocessing
import numpy as np

# METHOD.md section 5: Gaussian sxy 3 compat 3; bilateral sxy 80 srgb 13 compat 10 (probability unaries).
GAUSSIAN_SXY, GAUSSIAN_COMPAT = 3, 3
BILATERAL_SXY, BILATERAL_SRGB, BILATERAL_COMPAT = 80, 13, 10
# The label-map variant uses a tighter appearance kernel (bilateral sxy 50, srgb 5).
LABEL_BILATERAL_SXY, LABEL_BILATERAL_SRGB = 50, 5
PROB_FLOOR = 1e-5  # probabilities are clipped to [1e-5, 1] so that -log stays finite


def _densecrf():
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("slrnet.crf needs the dense CRF library: `pip install pydensecrf2` "
                          "(the PyPI package 'pydensecrf2' provides the module 'pydensecrf')") from e
    return dcrf


def _check_image(img: np.ndarray, hw: tuple[int, int] | None, where: str) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{where}: img must be uint8 (H, W, 3) RGB, got {img.dtype} {img.shape}")
    if hw is not None and img.shape[:2] != tuple(hw):
        raise ValueError(f"{where}: img is {img.shape[:2]} but the probabilities/labels are {tuple(hw)}")
    return np.ascontiguousarray(img)  # the C++ side reads the buffer directly


def unary_from_probs(probs: np.ndarray) -> np.ndarray:
    """-ln(clip(p, 1e-5, 1)) as float32 (K, H*W): the negative log-likelihood unary."""
    probs = np.asarray(probs, dtype=np.float32)           # (K, H, W)
    unary = -np.log(np.clip(probs, np.float32(PROB_FLOOR), np.float32(1.0)))
    return np.ascontiguousarray(unary.reshape(probs.shape[0], -1), dtype=np.float32)


def unary_from_label_map(labels: np.ndarray, n_labels: int, gt_prob: float = 0.7) -> np.ndarray:
    """Unary of a hard label map: -ln(gt_prob) on the given label, -ln((1-gt_prob)/(n-1)) elsewhere.

    Every value, 0 included, is an ordinary class here (no "unsure" label). Returns float32 (K, H*W).
    """
    labels = np.asarray(labels).reshape(-1)                # (N,)
    if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
        raise ValueError(f"crf_inference_label: labels must lie in [0, {n_labels}), "
                         f"got range [{labels.min()}, {labels.max()}]")
    if not 0 < gt_prob < 1:
        raise ValueError(f"crf_inference_label: gt_prob must be in (0, 1), got {gt_prob}")
    off = -np.log((1.0 - gt_prob) / (n_labels - 1))        # energy of every label that is not given
    unary = np.full((n_labels, labels.size), off, dtype=np.float32)
    unary[labels, np.arange(labels.size)] = -np.log(gt_prob)
    return unary


def crf_inference(img: np.ndarray, probs: np.ndarray, t: int = 10, scale_factor: float = 1,
                  labels: int = 21) -> np.ndarray:
    """Mean-field dense CRF on class probabilities; returns Q float32 (labels, H, W).

    ``probs`` (K, H, W) need not sum to one (the filtered, background-powered maps of inference do
    not); they are only clipped. ``scale_factor`` shrinks both spatial kernel widths (sxy / s).
    """
    probs = np.asarray(probs)
    if probs.ndim != 3 or probs.shape[0] != labels:
        raise ValueError(f"crf_inference: probs must be ({labels}, H, W) to match labels={labels}, "
                         f"got {probs.shape}")
    h, w = probs.shape[1:]
    img = _check_image(img, (h, w), "crf_inference")
    dcrf = _densecrf()
    crf = dcrf.DenseCRF2D(w, h, labels)                   # the library takes width first
    crf.setUnaryEnergy(unary_from_probs(probs))
    crf.addPairwiseGaussian(sxy=GAUSSIAN_SXY / scale_factor, compat=GAUSSIAN_COMPAT)
    crf.addPairwiseBilateral(sxy=BILATERAL_SXY / scale_factor, srgb=BILATERAL_SRGB, rgbim=img,
                             compat=BILATERAL_COMPAT)
    q = crf.inference(int(t))                              # (labels, H*W) Eigen matrix
    return np.asarray(q, dtype=np.float32).reshape(labels, h, w)


def crf_inference_label(img: np.ndarray, labels: np.ndarray, t: int = 10, n_labels: int = 21,
                        gt_prob: float = 0.7) -> np.ndarray:
    """Dense CRF on a hard label map (H, W); returns the refined label map int64 (H, W)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"crf_inference_label: labels must be an (H, W) map, got {labels.shape}")
    h, w = labels.shape
    img = _check_image(img, (h, w), "crf_inference_label")
    dcrf = _densecrf()
    crf = dcrf.DenseCRF2D(w, h, n_labels)
    crf.setUnaryEnergy(unary_from_label_map(labels, n_labels, gt_prob))
    crf.addPairwiseGaussian(sxy=GAUSSIAN_SXY, compat=GAUSSIAN_COMPAT)
    crf.addPairwiseBilateral(sxy=LABEL_BILATERAL_SXY, srgb=LABEL_BILATERAL_SRGB, rgbim=img,
                             compat=BILATERAL_COMPAT)
    q = np.asarray(crf.inference(int(t))).reshape(n_labels, h, w)
    return q.argmax(0).astype(np.int64)


def crf_argmax(img: np.ndarray, probs: np.ndarray, t: int = 10, scale_factor: float = 1) -> np.ndarray:
    """``crf_inference(...).argmax(0)`` as uint8: ships a small label map back from a worker."""
    q = crf_inference(img, probs, t=t, scale_factor=scale_factor, labels=probs.shape[0])
    return q.argmax(0).astype(np.uint8 if probs.shape[0] <= 256 else np.int64)


# ----------------------------------------------------------------------------- many images

class SerialExecutor(Executor):
    """An ``Executor`` that runs each task at submit time (the 1-worker fallback, no processes)."""

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # re-raised by future.result(), as a pool would
            future.set_exception(e)
        return future


def resolve_num_workers(num_workers: int | None) -> int:
    """``None`` or 0 -> every CPU core (``os.cpu_count()``); negative values are an error."""
    if num_workers is None or num_workers == 0:
        return os.cpu_count() or 1
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0 (0/None = all cores), got {num_workers}")
    return int(num_workers)


def crf_executor(num_workers: int | None = None, mp_context: str | None = "spawn") -> Executor:
    """A process pool of ``num_workers`` (default all cores), or a ``SerialExecutor`` for one worker.

    ``spawn`` is the default start method: the parent may hold CUDA state or OpenMP thread pools that
    must not be forked; the workers only import numpy and pydensecrf, so starting them is cheap.
    Use it as a context manager so the workers are shut down.
    """
    n = resolve_num_workers(num_workers)
    if n == 1:
        return SerialExecutor()
    ctx = multiprocessing.get_context(mp_context) if mp_context else None
    return ProcessPoolExecutor(max_workers=n, mp_context=ctx)


def crf_inference_many(images: Sequence[np.ndarray], probs: Sequence[np.ndarray], t: int = 10,
                       scale_factor: float = 1, num_workers: int | None = None,
                       return_labels: bool = False, mp_context: str | None = "spawn") -> list[np.ndarray]:
    """``crf_inference`` over many images in parallel; results keep the input order.

    Returns Q maps (K, H, W) float32, or argmax label maps (H, W) when ``return_labels`` (cheaper to
    send back between processes).
    """
    if len(images) != len(probs):
        raise ValueError(f"crf_inference_many: {len(images)} images but {len(probs)} probability maps")
    n = min(resolve_num_workers(num_workers), max(1, len(images)))
    with crf_executor(n, mp_context) as pool:
        if return_labels:
            futures = [pool.submit(crf_argmax, im, p, t, scale_factor) for im, p in zip(images, probs)]
        else:
            futures = [pool.submit(crf_inference, im, p, t, scale_factor, p.shape[0])
                       for im, p in zip(images, probs)]
        return [f.result() for f in futures]
