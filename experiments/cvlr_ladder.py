"""The CVLR ablation ladder on the embedded datasets (``slrnet.analysis.cvlr_ladder``): what earns SLRNet its gain.

Trains every (dataset, setting, seed) asked for with the quick schedule, evaluates each with one protocol fixed
before the runs (single-scale val mIoU after the last epoch, the config's class filter; unfiltered beside it), the
trained SLRNet runs also with their reconstruction replaced at test time, and writes every row, the per-rung summary
and the commands that made them. Rows already in the results file for other (dataset, setting, seed) keys are kept
with their command, so the study can be run in parts:

    python experiments/cvlr_ladder.py --datasets shapes --seeds 0 --workers 2
    python experiments/cvlr_ladder.py --datasets photos --seeds 0 --workers 2
    python experiments/cvlr_ladder.py --datasets shapes --seeds 1 --settings code_consistency full_cvlr --workers 2
    python experiments/cvlr_ladder.py --datasets shapes --settings full_cvlr_tau_0.1 full_cvlr_no_code --workers 2

On 2 CPU cores two quick runs side by side take about 16 minutes.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from slrnet.analysis import cvlr_ladder as ladder
from slrnet.profiles import EMBEDDED_DATASETS
from slrnet.utils import repo_root, write_json


def default_output(profile: str) -> Path:
    return repo_root() / "experiments" / "results" / f"cvlr_ladder_{profile}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(EMBEDDED_DATASETS), choices=EMBEDDED_DATASETS)
    parser.add_argument("--settings", nargs="+", default=list(ladder.RUNGS), choices=ladder.SETTINGS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once (CPU: e.g. 2 on 2 cores)")
    parser.add_argument("--output", type=Path, default=None, help="results file (default experiments/results/...)")
    parser.add_argument("--refresh-factors", action="store_true",
                        help="train nothing: measure every CVLR row's factors again from its saved checkpoint")
    parser.add_argument("--runs", type=Path, default=None,
                        help="where the run folders (checkpoints) go (default outputs/cvlr_ladder_<profile>)")
    args = parser.parse_args(argv)
    output = args.output or default_output(args.profile)
    if args.refresh_factors:
        results = json.loads(output.read_text())
        results["rows"] = ladder.refresh_factors(results["rows"])
        write_json(output, results)
        print(f"factors of {sum('factors' in r for r in results['rows'])} rows measured again -> {output}")
        return 0
    runs = args.runs or repo_root() / "outputs" / f"cvlr_ladder_{args.profile}"
    script = Path(__file__).resolve().relative_to(repo_root())
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(shlex.quote(str(a)) for a in ["python", script, *given])
    now = {(d, s, seed) for d in args.datasets for s in args.settings for seed in args.seeds}
    kept = []
    if output.is_file():
        old = json.loads(output.read_text())
        if old.get("profile") == args.profile:
            kept = [r for r in old.get("rows", []) if (r["dataset"], r["setting"], r["seed"]) not in now]
    results = {"profile": args.profile, "protocol": "val mIoU, single scale, after the last epoch, with the "
               "config's test-time class filter (val_miou); val_miou_unfiltered: argmax over every class",
               "rows": kept, "summary": ladder.ladder_summary(kept), "paper_voc_cvlr_gain": ladder.PAPER_VOC_CVLR_GAIN}
    start = time.time()

    def save(rows, row):
        row["command"] = command
        results["rows"] = kept + rows
        results["summary"] = ladder.ladder_summary(results["rows"])
        write_json(output, results)                  # after every run: an interrupted study keeps its rows
        print(f"{row['dataset']:>7} {row['setting']:>18} seed {row['seed']}: val mIoU {row['val_miou']:.3f} "
              f"({row['train_seconds']:.0f} s, {time.time() - start:.0f} s in all) -> {output}", flush=True)

    ladder.run_ladder(args.datasets, args.settings, args.seeds, profile=args.profile, output_dir=runs,
                      device=args.device, workers=args.workers, on_row=save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
