"""Benchmark: images/s of multi-scale + flip inference on CPU, without and with the dense CRF, the CRF run
serially in this process vs. in worker processes overlapping the network (the library's parallel path).

Two workloads, random weights (speed does not depend on training), synthetic images with flat regions and
noise (fixed seed):

* ``shapes 128px``: the default dataset's size, 128x128, the tiny backbone and the test scales of
  ``configs/shapes_quick.yaml`` (1, 0.75, 1.25), 7 classes;
* ``VOC 500x375``: the WideResNet-38 model of ``configs/voc_wss_resnet38.yaml`` with its test scales
  (1, 1.5, 2, 0.5, 0.75), 21 classes. On CPU one image takes minutes, so few images are used (``--voc-images``).

Per workload, after one untimed warm-up image:

1. **no CRF**: ``slrnet.infer.Predictor.iter_dataset`` over the images (network, averaging, class filtering, argmax);
2. **CRF serial**: pass 1 plus ``crf_argmax`` of the same filtered maps, one after the other in this process,
   which is what one CRF worker (``num_workers=1``) does;
3. **CRF parallel**: ``iter_dataset`` with ``apply_crf=True, num_workers=W`` end to end: the network in this
   process, the CRF in W spawned workers that overlap with it; pool start-up included (and shown on its own).
   Its CRF masks must equal the serial ones. Skipped (n/a) for a single image, which leaves the pool nothing
   to overlap: its time would be pass 1 + pool start-up + one CRF, and at VOC size a second pass costs minutes.

A third table measures the test-time preparation of the VOC network (``slrnet.models.inference``) one step at a
time against the straightforward path (the model as trained, NCHW), with label maps and probabilities compared:
BatchNorm folded, channels-last, both (the library's default), and the flip pair as two passes of one view.

    python benchmarks/infer.py                  # 200 shapes images, 1 VOC image (about 2.5 min with one torch thread on 2 cores)
    python benchmarks/infer.py --images 2 --voc-images 0 --prep-repeats 1   # only the preparation table (~6 min)
    python benchmarks/infer.py --quick          # 32 shapes images, VOC at scale 1 only (+ flip): a fast check
    python benchmarks/infer.py --images 64 --voc-images 2 --workers 2 --json outputs/infer_bench.json
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

# torch is imported inside the functions: spawned CRF workers re-import this script as their main module,
# and should pay only for what the library's workers need (numpy, pydensecrf), as they do in a notebook.
REPO = Path(__file__).resolve().parent.parent


def make_images(n: int, height: int, width: int, seed: int) -> list[dict]:
    """n samples like a dataset's: ``image`` normalised float32 (3, H, W), ``name``, no mask."""
    import torch
    import torch.nn.functional as F

    from slrnet.data.transforms import MEAN, STD

    g = torch.Generator().manual_seed(seed)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    samples = []
    for i in range(n):
        colours = torch.rand(1, 3, 5, 5, generator=g)                                   # flat regions
        rgb = F.interpolate(colours, size=(height, width), mode="nearest")[0]           # (3, H, W) in [0, 1]
        rgb = (rgb + 0.03 * torch.randn(rgb.shape, generator=g)).clamp(0, 1)
        samples.append({"image": (rgb - mean) / std, "name": f"bench_{i:04d}", "mask": None, "has_mask": False})
    return samples


def build_random_model(config: str, seed: int):
    import torch

    from slrnet.config import load_config
    from slrnet.models import build_model

    cfg = load_config(REPO / "configs" / config)
    torch.manual_seed(seed)
    model = build_model({**cfg["model"], "pretrained": ""}).eval()    # random weights: no download
    return model, cfg["test"]


def filtered_maps(records: list[dict], bg_pow: float) -> list[np.ndarray]:
    """The class-filtered probabilities the predictor hands to the CRF, rebuilt from its records."""
    import torch

    from slrnet.infer import apply_class_filter

    out = []
    for rec in records:
        probs = torch.from_numpy(rec["probs"])                                           # (K, H, W)
        keep = None
        if rec["kept"] is not None:
            keep = torch.zeros(probs.shape[0] - 1, dtype=torch.bool)
            keep[[k - 1 for k in rec["kept"]]] = True
        out.append(apply_class_filter(probs, keep, bg_pow).float().numpy())
    return out


