"""Benchmark: notebook 03's runs trained side by side (worker processes) against one after another.

Trains the three runs of notebook 03 at its headline fraction (semi with image labels, semi without,
labelled part alone) on the default shapes dataset with the quick profile's model, on a shortened
schedule, twice in the same run: ``run_study(..., workers=1)`` (in this process, all threads) and
``run_study(..., workers=N)`` (N processes, the threads shared out). Prints a table of wall time and
each run's val mIoU, and the speed-up.

    python benchmarks/label_efficiency_workers.py                      # 3 epochs of 20 steps, CPU
    python benchmarks/label_efficiency_workers.py --epochs 2 --steps 10 --workers 2

The two rows of val mIoU differ only by the floating-point order of another thread count
(tests/test_label_efficiency.py checks that equal thread counts give equal weights).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from slrnet.analysis import label_efficiency as study

SETTINGS = ("semi_w_cls", "semi_wo_cls", "labelled_only")


def timed_study(workers: int, output_dir: Path, args) -> tuple[float, dict]:
    overrides = {"train.num_epochs": args.epochs, "train.pretrain_epochs": 1,
                 "train.max_steps_per_epoch": args.steps, "train.val_every": 0}
    start = time.perf_counter()
    runs = study.run_study([args.fraction], SETTINGS, profile="quick", output_dir=output_dir, device=args.device,
                           overrides=overrides, workers=workers)
    return time.perf_counter() - start, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch")
    parser.add_argument("--fraction", type=float, default=0.138)
    parser.add_argument("--workers", type=int, default=len(SETTINGS))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        # the first call also makes the dataset and the pretrained weights if missing: not timed
        timed_study(1, Path(tmp) / "warm-up", argparse.Namespace(**{**vars(args), "epochs": 2, "steps": 1}))
        alone_s, alone = timed_study(1, Path(tmp) / "one-after-another", args)
        side_s, side = timed_study(args.workers, Path(tmp) / "side-by-side", args)
    steps = args.epochs * args.steps
    print(f"{len(SETTINGS)} runs of {steps} steps (batch 16, crop 96), {threads} threads, device {args.device}\n")
    print(f"| {'how':<40} | {'wall s':>7} | {'ms/step/run':>11} | " + " | ".join(f"{s:>13}" for s in SETTINGS) + " |")
    print("|" + "-" * 42 + "|" + "-" * 9 + "|" + "-" * 13 + "|" + "|".join("-" * 15 for _ in SETTINGS) + "|")
    for how, seconds, runs in ((f"one after another, {threads} threads", alone_s, alone),
                               (f"side by side, {args.workers} processes x "
                                f"{max(1, threads // args.workers)} thread(s)", side_s, side)):
        mious = " | ".join(f"{runs[s, args.fraction].row['val_miou']:>13.4f}" for s in SETTINGS)
        print(f"| {how:<40} | {seconds:>7.1f} | {1000 * seconds / (steps * len(SETTINGS)):>11.1f} | {mious} |")
    print(f"\nside by side is {alone_s / side_s:.2f}x faster")


if __name__ == "__main__":
    main()
