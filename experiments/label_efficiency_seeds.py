"""Notebook 03's label-efficiency study at several seeds: how much of a margin is the draw?

Every seed draws other pixel-labelled images and starts training from another random state; each seed
trains the notebook's four settings at the profile's curve fractions (``analysis.label_efficiency.
seed_study_fractions``; the notebook trains one of them) with the notebook's equal budget
(``slrnet.analysis.label_efficiency.run_study``). The results file holds every run's row and the command
that made it; notebook 03 shows it when it exists.

    python experiments/label_efficiency_seeds.py --seeds 0 1 2 --profile quick
    python experiments/label_efficiency_seeds.py --seeds 0-9 --profile quick --output experiments/results/x.json

On 2 CPU cores one seed of the quick profile (ten runs of 480 steps) takes about 13 minutes.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from slrnet.analysis import label_efficiency as study
from slrnet.utils import repo_root, write_json


def default_output(profile: str) -> Path:
    return repo_root() / "experiments" / "results" / f"label_efficiency_seeds_{profile}.json"


def parse_seeds(items: list[str]) -> list[int]:
    seeds: list[int] = []
    for item in items:
        if "-" in item:
            lo, hi = (int(x) for x in item.split("-", 1))
            seeds += list(range(lo, hi + 1))
        else:
            seeds.append(int(item))
    if not seeds:
        raise SystemExit("error: --seeds: expected seeds like '0 1 2' or '0-9'")
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", default=["0-2"], help="seeds, e.g. 0 1 2 or 0-9")
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    parser.add_argument("--fractions", type=float, nargs="*", default=None, help="default: the profile's")
    parser.add_argument("--data_root", default=None, help="a VOC-layout folder instead of the shapes dataset")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", default="auto", help='"auto" or a number of runs trained at once')
    parser.add_argument("--output", type=Path, default=None, help="results file (default experiments/results/...)")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    fractions = args.fractions or study.seed_study_fractions(args.profile)
    workers = args.workers if args.workers == "auto" else int(args.workers)
    output = args.output or default_output(args.profile)
    script = Path(__file__).resolve().relative_to(repo_root())
    given = sys.argv[1:] if argv is None else argv
    results = {"command": " ".join(shlex.quote(str(a)) for a in ["python", script, *given]),
               "profile": args.profile, "fractions": fractions, "seeds": [], "rows": [], "seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            start = time.time()
            runs = study.run_study(fractions, profile=args.profile, output_dir=Path(tmp) / f"seed{seed}",
                                   data_root=args.data_root, device=args.device, seed=seed, workers=workers)
            results["seeds"].append(seed)
            results["rows"] += [{**row, "seed": seed} for row in study.study_rows(runs)]
            results["seconds"][str(seed)] = round(time.time() - start, 1)
            write_json(output, results)                # after every seed: an interrupted study keeps its seeds
            print(f"seed {seed}: {results['seconds'][str(seed)]:.0f} s -> {output}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