def pool_startup_seconds(workers: int) -> float:
    """Time to start ``workers`` spawned CRF processes and run one tiny job on each."""
    from slrnet.crf import crf_argmax, crf_executor

    img, probs = np.zeros((8, 8, 3), np.uint8), np.full((2, 8, 8), 0.5, np.float32)
    start = time.perf_counter()
    with crf_executor(workers) as pool:
        [f.result() for f in [pool.submit(crf_argmax, img, probs) for _ in range(workers)]]
        return time.perf_counter() - start


def bench_workload(label: str, config: str, n: int, height: int, width: int, workers: int, seed: int,
                   scales=None) -> dict:
    from slrnet.crf import crf_argmax
    from slrnet.data.transforms import denormalize
    from slrnet.infer import Predictor, TestConfig, predict_multiscale

    model, test = build_random_model(config, seed)
    scales = list(test["scales"]) if scales is None else list(scales)
    plain = TestConfig.from_config(test, scales=scales, flip=True, use_cls_label=False, apply_crf=False)
    predictor = Predictor(model, plain, device="cpu")
    with_crf = Predictor(predictor.model, plain.replace(apply_crf=True), device="cpu")
    samples = make_images(n, height, width, seed)
    # warm-up (one-time allocations and kernel selection), untimed; one small view keeps it cheap
    predict_multiscale(model, make_images(1, min(height, 96), min(width, 96), seed + 1)[0]["image"], [1.0],
                       flip=False)

    start = time.perf_counter()                                                  # 1. no CRF
    records = list(predictor.iter_dataset(samples, keep_probs=True))
    t_net = time.perf_counter() - start

    maps = filtered_maps(records, test["bg_pow"])                                # 2. CRF serial, same maps
    start = time.perf_counter()
    serial = [crf_argmax(denormalize(s["image"]), p) for s, p in zip(samples, maps)]
    t_crf = time.perf_counter() - start

    t_par = None                            # 3. the parallel path; one image leaves nothing to overlap
    if n > 1:
        start = time.perf_counter()
        parallel = [r["pred_crf"] for r in with_crf.iter_dataset(samples, num_workers=workers)]
        t_par = time.perf_counter() - start
        if not all(np.array_equal(a, b) for a, b in zip(serial, parallel)):
            raise RuntimeError(f"{label}: CRF masks of the serial and the parallel path differ")
    t_ser = t_net + t_crf
    return {"workload": label, "backbone": config, "images": n, "size": f"{width}x{height}",
            "scales": scales, "views": 2 * len(scales), "num_classes": int(model.num_classes),
            "network_s_per_image": t_net / n, "crf_s_per_image": t_crf / n,
            "no_crf_img_per_s": n / t_net, "crf_serial_img_per_s": n / t_ser,
            "crf_parallel_img_per_s": n / t_par if n > 1 else None,            # None: not measured
            "parallel_speedup": t_ser / t_par if n > 1 else None, "crf_share_serial": t_crf / t_ser,
            "no_crf_s": t_net, "crf_serial_s": t_ser, "crf_parallel_s": t_par if n > 1 else None}


PREP_VARIANTS = (   # (label, Predictor optimize, prepare_for_inference kwargs, flip pair as one batch)
    ("straightforward (reference)", False, None, True),
    ("BatchNorm folded", True, {"memory_format": None}, True),
    ("channels-last", True, {"fold_bn": False}, True),
    ("folded + channels-last (default)", True, {}, True),
    ("default, flip views one at a time", True, {}, False),
)


