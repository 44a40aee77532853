"""Command line: ``python -m slrnet train | infer | eval | export | suite | convert | pretrain`` (also the ``slrnet`` script).

    python -m slrnet --help
    python -m slrnet train --config configs/shapes_quick.yaml --run demo
    python -m slrnet infer --help                 # the flags of slrnet.infer
    python -m slrnet suite --only 02 --profile full
    python -m slrnet --debug eval ...             # full traceback instead of a one-line error

Each subcommand lives in a library module exposing ``add_cli_arguments(parser)`` and
``cli_run(args) -> int`` (``module:NAME`` names an object with the two; ``train`` is here, below). Modules are imported lazily and only for the subcommand used: the first
positional word of argv is read before argparse runs, so the top-level ``--help`` never imports
torch or a model, and still works when one of those modules is broken.

Errors the user can fix (``ValueError``, ``KeyError``, ``OSError`` and ``slrnet.errors.UserError`` from the
library: a bad path or value, a mistyped config key, an unreadable checkpoint, a full disk, a diverged run)
print ``error: ...`` on one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from slrnet.errors import UserError

# subcommand -> (module, one-line help); the module is imported only when its subcommand runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("slrnet.cli:TRAIN", "train SLRNet from a YAML config (single device or torchrun/DDP)"),
    "infer": ("slrnet.infer", "multi-scale + flip inference, palette PNG masks"),
    "predict": ("slrnet.predict", "one image, one command: mask, overlay and the classes found for image files"),
    "eval": ("slrnet.evaluate", "mIoU of a folder of predicted masks (PNGs) against a VOC-layout root"),
    "export": ("slrnet.export", "export pseudo labels for two-stage training"),
    "suite": ("slrnet.suite", "run the notebook suite with papermill (profiles smoke/quick/full)"),
    "book": ("slrnet.book", "render the executed notebooks of make run as a static HTML site (outputs/book/)"),
    "convert": ("slrnet.convert", "convert downloads (SBD, COCO, L2ID) into the VOC layout the configs read"),
    "pretrain": ("slrnet.pretrain", "classification pretraining of the tiny backbone (the stand-in for ImageNet)"),
}
USER_ERRORS = (ValueError, KeyError, OSError, UserError)
EXIT_USER_ERROR = 2


def _prog() -> str:
    return "python -m slrnet" if os.path.basename(sys.argv[0]) == "__main__.py" else "slrnet"


def _requested_command(argv: list[str]) -> str | None:
    """The first positional word: top-level options (--debug, -h, --version) take no value."""
    for token in argv:
        if token == "--":
            return None
        if not token.startswith("-"):
            return token
    return None


def _one_line(err: BaseException) -> str:
    # KeyError's str() is the repr of its key; show the message itself.
    text = str(err.args[0]) if isinstance(err, KeyError) and len(err.args) == 1 else str(err)
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(err).__name__


def build_parser(command: str | None = None) -> tuple[argparse.ArgumentParser, object | None]:
    """Top-level parser; only ``command``'s subparser is filled in (its module imported)."""
    from slrnet import __version__

    parser = argparse.ArgumentParser(
        prog=_prog(), description="SLRNet teaching and analysis suite (Pan et al., IJCV 2022).",
        epilog="Run '%(prog)s COMMAND --help' for a command's options.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("--version", action="version", version=f"slrnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    module = None
    for name, (module_name, summary) in COMMANDS.items():
        sp = sub.add_parser(name, help=summary, description=summary, conflict_handler="resolve")
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
        if name == command:
            module_name, _, attribute = module_name.partition(":")
            module = importlib.import_module(module_name)  # may raise: the caller reports it
            if attribute:
                module = getattr(module, attribute)
            module.add_cli_arguments(sp)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _requested_command(argv)
    debug = "--debug" in argv
    if command not in COMMANDS:
        command = None  # argparse prints the help / "invalid choice" message itself
    try:
        parser, module = build_parser(command)
    except Exception as err:  # noqa: BLE001 -- a broken command module must not hide the others
        if debug:
            raise
        print(f"error: the '{command}' command is unavailable: importing {COMMANDS[command][0]} failed "
              f"({type(err).__name__}: {_one_line(err)})", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)  # exits with status 2 on bad flags, 0 on --help
    try:
        return int(module.cli_run(args) or 0)
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"error: {_one_line(err)}  (rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# ---------------------------------------------------------------------- python -m slrnet train
def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="experiment YAML (sections misc/train/dataset/model/test)")
    # --run mirrors the original tool; under torchrun use --run_name (torchrun's own --run-path
    # makes a bare --run ambiguous to its argument parser).
    parser.add_argument("--run", "--run_name", dest="run", default="",
                        help="run name; outputs go to <misc.log_dir>/<config name>/<run>")
    parser.add_argument("--seed", type=int, default=None, help="overrides misc.seed")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (overrides misc.device)")
    parser.add_argument("--resume", action="store_true", help="resume from the run's last checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the results of a run already in the --run folder and start again")
    parser.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs="*", help="config overrides, e.g. train.num_epochs=2 model.use_cvlr=false")


def run_train(args: argparse.Namespace) -> int:
    """Train as the config says, with the per-epoch snapshots (misc.num_snapshots images) in <run>/snapshots/."""
    import time
    from pathlib import Path

    import torch.distributed as dist

    from slrnet.config import load_config, merge_overrides
    from slrnet.paths import relative_name
    from slrnet.train import Trainer
    from slrnet.viz.training import TrainingSnapshots

    cfg = load_config(args.config, args.opts)
    if args.seed is not None:
        cfg = merge_overrides(cfg, {"misc.seed": args.seed})
    if args.device is not None:
        cfg = merge_overrides(cfg, {"misc.device": args.device})
    if args.resume:
        cfg = merge_overrides(cfg, {"misc.resume": 1})
    run = relative_name(args.run or time.strftime("%Y%m%d-%H%M%S"), "--run")      # stays inside misc.log_dir
    run_dir = Path(cfg["misc"]["log_dir"]) / Path(args.config).stem / run
    trainer = Trainer.build(cfg, run_dir, overwrite=bool(args.overwrite),
                            callbacks=[TrainingSnapshots(cfg["misc"]["num_snapshots"])])
    history = trainer.fit()
    if trainer.is_main:
        best = max((h.get("val_miou", -1) for h in history), default=-1)
        print(f"run: {run_dir}\nbest val mIoU: {best:.4f}\ncheckpoints: {trainer.ckpt_dir}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


TRAIN = argparse.Namespace(add_cli_arguments=add_train_arguments, cli_run=run_train)
