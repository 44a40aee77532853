"""Benchmark: the memory-lean PAMR (slrnet.models.mods.pamr) against the straightforward formulation.

The reference below materialises every shifted copy as one tensor: (B, C, 9|D|, H, W) for the
local std, (B, 3, P, H, W) for the affinity and (B, K, P, H, W) of the mask in each of the T
iterations (P = 8|D| = 48). The lean version accumulates one neighbour at a time instead. Both run
in the same process on the same inputs (21 classes, T = 10, dilations 1,2,4,8,12,24):

* ``train B=1`` / ``train B=4``: the training shape, a 321 crop's image resized to its 81x81 mask;
* ``full B=1``: full resolution, a 321x321 image with the 81x81 mask upsampled to it.

    python benchmarks/pamr.py                 # median of 5 timed runs per case
    python benchmarks/pamr.py --quick         # median of 2 (fast check)
    python benchmarks/pamr.py --device cuda --json outputs/pamr_bench.json

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` above the inputs (exact, in-process).
On CPU, Python's tracemalloc cannot see torch's allocations, so each implementation and case runs
once in a fresh subprocess that resets the kernel's resident-set high-water mark
(``/proc/self/clear_refs``) after building its inputs and reports VmHWM - VmRSS: the peak resident
memory added by the call, page-granular and including allocator slack (one-time library
initialisation is done beforehand on a tiny input).
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from slrnet.models.mods.pamr import NEIGHBOUR_OFFSETS, PAMR, WINDOW_OFFSETS
from slrnet.utils import resolve_device

DILATIONS = (1, 2, 4, 8, 12, 24)
NUM_ITER = 10
CASES = {   # name: (batch, image side, mask side)
    "train B=1": (1, 81, 81),
    "train B=4": (4, 81, 81),
    "full B=1": (1, 321, 81),
}


# ----------------------------------------------------------------------------- the straightforward formulation
def shifted_copies(x: torch.Tensor, dilations, offsets) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, len(dilations) * len(offsets), H, W): every clamped shift, materialised."""
    H, W = x.shape[-2:]
    copies = []
    for d in dilations:
        padded = F.pad(x, (d, d, d, d), mode="replicate")
        copies += [padded[..., d + dy * d:d + dy * d + H, d + dx * d:d + dx * d + W] for dy, dx in offsets]
    return torch.stack(copies, dim=2)


def reference_affinity(image: torch.Tensor, dilations=DILATIONS) -> torch.Tensor:
    """Softmax over neighbours of mean_c -|I - I_p| / (1e-8 + 0.1 sigma), (B, 1, P, H, W)."""
    sigma = shifted_copies(image, dilations, WINDOW_OFFSETS).std(dim=2, keepdim=True)     # (B, C, 1, H, W)
    diff = (image[:, :, None] - shifted_copies(image, dilations, NEIGHBOUR_OFFSETS)).abs()   # (B, C, P, H, W)
    logits = (-diff / (1e-8 + 0.1 * sigma)).mean(dim=1, keepdim=True)                    # (B, 1, P, H, W)
    return F.softmax(logits, dim=2)


def reference_pamr(image: torch.Tensor, mask: torch.Tensor, num_iter: int = NUM_ITER,
                   dilations=DILATIONS) -> torch.Tensor:
    """PAMR with all P shifted copies of the mask materialised as (B, K, P, H, W) per iteration."""
    mask = F.interpolate(mask, size=image.shape[-2:], mode="bilinear", align_corners=True)
    alpha = reference_affinity(image, dilations)                                           # (B, 1, P, H, W)
    for _ in range(num_iter):
        mask = (shifted_copies(mask, dilations, NEIGHBOUR_OFFSETS) * alpha).sum(dim=2)    # (B, K, H, W)
    return mask


# ----------------------------------------------------------------------------- inputs and runners
def make_inputs(case: str, classes: int, device: torch.device, seed: int = 0):
    """Piecewise-flat colour image with noise, and a soft mask (softmax of smooth random logits)."""
    batch, side, mask_side = CASES[case]
    g = torch.Generator().manual_seed(seed)
    crop = 321
    regions = torch.rand(batch, 3, 7, 7, generator=g)
    image = F.interpolate(regions, size=(crop, crop), mode="nearest") + 0.05 * torch.randn(batch, 3, crop, crop,
                                                                                          generator=g)
    if side != crop:   # the training wrapper resizes the image to the mask's resolution
        image = F.interpolate(image, size=(side, side), mode="bilinear", align_corners=True)
    logits = F.interpolate(3 * torch.randn(batch, classes, 11, 11, generator=g), size=(mask_side, mask_side),
                           mode="bilinear", align_corners=True)
    return image.to(device), logits.softmax(dim=1).to(device)


