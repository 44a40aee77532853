"""Benchmark: dense CRF throughput, one process vs. a process pool over this machine's cores.

The CRF (slrnet.crf, pydensecrf: 10 mean-field iterations, 21 labels, the SLRNet kernels) is
single-threaded C++, so inference spreads images over processes. Two workloads on synthetic but
realistic inputs (smooth probability maps from upsampled random logits, images with flat regions
and noise, fixed seed):

* ``small``: 32 images of 128x128;
* ``voc``: 8 images of VOC size, 500x375.

Serial runs ``crf_inference`` image by image in this process; parallel submits the same images to
a warm ``crf_executor`` pool (worker start-up is timed separately and printed in the summary).
Each row is the median of ``--repeats`` runs; the two must give identical label maps.

    python benchmarks/crf.py                    # all cores, 3 repeats
    python benchmarks/crf.py --workers 4 --repeats 1 --json outputs/crf_bench.json
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from slrnet.crf import crf_argmax, crf_executor, resolve_num_workers

NUM_LABELS = 21


def make_inputs(n: int, height: int, width: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """n (uint8 image (H, W, 3), float32 probabilities (21, H, W)) pairs."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    images, probs = [], []
    for _ in range(n):
        coarse = torch.randn(1, NUM_LABELS, max(2, height // 32), max(2, width // 32), generator=g) * 3
        p = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=True).softmax(1)[0]
        colours = torch.randint(0, 256, (1, 3, 4, 4), generator=g).float()
        img = F.interpolate(colours, size=(height, width), mode="nearest")[0].permute(1, 2, 0)
        img = (img + torch.randn(img.shape, generator=g) * 8).clamp(0, 255).to(torch.uint8)
        images.append(np.ascontiguousarray(img.numpy()))
        probs.append(p.numpy().astype(np.float32))
    return images, probs


def run_serial(images, probs) -> tuple[float, list[np.ndarray]]:
    start = time.perf_counter()
    out = [crf_argmax(im, p) for im, p in zip(images, probs)]
    return time.perf_counter() - start, out


def run_parallel(pool, images, probs) -> tuple[float, list[np.ndarray]]:
    start = time.perf_counter()
    futures = [pool.submit(crf_argmax, im, p) for im, p in zip(images, probs)]
    out = [f.result() for f in futures]
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=0, help="pool size (0 = os.cpu_count())")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median)")
    parser.add_argument("--small", type=int, default=32, help="number of 128x128 images")
    parser.add_argument("--voc", type=int, default=8, help="number of 500x375 images")
    parser.add_argument("--json", default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)

    workers = resolve_num_workers(args.workers)
    workloads = [("small 128x128", args.small, 128, 128), ("voc 500x375", args.voc, 375, 500)]
    rows = []
    start = time.perf_counter()
    with crf_executor(workers) as pool:
        images, probs = make_inputs(1, 16, 16, 0)
        warm = [pool.submit(crf_argmax, images[0], probs[0]) for _ in range(workers)]  # start every worker
        [f.result() for f in warm]
        startup = time.perf_counter() - start
        for label, n, h, w in workloads:
            if n <= 0:
                continue
            images, probs = make_inputs(n, h, w, seed=n * h)
            serial, parallel = [], []
            for _ in range(args.repeats):
                t_s, out_s = run_serial(images, probs)
                t_p, out_p = run_parallel(pool, images, probs)
                if not all(np.array_equal(a, b) for a, b in zip(out_s, out_p)):
                    raise RuntimeError(f"{label}: serial and parallel CRF outputs differ")
                serial.append(t_s)
                parallel.append(t_p)
            t_s, t_p = statistics.median(serial), statistics.median(parallel)
            rows.append({"workload": label, "images": n, "serial_img_per_s": n / t_s,
                         "parallel_img_per_s": n / t_p, "speedup": t_s / t_p, "serial_s": t_s, "parallel_s": t_p})

    print(f"dense CRF, {NUM_LABELS} labels, 10 iterations; {workers} workers on {os.cpu_count()} cores "
          f"(median of {args.repeats})")
    header = f"{'workload':<15} {'images':>6} {'serial img/s':>13} {'parallel img/s':>15} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['workload']:<15} {r['images']:>6d} {r['serial_img_per_s']:>13.2f} "
              f"{r['parallel_img_per_s']:>15.2f} {r['speedup']:>8.2f}x")
    if rows:
        best = max(rows, key=lambda r: r["speedup"])
        print(f"summary: {workers} worker processes give {min(r['speedup'] for r in rows):.2f}x-"
              f"{best['speedup']:.2f}x the single-process throughput (ideal {workers}x); "
              f"starting the pool took {startup:.2f}s once")
    if args.json:
        from slrnet.utils import write_json

        write_json(args.json, {"workers": workers, "cpu_count": os.cpu_count(), "repeats": args.repeats,
                               "pool_startup_s": startup, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
