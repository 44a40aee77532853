"""Weak vs. full supervision on both embedded datasets: six runs, one budget (``slrnet.analysis.supervision_gap``).

For each dataset (shapes, photos) it trains weakly supervised SLRNet, its no-CVLR ablation and the fully
supervised model with the same backbone, pretrained weights and schedule, and writes every run's row, the
per-dataset summary and the command that made it. Notebook 02 shows the file when it exists.

    python experiments/supervision_gap.py --profile quick --workers 2
    python experiments/supervision_gap.py --datasets photos --settings weak full --output /tmp/gap.json
    python experiments/supervision_gap.py --datasets shapes --workers 2     # redo one dataset's rows

Rows of datasets not run now are kept from an existing results file of the same profile and seed, with the
command that made them (``commands``: dataset -> command); the datasets run now replace theirs. ``seconds`` is
the wall time of the last command, ``train_seconds`` of each row its own training time.

On 2 CPU cores each quick run takes about as long as notebook 02's training.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from slrnet.analysis import supervision_gap as gap
from slrnet.profiles import EMBEDDED_DATASETS
from slrnet.utils import repo_root, write_json


def default_output(profile: str) -> Path:
    return repo_root() / "experiments" / "results" / f"supervision_gap_{profile}.json"


def pretrained_weights(datasets) -> dict:
    """{dataset: {"path", "sha256"}} of the starting weights every run of a dataset shares (its quick config's)."""
    from slrnet.config import load_config
    from slrnet.data.build import resolve_data_root
    from slrnet.pretrain import read_record
    from slrnet.profiles import dataset_config

    weights = {}
    for name in datasets:
        path = load_config(dataset_config(name, "quick"))["model"]["pretrained"]
        weights[name] = {"path": path, "sha256": (read_record(resolve_data_root(path)) or {}).get("sha256")}
    return weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(EMBEDDED_DATASETS), choices=EMBEDDED_DATASETS)
    parser.add_argument("--settings", nargs="+", default=list(gap.SETTINGS), choices=gap.SETTINGS)
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once (CPU: e.g. 2 on 2 cores)")
    parser.add_argument("--output", type=Path, default=None, help="results file (default experiments/results/...)")
    args = parser.parse_args(argv)
    output = args.output or default_output(args.profile)
    script = Path(__file__).resolve().relative_to(repo_root())
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(shlex.quote(str(a)) for a in ["python", script, *given])
    kept_rows, commands, pretrained = [], {}, {}
    if output.is_file():    # another dataset's rows of the same study stay, with the command that made them
        old = json.loads(output.read_text())
        if old.get("profile") == args.profile and old.get("seed") == args.seed:
            kept_rows = [r for r in old.get("rows", []) if r["dataset"] not in args.datasets]
            kept = {r["dataset"] for r in kept_rows}
            commands = {d: (old.get("commands") or {}).get(d, old.get("command")) for d in kept}
            pretrained = {d: w for d, w in (old.get("pretrained") or {}).items() if d in kept}
    commands.update(dict.fromkeys(args.datasets, command))
    results = {"command": command, "commands": commands, "profile": args.profile, "seed": args.seed,
               "pretrained": {**pretrained, **pretrained_weights(args.datasets)}, "rows": [], "summary": [],
               "seconds": None}
    start = time.time()

    def save(rows, row):
        rows = kept_rows + rows
        results["rows"], results["summary"] = rows, gap.gap_summary(rows)
        results["seconds"] = round(time.time() - start, 1)          # this command's; each row has its own
        write_json(output, results)                   # after every run: an interrupted study keeps its rows
        print(f"{row['dataset']:>7} {row['setting']:>8}: val mIoU {row['val_miou']:.3f} "
              f"({row['train_seconds']:.0f} s) -> {output}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        gap.run_comparison(args.datasets, args.settings, profile=args.profile, output_dir=tmp, seed=args.seed,
                           device=args.device, workers=args.workers, on_row=save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
