"""Benchmark: one epoch's training samples of an embedded dataset, read as the quick profile reads them.

The teaching profile trains with ``num_workers: 0``, so every sample is made in the training loop: decode the
JPEG and the PNG mask, count the mask's values for the image labels, crop, flip, colour-jitter, normalise. Two
choices are measured against the straightforward path, each checked to give the same bits:

1. **straightforward (reference)**: files decoded on every read, normalisation as a float64 pass over the
   pixels, ``(x / 255 - mean) / std`` rounded to float32;
2. **lookup normalisation**: the same, normalised by a (3, 256) table of those roundings (the library's);
3. **+ in-memory cache**: decoded images, masks and labels kept after the first epoch (``dataset.cache: true``).

    python benchmarks/data_loading.py                        # shapes, 2 x 400 samples (~1 min)
    python benchmarks/data_loading.py --dataset photos --samples 1000
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ("straightforward (reference)", "lookup normalisation", "+ in-memory cache")


def float64_normalize(image, mean, std) -> torch.Tensor:
    """The straightforward normalisation: a float64 pass over every pixel, rounded once to float32."""
    x = torch.from_numpy(np.asarray(image, dtype=np.float64).copy()).permute(2, 0, 1) / 255.0   # (3, H, W)
    m = torch.tensor(mean, dtype=torch.float64).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(3, 1, 1)
    return ((x - m) / s).float()


def read_epoch(dataset, samples: int, seed: int) -> tuple[float, list[torch.Tensor]]:
    """Seconds to read ``samples`` items in a seeded order, and the images read (for the equality check)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:samples].tolist()
    dataset.transform.generator = torch.Generator().manual_seed(seed)   # the same augmentations every variant
    start = time.perf_counter()
    images = [dataset[i]["image"] for i in order]
    return time.perf_counter() - start, images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="shapes", choices=("shapes", "photos"))
    parser.add_argument("--samples", type=int, default=400, help="samples per timed pass")
    parser.add_argument("--passes", type=int, default=2, help="timed passes per variant (after a warm-up pass)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from slrnet.config import load_config
    from slrnet.data import transforms
    from slrnet.data.build import build_dataset

    cfg = load_config(REPO / "configs" / f"{args.dataset}_quick.yaml")["dataset"]
    rows, reference = [], None
    for variant in VARIANTS:
        dataset = build_dataset({**cfg, "cache": variant == VARIANTS[2]}, "train", train=True)
        patch = mock.patch.object(transforms, "normalize_to_tensor", float64_normalize) \
            if variant == VARIANTS[0] else contextlib.nullcontext()
        with patch:
            read_epoch(dataset, args.samples, seed=0)        # warm-up (and, with the cache, the first epoch)
            times, images = [], None
            for p in range(args.passes):
                seconds, images = read_epoch(dataset, args.samples, seed=0)
                times.append(seconds)
        per_sample = statistics.median(times) / args.samples
        reference = reference or (per_sample, images)
        equal = all(torch.equal(a, b) for a, b in zip(images, reference[1]))
        rows.append((variant, per_sample, reference[0] / per_sample, equal))
    print(f"{args.dataset} training samples, {cfg['crop_size']} px crops, num_workers 0, "
          f"{torch.get_num_threads()} torch threads; median of {args.passes} passes of {args.samples}")
    print(f"{'variant':30s} {'ms/sample':>10s} {'speedup':>8s}  same bits")
    print("-" * 62)
    for variant, per_sample, speedup, equal in rows:
        print(f"{variant:30s} {per_sample * 1e3:10.3f} {speedup:7.2f}x  {equal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