def make_runner(impl: str, device: torch.device):
    if impl == "lean":
        pamr = PAMR(NUM_ITER, DILATIONS).to(device)
        return lambda image, mask: pamr(image, mask)
    return lambda image, mask: reference_pamr(image, mask)


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_case(case, classes, device, repeats):
    """Median seconds per call for both implementations (interleaved) and their max abs difference."""
    image, mask = make_inputs(case, classes, device)
    runners = {impl: make_runner(impl, device) for impl in ("lean", "reference")}
    times = {impl: [] for impl in runners}
    with torch.no_grad():
        outputs = {impl: run(image, mask) for impl, run in runners.items()}   # also the warm-up
        for _ in range(repeats):
            for impl, run in runners.items():
                sync(device)
                start = time.perf_counter()
                run(image, mask)
                sync(device)
                times[impl].append(time.perf_counter() - start)
    diff = (outputs["lean"] - outputs["reference"]).abs().max().item()
    return {impl: statistics.median(t) for impl, t in times.items()}, diff


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def peak_memory_here(impl, case, classes, device) -> int | None:
    """Peak bytes the call adds on top of its inputs, measured in this process (see module docstring)."""
    run = make_runner(impl, device)
    with torch.no_grad():
        run(*make_inputs("train B=1", 2, device))    # one-time library initialisation on a tiny input
        image, mask = make_inputs(case, classes, device)
        gc.collect()
        if device.type == "cuda":
            sync(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            run(image, mask)
            sync(device)
            return torch.cuda.max_memory_allocated(device) - base
        if device.type != "cpu":
            return None
        Path("/proc/self/clear_refs").write_text("5")    # reset VmHWM to the current RSS
        base = _proc_status_kib("VmRSS")
        run(image, mask)
        return (_proc_status_kib("VmHWM") - base) * 1024


def peak_memory(impl, case, classes, device) -> int | None:
    if device.type != "cpu":
        return peak_memory_here(impl, case, classes, device)
    if not Path("/proc/self/clear_refs").exists():
        return None   # no per-process high-water reset outside Linux: report n/a rather than a wrong number
    cmd = [sys.executable, __file__, "--child-memory", impl, case, "--classes", str(classes), "--device", "cpu"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"]


# ----------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 timed runs per case instead of 5")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per case (median reported)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--child-memory", nargs=2, metavar=("IMPL", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)

    if args.child_memory:
        impl, case = args.child_memory
        print(json.dumps({"peak_bytes": peak_memory_here(impl, case, args.classes, device)}))
        return 0

    repeats = args.repeats or (2 if args.quick else 5)
    print(f"PAMR benchmark on {device} (torch {torch.__version__}, {torch.get_num_threads()} threads): "
          f"K={args.classes}, T={NUM_ITER}, dilations {DILATIONS}, median of {repeats} runs")
    if device.type == "cuda":
        print("peak memory: torch.cuda.max_memory_allocated above the inputs")
    else:
        print("peak memory: resident-set high-water increase over the inputs, fresh subprocess per run")
    header = f"{'case':<11} {'impl':<10} {'median ms':>10} {'peak MiB':>9} {'max|diff|':>10}"
    print(header + "\n" + "-" * len(header))
    results = {}
    for case in CASES:
        times, diff = time_case(case, args.classes, device, repeats)
        mem = {impl: peak_memory(impl, case, args.classes, device) for impl in times}
        results[case] = {"median_s": times, "peak_bytes": mem, "max_abs_diff": diff}
        for impl in ("lean", "reference"):
            mib = "n/a" if mem[impl] is None else f"{mem[impl] / 2**20:.1f}"
            print(f"{case:<11} {impl:<10} {1e3 * times[impl]:>10.1f} {mib:>9} {diff:>10.1e}")

    def speedup(case):
        return results[case]["median_s"]["reference"] / results[case]["median_s"]["lean"]

    full_mem = results["full B=1"]["peak_bytes"]
    mem_ratio = None if None in full_mem.values() else full_mem["lean"] / full_mem["reference"]
    worst_diff = max(r["max_abs_diff"] for r in results.values())
    checks = {
        "outputs equal (max|diff| <= 1e-5)": worst_diff <= 1e-5,
        "full-res peak memory <= 1/4 of reference": mem_ratio is not None and mem_ratio <= 0.25,
        "full-res >= 2x faster": speedup("full B=1") >= 2,
        "never slower at the training shape": min(speedup("train B=1"), speedup("train B=4")) >= 1,
    }
    ratio_text = "n/a" if mem_ratio is None else f"{mem_ratio:.3f}"
    print(f"summary: speed-up train B=1 {speedup('train B=1'):.1f}x, train B=4 {speedup('train B=4'):.1f}x, "
          f"full {speedup('full B=1'):.1f}x; full-res peak memory ratio {ratio_text}; "
          f"max|diff| {worst_diff:.1e}; targets " + ", ".join(f"{k}: {'PASS' if ok else 'FAIL'}"
                                                               for k, ok in checks.items()))
    if args.json:
        from slrnet.utils import write_json
        write_json(args.json, {"device": str(device), "classes": args.classes, "repeats": repeats,
                               "results": results, "checks": checks})
    return 0


if __name__ == "__main__":
    sys.exit(main())