def bench_preparation(n: int, height: int, width: int, scales, repeats: int, seed: int) -> list[dict]:
    """The network part of MS + flip inference (no CRF) of the VOC WideResNet-38 model, once per variant of
    :data:`PREP_VARIANTS`, variants interleaved ``repeats`` times (best time kept: the machine's noise is one-sided);
    label maps and probabilities compared with the reference's."""
    import torch

    import slrnet.infer as infer
    from slrnet.models.inference import prepare_for_inference

    model, test = build_random_model("voc_wss_resnet38.yaml", seed)
    samples = make_images(n, height, width, seed)
    prepared = {}
    for label, optimize, kwargs, _ in PREP_VARIANTS:
        if optimize:
            start = time.perf_counter()
            prepared[label] = prepare_for_inference(model, **kwargs)
            prepared[label + " prep_s"] = time.perf_counter() - start
    msflip = infer.TestConfig.from_config(test, scales=list(scales), flip=True, use_cls_label=False, apply_crf=False)

    def records_of(net):
        return list(infer.Predictor(net, msflip, device="cpu", optimize=False).iter_dataset(samples, keep_probs=True))

    def run(label, optimize, one_batch):
        net = prepared[label] if optimize else model
        if one_batch:
            return records_of(net)
        original = net.predict             # the flip pair as two forward passes of one view each

        def one_at_a_time(x):
            outs = [original(x[i:i + 1]) for i in range(x.shape[0])]
            return {k: None if outs[0][k] is None else torch.cat([o[k] for o in outs]) for k in outs[0]}
        net.predict = one_at_a_time
        try:
            return records_of(net)
        finally:
            del net.predict

    best: dict[str, float] = {}
    records: dict[str, list] = {}
    for _ in range(max(1, repeats)):
        for label, optimize, _, one_batch in PREP_VARIANTS:
            start = time.perf_counter()
            records[label] = run(label, optimize, one_batch)
            best[label] = min(best.get(label, float("inf")), time.perf_counter() - start)
    reference = PREP_VARIANTS[0][0]
    rows = []
    for label, optimize, _, _ in PREP_VARIANTS:
        same = all(np.array_equal(a["pred"], b["pred"]) for a, b in zip(records[label], records[reference]))
        diff = max(float(np.abs(a["probs"] - b["probs"]).max()) for a, b in zip(records[label], records[reference]))
        rows.append({"variant": label, "s_per_image": best[label] / n, "speedup": best[reference] / best[label],
                     "label_maps_equal": same, "max_prob_diff": diff,
                     "prepare_s": prepared.get(label + " prep_s", 0.0)})
    return rows


def print_preparation_table(rows: list[dict], n: int, height: int, width: int, scales, repeats: int) -> None:
    print(f"\ntest-time preparation of the VOC WideResNet-38 network: {n} image(s) {width}x{height}, scales "
          f"{', '.join(f'{s:g}' for s in scales)} x flip, no CRF; best of {repeats} interleaved run(s)")
    header = f"{'variant':<36} {'s/image':>8} {'speedup':>8} {'label maps':>10} {'max |dp|':>9} {'prepare s':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['variant']:<36} {r['s_per_image']:>8.2f} {r['speedup']:>7.2f}x "
              f"{'equal' if r['label_maps_equal'] else 'DIFFER':>10} {r['max_prob_diff']:>9.1e} {r['prepare_s']:>9.2f}")


