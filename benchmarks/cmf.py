"""Benchmark: the CVLR layer (FactorizationReconstruction) against a literal einsum reference.

Forward + backward at SLRNet's training shape (B=8, C=256, K=21, N=81*81+40*40, float32), both
implementations on the same inputs and weights in the same run. Prints a table (median ms over
repeats, peak memory, max |diff| of outputs and gradients) and one summary line.

    python benchmarks/cmf.py                    # training shape, --device auto
    python benchmarks/cmf.py --quick            # B=2, fewer repeats
    python benchmarks/cmf.py --device cpu --batch 4 --repeats 5 --num-iters 3

Memory: on CUDA, ``torch.cuda.max_memory_allocated`` during one forward+backward minus what was
allocated before it (inputs, weights, probes). On CPU there is no allocator high-water mark, so each
implementation runs once in a fresh spawned process and we report the growth of the process's peak
resident set size (VmHWM, reset once the inputs are built) over the RSS at that point: activations,
gradients and allocator slack together. "saved MB" is exact on every device: the bytes of distinct
tensors autograd keeps for backward (saved_tensors_hooks), inputs and weights excluded.
On a CPU shared with other jobs, ``--threads 1`` gives steadier timings.

The reference forms f1(x) (B, N, C) explicitly; the library folds f1 into the CVLR step
(``slrnet.cmf.cvlr_step``), so the N·C·C matmul of f1 and its backward disappear.
"""
from __future__ import annotations

import argparse
import ctypes
import multiprocessing as mp
import statistics
import time

import torch

from slrnet.models.mods.cvlr import FactorizationReconstruction
from slrnet.utils import resolve_device


def reference_cvlr(x, inits, w1, b1, w2, b2, num_iters=1, scale=1.0, eps=1e-6):
    """The layer written literally from the method text, with einsum (no algebraic shortcuts)."""
    feats = torch.einsum("bnc,dc->bnd", x, w1) + b1                     # X = f1(x)   (B, N, C)
    atoms = torch.einsum("bkc,dc->bkd", inits, w1) + b1                 # f1(D0)      (B, K, C)
    atoms = atoms / (eps + atoms.norm(dim=-1, keepdim=True))
    for _ in range(num_iters):
        coding = torch.softmax(scale * torch.einsum("bkc,bnc->bkn", atoms, feats), dim=1)   # (B, K, N)
        weights = (coding + eps) / (coding + eps).sum(dim=2, keepdim=True)
        atoms = torch.einsum("bkn,bnc->bkc", weights, feats)
        atoms = atoms / (eps + atoms.norm(dim=-1, keepdim=True))
    recon = torch.relu(torch.einsum("bkn,bkc->bnc", coding, atoms))    # (B, N, C)
    return torch.relu(x + torch.einsum("bnc,dc->bnd", recon, w2) + b2), coding, atoms


