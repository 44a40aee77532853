"""Benchmark: what the factor diagnostics (``slrnet.diagnostics``) cost in every training step.

The trainer's step of the teaching model (``configs/shapes_quick.yaml``: two views, CVLR, PAMR, every loss term,
backward, SGD) with the diagnostics, against the same step with ``SLRNet.factor_diagnostics`` replaced by a
function returning nothing (the straightforward reference: no diagnostics). Same weights, same batch; the
losses of the two must be equal (the diagnostics run without gradient and draw no random numbers).

    python benchmarks/diagnostics_overhead.py                 # batch 16, 96 px, 20 timed steps each, 1 thread
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def make_step(cfg: dict, diagnostics: bool, batch: int, crop: int, seed: int = 0):
    """A closure running one training step of a fresh model (the same weights and batch for both settings)."""
    from slrnet.models import build_model
    from slrnet.objective import total_loss
    from slrnet.optim import build_optimizer

    torch.manual_seed(seed)
    model = build_model({**cfg["model"], "pretrained": ""}).train()
    if not diagnostics:
        model.factor_diagnostics = lambda *args: {}
    optimizer = build_optimizer(model, cfg)
    g = torch.Generator().manual_seed(seed + 1)
    images = torch.randn(batch, 3, crop, crop, generator=g)
    labels = (torch.rand(batch, cfg["model"]["num_classes"] - 1, generator=g) < 0.3).float()

    def step(i: int) -> tuple[float, float]:
        torch.manual_seed(seed + 100 + i)                 # the same dropout draws in both
        start = time.perf_counter()
        out = model(images, labels, seg_loss=True)
        loss = total_loss({k: v for k, v in out["losses"].items() if v.dim() == 0}, cfg["train"]["loss_coeff"], True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start, float(loss)

    return step


def main(argv=None) -> int:
    from slrnet.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(REPO / "configs" / "shapes_quick.yaml")
    plain, diagnosed = (make_step(cfg, d, args.batch, args.crop) for d in (False, True))
    reference, with_diag, ref_losses, diag_losses = [], [], [], []
    for i in range(args.steps + 2):                       # alternating, so a busy machine slows both alike
        (t_ref, l_ref), (t_diag, l_diag) = plain(i), diagnosed(i)
        ref_losses.append(l_ref), diag_losses.append(l_diag)
        if i >= 2:                                        # two warm-up steps
            reference.append(t_ref), with_diag.append(t_diag)
    print(f"shapes_quick step, batch {args.batch}, {args.crop} px, {args.threads} thread(s), {args.steps} steps")
    print("| step | median s | mean s |\n|---|---|---|")
    for name, t in (("without diagnostics (reference)", reference), ("with diagnostics", with_diag)):
        print(f"| {name} | {statistics.median(t):.4f} | {statistics.mean(t):.4f} |")
    overhead = statistics.median(with_diag) / statistics.median(reference) - 1
    print(f"overhead {overhead:+.1%}; losses equal in every step: {ref_losses == diag_losses}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