def print_table(rows: list[dict], workers: int, startup: float, threads: int, quick: bool, load: float) -> None:
    print(f"multi-scale + flip inference on CPU, random weights; torch threads {threads}; CRF: 10 mean-field "
          f"iterations, parallel = {workers} spawned worker processes on {os.cpu_count()} cores "
          f"(1-min load average before the run: {load:.2f})")
    header = (f"{'workload':<14} {'imgs':>4} {'views':>5} {'net s/img':>9} {'CRF s/img':>9} {'no CRF img/s':>12} "
              f"{'CRF serial img/s':>16} {'CRF parallel img/s':>18} {'par/ser':>7} {'CRF share':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        measured = r["crf_parallel_s"] is not None
        parallel = f"{r['crf_parallel_img_per_s']:>18.3f}" if measured else f"{'n/a (1 image)':>18}"
        speedup = f"{r['parallel_speedup']:>6.2f}x" if measured else f"{'n/a':>7}"
        print(f"{r['workload']:<14} {r['images']:>4d} {r['views']:>5d} {r['network_s_per_image']:>9.3f} "
              f"{r['crf_s_per_image']:>9.3f} {r['no_crf_img_per_s']:>12.3f} {r['crf_serial_img_per_s']:>16.3f} "
              f"{parallel} {speedup} {r['crf_share_serial']:>8.1%}")
    print("-" * len(header))
    for r in rows:
        note = f"{r['workload']}: {r['backbone']}, scales {', '.join(f'{s:g}' for s in r['scales'])} x flip"
        if r["workload"].startswith("VOC"):
            note += f"; only {r['images']} image(s): one takes {r['network_s_per_image']:.0f} s on this CPU"
            if r["images"] == 1:
                note += " (the parallel path needs >= 2 to overlap anything: --voc-images 2)"
        if quick and r["workload"].startswith("VOC"):
            note += "; --quick: scale 1 only, not the paper's 5 scales"
        print("  " + note)
    print(f"  CRF parallel includes starting the pool ({startup:.2f} s measured on its own); "
          f"CRF serial = the no-CRF pass + the CRF of the same maps in this process")
    small = rows[0]
    line = f"summary: on {small['size']} images the CRF is {small['crf_share_serial']:.0%} of serial inference time"
    if small["crf_parallel_s"] is not None:
        line += f" and {workers} CRF workers give {small['parallel_speedup']:.2f}x the serial throughput"
    voc = [r for r in rows if r["workload"].startswith("VOC")]
    if voc:
        line += (f"; at VOC size the WideResNet-38 network dominates ({voc[0]['network_s_per_image']:.0f} s/image, "
                 f"CRF {voc[0]['crf_share_serial']:.1%} of the time)")
        if voc[0]["crf_parallel_s"] is not None:
            line += f", parallel/serial {voc[0]['parallel_speedup']:.2f}x"
    print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=None, help="128x128 images (default 200; --quick: 32)")
    parser.add_argument("--voc-images", type=int, default=1, help="500x375 images, 0 = skip (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="fast check: 32 small images; the VOC workload at scale 1 (+ flip) only")
    parser.add_argument("--workers", type=int, default=0, help="CRF processes for the parallel path (0 = all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prep-images", type=int, default=1,
                        help="images for the test-time preparation table, 0 = skip (default 1)")
    parser.add_argument("--prep-size", default="240x320", help="HxW of those images (default 240x320)")
    parser.add_argument("--prep-repeats", type=int, default=2, help="interleaved runs per variant (default 2)")
    parser.add_argument("--json", default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("SLRNET_NO_PROGRESS", "1")

    from slrnet.crf import resolve_num_workers

    workers = resolve_num_workers(args.workers)
    images = args.images if args.images is not None else (32 if args.quick else 200)
    if images < 1 or args.voc_images < 0:
        parser.error("--images must be >= 1 and --voc-images >= 0")
    load = os.getloadavg()[0]      # other work on the machine: the pool only helps with idle cores
    startup = pool_startup_seconds(workers)
    rows = [bench_workload("shapes 128px", "shapes_quick.yaml", images, 128, 128, workers, args.seed)]
    if args.voc_images:
        rows.append(bench_workload("VOC 500x375", "voc_wss_resnet38.yaml", args.voc_images, 375, 500, workers,
                                   args.seed, scales=[1.0] if args.quick else None))
    import torch

    print_table(rows, workers, startup, torch.get_num_threads(), args.quick, load)
    prep_rows = []
    if args.prep_images:
        height, width = (int(v) for v in args.prep_size.lower().split("x"))
        from slrnet.config import load_config

        scales = [1.0] if args.quick else load_config(REPO / "configs" / "voc_wss_resnet38.yaml")["test"]["scales"]
        prep_rows = bench_preparation(args.prep_images, height, width, scales, args.prep_repeats, args.seed)
        print_preparation_table(prep_rows, args.prep_images, height, width, scales, args.prep_repeats)
    if args.json:
        from slrnet.utils import write_json

        write_json(args.json, {"workers": workers, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                               "load_average": load, "pool_startup_s": startup, "quick": args.quick, "rows": rows,
                               "preparation": prep_rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