def make_case(batch, channels, atoms, pixels, num_iters, device, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    layer = FactorizationReconstruction(channels, num_iters=num_iters)
    with torch.no_grad():   # weights from a seeded generator so every process builds the same case
        for lin in (layer.transform1, layer.transform2):
            lin.weight.copy_(torch.randn(channels, channels, generator=gen) / channels ** 0.5)
            lin.bias.copy_(0.1 * torch.randn(channels, generator=gen))
    layer = layer.to(device=device, dtype=dtype)
    x = (torch.randn(batch, pixels, channels, generator=gen).abs() + 0.01).to(device, dtype)  # post-ReLU features
    inits = torch.randn(batch, atoms, channels, generator=gen).to(device, dtype)
    probes = [torch.randn(batch, pixels, channels, generator=gen).to(device, dtype),   # d loss / d x_out
              torch.randn(batch, atoms, pixels, generator=gen).to(device, dtype),      # d loss / d coding
              torch.randn(batch, atoms, channels, generator=gen).to(device, dtype)]    # d loss / d dictionary
    return layer, x.requires_grad_(), inits, probes


def run_once(impl, layer, x, inits, probes):
    """Forward + backward; returns outputs and the gradients of x and the four weight tensors."""
    params = [layer.transform1.weight, layer.transform1.bias, layer.transform2.weight, layer.transform2.bias]
    if impl == "library":
        outs = layer(x, inits)
    else:
        outs = reference_cvlr(x, inits, *params, num_iters=layer.num_iters, scale=layer.scale)
    grads = torch.autograd.grad(outs, [x] + params, probes)
    return [o.detach() for o in outs], grads


def saved_bytes(impl, layer, x, inits):
    """Bytes of distinct tensors autograd saves for backward during the forward pass."""
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if impl == "library":
            layer(x, inits)
        else:
            reference_cvlr(x, inits, layer.transform1.weight, layer.transform1.bias, layer.transform2.weight,
                           layer.transform2.bias, num_iters=layer.num_iters, scale=layer.scale)
    param_ptrs = {p.untyped_storage().data_ptr() for p in layer.parameters()} | {x.untyped_storage().data_ptr()}
    return sum(n for (ptr, _), n in seen.items() if ptr not in param_ptrs)   # inputs/weights exist anyway


def _proc_status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def cpu_peak_worker(impl, case_args, queue):
    """In a fresh process: growth of the peak RSS (bytes) over one forward+backward.

    Freed heap is handed back to the OS (malloc_trim) and the kernel's high-water mark VmHWM is reset
    to the current RSS (``/proc/self/clear_refs`` = 5, Linux >= 4.0), so the input-building peak does
    not hide the peak of the run. Returns NaN where that is not possible (non-Linux).
    """
    torch.set_num_threads(case_args.pop("threads"))
    case = make_case(**case_args)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _proc_status_kib("VmRSS")
    except OSError:
        queue.put(float("nan"))
        return
    run_once(impl, *case)
    queue.put((_proc_status_kib("VmHWM") - base) * 1024)


def peak_memory(impl, case, case_args, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run_once(impl, *case)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(device) - base
    if device.type != "cpu":
        return float("nan")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=cpu_peak_worker, args=(impl, dict(case_args, threads=torch.get_num_threads()), queue))
    proc.start()
    proc.join()
    return queue.get() if proc.exitcode == 0 else float("nan")


def time_ms(case, device, repeats, warmup=1):
    """Median wall time (ms) per implementation; the two alternate so that load on a shared machine
    affects both alike."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = {"reference": [], "library": []}
    for i in range(warmup + repeats):
        for impl in times:
            sync()
            t0 = time.perf_counter()
            run_once(impl, *case)
            sync()
            if i >= warmup:
                times[impl].append(1000 * (time.perf_counter() - t0))
    return {impl: statistics.median(t) for impl, t in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true", help="B=2 and 3 repeats (default B=8, 10 repeats)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--atoms", type=int, default=21)
    p.add_argument("--pixels", type=int, default=81 * 81 + 40 * 40)
    p.add_argument("--num-iters", type=int, default=1)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    batch = args.batch or (2 if args.quick else 8)
    repeats = args.repeats or (3 if args.quick else 10)
    case_args = dict(batch=batch, channels=args.channels, atoms=args.atoms, pixels=args.pixels,
                     num_iters=args.num_iters, device=str(device))
    case = make_case(**case_args)
    print(f"CVLR forward+backward, B={batch} N={args.pixels} C={args.channels} K={args.atoms} "
          f"T={args.num_iters} float32 on {device} ({torch.get_num_threads()} threads), median of {repeats}")

    (out_lib, g_lib), (out_ref, g_ref) = run_once("library", *case), run_once("reference", *case)
    diff_out = max((a - b).abs().max().item() for a, b in zip(out_lib, out_ref))
    diff_grad = max((a - b).abs().max().item() for a, b in zip(g_lib, g_ref))
    # gradients of the weights sum over B*N pixels, so also compare relative to each tensor's scale
    rel = max(((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()
              for a, b in zip(out_lib + list(g_lib), out_ref + list(g_ref)))
    rows, medians = {}, time_ms(case, device, repeats)
    for impl, ms in medians.items():
        peak = float("nan") if args.no_memory else peak_memory(impl, case, case_args, device) / 2 ** 20
        rows[impl] = (ms, peak, saved_bytes(impl, *case[:3]) / 2 ** 20)
    mem_name = "peak MB (cuda alloc)" if device.type == "cuda" else "peak MB (RSS growth)"
    print(f"| impl | median ms | {mem_name} | saved MB | max abs diff out / grad |")
    print("|---|---|---|---|---|")
    for impl, (ms, peak, saved) in rows.items():
        diffs = "0 (baseline)" if impl == "reference" else f"{diff_out:.1e} / {diff_grad:.1e}"
        print(f"| {impl} | {ms:.1f} | {peak:.0f} | {saved:.0f} | {diffs} |")
    speedup = rows["reference"][0] / rows["library"][0]
    print(f"cvlr: {speedup:.2f}x faster than einsum reference, max |diff| {max(diff_out, diff_grad):.1e} "
          f"(outputs {diff_out:.1e}, grads {diff_grad:.1e}; max relative {rel:.1e})")


if __name__ == "__main__":
    main()
