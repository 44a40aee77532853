"""Benchmark: one SLRNet training step on CPU, the straightforward path against layout and precision choices.

The step is the trainer's: the weakly supervised network (two views, CVLR, PAMR, every loss term with the
segmentation loss on), ``loss_coeff`` of the config, backward, SGD. Random weights (speed does not depend on
training), a fixed random batch; each variant starts from the same weights and batch, so its first-step loss
can be compared with the reference's:

1. **straightforward**: float32, NCHW, autograd anomaly detection off (the library's default);
2. **channels-last**: weights and the batch in NHWC (what inference gains from; training differs);
3. **bf16 autocast**: ``torch.autocast("cpu", torch.bfloat16)`` -- what AMP would change on a CPU (without
   AVX-512 BF16 or AMX units the matrix products are emulated);
4. **anomaly detection on**: ``torch.autograd.set_detect_anomaly(True)``, the cost of a debugging switch that
   must stay off.

    python benchmarks/train_step.py --variants 1,2,4       # WideResNet-38, batch 2, 160 px crops, no bf16 (~4 min)
    python benchmarks/train_step.py                       # all four (bf16 on a CPU without BF16 units: ~15 min)
    python benchmarks/train_step.py --config shapes_quick.yaml --batch 16 --crop 96   # the teaching model
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ("straightforward (reference)", "channels-last", "bf16 autocast", "anomaly detection on")


def make_step(cfg: dict, variant: str, seed: int, batch: int, crop: int):
    from slrnet.models import build_model

    torch.manual_seed(seed)
    model = build_model({**cfg["model"], "pretrained": ""}).train()
    g = torch.Generator().manual_seed(seed + 1)
    images = torch.randn(batch, 3, crop, crop, generator=g)
    labels = (torch.rand(batch, model.num_classes - 1, generator=g) < 0.3).float()
    labels[:, 0] = 1.0                                                   # every image has a class
    if variant == "channels-last":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    t = cfg["train"]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=t["lr"], momentum=t["momentum"], weight_decay=t["weight_decay"])
    c = t["loss_coeff"]
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if variant == "bf16 autocast" else contextlib.nullcontext()

    def step() -> float:
        with amp:
            out = model(images, labels)
        losses = {k: v.float() for k, v in out["losses"].items() if v.dim() == 0}
        loss = c[0] * losses["cls"] + c[1] * losses["mask"] + c[2] * losses["code"] + c[3] * losses["seg"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="voc_wss_resnet38.yaml", help="a config in configs/")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per variant, after one untimed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(str(i + 1) for i in range(len(VARIANTS))),
                        help="which variants to run, by number (default all; 1, the reference, always runs)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from slrnet.config import load_config

    cfg = load_config(REPO / "configs" / args.config)
    rows = []
    chosen = {1} | {int(v) for v in args.variants.replace(",", " ").split()}
    for variant in [v for i, v in enumerate(VARIANTS) if i + 1 in chosen]:
        step = make_step(cfg, variant, args.seed, args.batch, args.crop)
        anomaly = torch.autograd.set_detect_anomaly(variant == "anomaly detection on")
        with anomaly:
            first_loss = step()                                          # untimed: allocations, kernel choice
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
        rows.append({"variant": variant, "s_per_step": statistics.median(times), "first_loss": first_loss})
    ref = rows[0]
    print(f"one SLRNet training step on CPU ({torch.get_num_threads()} torch threads, {os.cpu_count()} cores): "
          f"{args.config}, batch {args.batch}, {args.crop} px crops, every loss term; median of {args.steps} steps")
    header = f"{'variant':<30} {'s/step':>8} {'speedup':>8} {'first-step loss':>16} {'vs reference':>13}"
    print(header)
    print("-" * len(header))
    for r in rows:
        r["speedup"] = ref["s_per_step"] / r["s_per_step"]
        r["loss_rel_diff"] = abs(r["first_loss"] - ref["first_loss"]) / max(abs(ref["first_loss"]), 1e-12)
        print(f"{r['variant']:<30} {r['s_per_step']:>8.2f} {r['speedup']:>7.2f}x {r['first_loss']:>16.6f} "
              f"{r['loss_rel_diff']:>13.1e}")
    if args.json:
        from slrnet.utils import write_json

        write_json(args.json, {"config": args.config, "batch": args.batch, "crop": args.crop,
                               "threads": torch.get_num_threads(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
