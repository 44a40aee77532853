"""Benchmark: SLRNet's dropout masks drawn from a uniform tensor (slrnet.models.mods.dropout) against ``bernoulli_``.

The reference is what torch and the original code do: ``nn.Dropout`` (``F.dropout``, a ``bernoulli_`` mask) and
the Stochastic Gate's inverted dropout on a tensor of ones. Both run in the same process on the same inputs:

* ``one mask``: one dropout call, forward only, on the maps a teaching-profile step draws them on (batch 16,
  96 px crops, the tiny backbone: 32 channels at 24x24 for view 1, 18x18 for the 0.75 view) and on one
  VOC-recipe map (batch 16, 256 channels at 41x41, a 321 crop at stride 8);
* ``training step``: forward and backward of notebook 03's ``slrnet_semi_wo_cls`` network (9 masks per step)
  at batch 16, half of it pixel-labelled, with every ``Dropout`` and the gate switched to the reference.

    python benchmarks/dropout.py               # median of 7 timed runs, the machine's threads
    python benchmarks/dropout.py --threads 1   # as each of notebook 03's side-by-side runs on 2 cores
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from slrnet.models import build_model
from slrnet.models.mods import Dropout
from slrnet.utils import resolve_device

MODEL = {"name": "slrnet_semi_wo_cls", "backbone": "tiny", "num_classes": 7, "decoder_channels": 32,
         "aspp_dilations": [1, 2, 4, 6], "backbone_kwargs": {"width": 16}, "scale_factor": 0.75}
MAPS = {"teaching, view 1 (16, 32, 24, 24)": (16, 32, 24, 24), "teaching, view 2 (16, 32, 18, 18)": (16, 32, 18, 18),
        "VOC recipe (16, 256, 41, 41)": (16, 256, 41, 41)}


def reference_keep_mask(like: torch.Tensor, rate: float) -> torch.Tensor:
    """The original gate's draw: inverted dropout on ones, mapped to {0, 1}."""
    return (F.dropout(torch.ones_like(like), p=rate, training=True) != 0).to(like.dtype)


def use_reference(net: nn.Module) -> nn.Module:
    """Switch every Dropout of ``net`` to nn.Dropout and its gate to the reference draw (in place)."""
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, Dropout):
                setattr(module, name, nn.Dropout(child.p))
    net.sg.sample_keep_mask = lambda like: reference_keep_mask(like, net.sg.rate)
    return net


def median_ms(fn, repeats: int, device: torch.device) -> float:
    fn()                                                                  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def step(net: nn.Module, batch: dict):
    def run():
        out = net(batch["images"], None, batch["pixels"], batch["has_mask"])
        loss = sum(v for k, v in out["losses"].items() if v.dim() == 0)
        net.zero_grad(set_to_none=True)
        loss.backward()
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the machine's)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"{device.type}, {torch.get_num_threads()} thread(s); ms per call, median of {args.repeats}")
    print(f"{'case':<16}{'shape':<38}{'reference':>10}{'slrnet':>10}{'speed-up':>10}")
    for label, shape in MAPS.items():
        x = torch.randn(shape, device=device)
        for p in (0.5, 0.1):
            ref = median_ms(lambda: F.dropout(x, p, training=True), args.repeats, device)
            new = median_ms(lambda: Dropout(p).train()(x), args.repeats, device)
            print(f"{f'one mask, p={p}':<16}{label:<38}{ref:>10.2f}{new:>10.2f}{ref / new:>9.1f}x")
    g = torch.Generator().manual_seed(0)
    batch = {"images": torch.randn(16, 3, 96, 96, generator=g).to(device),
             "pixels": torch.randint(0, 7, (16, 96, 96), generator=g).to(device),
             "has_mask": (torch.arange(16) % 2 == 0).to(device)}
    torch.manual_seed(0)
    net = build_model(MODEL).to(device).train()
    new = median_ms(step(net, batch), args.repeats, device)
    ref = median_ms(step(use_reference(net), batch), args.repeats, device)
    print(f"{'training step':<16}{'semi wo_cls, batch 16, 96 px':<38}{ref:>10.2f}{new:>10.2f}{ref / new:>9.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
