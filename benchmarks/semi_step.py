"""Benchmark: the semi-supervised training step's pseudo-label and loss pieces against the straightforward ones.

In a semi-supervised batch the pixel-labelled images' pseudo labels are replaced by their ground truth, so
``SLRNet._pseudo_labels`` runs PAMR and the thresholds on the other images only; the one-hot ground truth is
scattered straight into the pseudo label's dtype; and the three segmentation terms (view 1, view 2, aux head)
share one ``losses.seg_targets``. The references below are the straightforward formulations (refine the whole
batch, then replace; ``F.one_hot`` permuted and cast; targets made per term). Both run in the same process on
the same inputs, the training shapes of notebook 03's quick profile (batch 16, 96 px crops, 24x24 masks,
7 classes), at the pixel-labelled share of a batch of each setting: about 1/3 (with image labels, x3
oversampling), about 1/2 (without, x7) and all of it (the labelled-only baseline). tests/test_semi.py and
tests/test_losses.py check that both give the same results bit for bit.

    python benchmarks/semi_step.py               # median of 7 timed runs, the machine's threads
    python benchmarks/semi_step.py --threads 1   # as each of notebook 03's side-by-side runs on 2 cores
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from slrnet import losses as L
from slrnet.models import build_model
from slrnet.variants import variant

MODEL = {"backbone": "tiny", "num_classes": 7, "decoder_channels": 32, "aspp_dilations": [1, 2, 4, 6],
         "backbone_kwargs": {"width": 16}, "scale_factor": 0.75}
SHARES = {"with image labels (1/3 labelled)": ("slrnet_semi", 5), "without (1/2 labelled)": ("slrnet_semi_wo_cls", 8),
          "labelled only (all)": ("slrnet_semi", 16)}
B, K, SIDE, MASK = 16, 7, 96, 24


def reference_replace(pseudo, pixels, has_mask, num_classes):
    one_hot = F.one_hot(pixels.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2)
    one_hot = one_hot.to(pseudo.dtype) * (pixels != L.IGNORE_INDEX)[:, None].to(pseudo.dtype)
    return torch.where(has_mask[:, None, None, None], one_hot, pseudo)


def reference_pseudo_labels(net, images, cam, labels, pixels, has_mask):
    maps = net._pseudo_labels(images, cam, labels, (SIDE, SIDE))          # PAMR on every image
    return reference_replace(maps["pseudo_gt"], pixels, has_mask, K)


def median_ms(fn, repeats: int) -> float:
    fn()                                                                  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def inputs(name: str, labelled: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    net = build_model({**MODEL, "name": name}).eval()
    images = torch.randn(B, 3, SIDE, SIDE, generator=g)
    cam = torch.rand(B, K, MASK, MASK, generator=g).softmax(1)
    labels = None if not variant(name).uses_image_labels else (torch.rand(B, K - 1, generator=g) < 0.4).float()
    pixels = torch.randint(0, K, (B, SIDE, SIDE), generator=g)
    pixels[:, 40:44] = L.IGNORE_INDEX
    has_mask = torch.arange(B) < labelled
    logits = [torch.randn(B, K, MASK, MASK, generator=g, requires_grad=True) for _ in range(3)]
    return net, images, cam, labels, pixels, has_mask, logits


def segmentation_terms(logits, pseudo, labels, shared: bool):
    targets = L.seg_targets(pseudo, logits[0].dtype) if shared else None
    seg = sum(w * L.balanced_ce(x, pseudo, labels, targets=targets) for w, x in zip((1.0, 1.0, 0.4), logits))
    seg.sum().backward()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the machine's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU, {torch.get_num_threads()} thread(s); batch {B}, {SIDE} px crops, {MASK}x{MASK} masks, {K} classes; "
          f"median of {args.repeats}, ms per batch\n")
    print(f"{'piece':<28}{'setting':<36}{'reference':>10}{'slrnet':>10}{'speed-up':>10}")
    with torch.no_grad():
        for setting, (name, labelled) in SHARES.items():
            net, images, cam, labels, pixels, has_mask, _ = inputs(name, labelled)
            ref = median_ms(lambda: reference_pseudo_labels(net, images, cam, labels, pixels, has_mask), args.repeats)
            new = median_ms(lambda: net._pseudo_labels(images, cam, labels, (SIDE, SIDE), pixels, has_mask),
                            args.repeats)
            print(f"{'pseudo labels':<28}{setting:<36}{ref:>10.2f}{new:>10.2f}{ref / new:>9.1f}x")
        net, images, cam, labels, pixels, has_mask, logits = inputs("slrnet_semi_wo_cls", 8)
        pseudo = (torch.rand(B, K, SIDE, SIDE) > 0.8).float()
        ref = median_ms(lambda: reference_replace(pseudo, pixels, has_mask, K), args.repeats)
        new = median_ms(lambda: L.replace_with_ground_truth(pseudo, pixels, has_mask, K), args.repeats)
        print(f"{'ground truth replace':<28}{'without (1/2 labelled)':<36}{ref:>10.2f}{new:>10.2f}{ref / new:>9.1f}x")
    ref = median_ms(lambda: segmentation_terms(logits, pseudo, None, shared=False), args.repeats)
    new = median_ms(lambda: segmentation_terms(logits, pseudo, None, shared=True), args.repeats)
    print(f"{'3 seg terms, fwd + bwd':<28}{'without (1/2 labelled)':<36}{ref:>10.2f}{new:>10.2f}{ref / new:>9.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
