"""Checkpoints: atomic saving, safe loading and strict state_dict matching with readable errors.

    >>> from slrnet.checkpoint import save_checkpoint, load_checkpoint, load_state_dict_strict
    >>> save_checkpoint("runs/x/last.pth", {"state_dict": model.state_dict(), "epoch": 3})
    >>> ckpt = load_checkpoint("runs/x/last.pth")              # weights_only=True: no code runs
    >>> report = load_state_dict_strict(model, ckpt["state_dict"])   # raises on any mismatch

Why each piece exists:

* ``save_checkpoint`` writes to a temporary file in the target folder, fsyncs it and renames it
  over the target with ``os.replace`` (atomic on POSIX and Windows), so a crash or a full disk
  mid-write never leaves a truncated ``last.pth`` behind: the previous checkpoint survives.
* ``load_checkpoint`` uses ``torch.load(weights_only=True)`` by default: a checkpoint downloaded
  from the internet cannot execute code when it is opened. Files that need the full pickle
  machinery are refused with a message saying how to opt in for a file you trust.
* The released SLRNet checkpoints (``{'state_dict', 'epoch', 'optimizer'}``) were saved from a
  ``DataParallel`` model, so every key starts with ``module.``; they also contain *aliased* keys
  (one tensor registered under two names, e.g. ``newly_added.0.*`` = ``aspp.*`` or the backbone's
  ``fixed_layers.*``). ``load_state_dict_strict`` strips the prefix, accepts a file that holds
  only one name of an alias group, and names every missing, unexpected and mis-shaped key.

References: PyTorch serialization notes (``torch.load`` ``weights_only``); the official training
checkpoint layout is described in the shared reference README, section ``resnet38d_keys.json``.
"""
from __future__ import annotations

import contextlib
import fnmatch
import os
import pickle
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn as nn

from slrnet.errors import CheckpointError, StateDictMismatchError  # noqa: F401  (re-exported)

SHOW_AT_MOST = 10   # keys listed per category in an error message


# ---------------------------------------------------------------------------------------- files
def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Atomically write ``state`` (a dict of tensors, numbers, strings, lists, dicts) to ``path``."""
    if not isinstance(state, Mapping):
        raise TypeError(f"save_checkpoint({str(path)!r}): state must be a dict, got {type(state).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives in the same folder so os.replace is a rename on one file system.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is as readable as other outputs
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())          # data on disk before the rename makes it visible
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, (OSError, RuntimeError)):
            raise _write_error(path, e) from e
        raise
    _fsync_directory(path.parent)         # make the rename itself durable
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _next_step(path: Path) -> str:
    """What to do after a failed checkpoint write: ``--resume`` only when a ``last.pth`` it could resume from
    exists beside it (advice that cannot work is never given)."""
    last = path.parent / "last.pth"
    if last.is_file():
        return f"continue with --resume (the previous {last.name} is intact)"
    return ("start again: no checkpoint had been written yet, so there is nothing to resume (in a run folder "
            "pass --overwrite)")


def _write_error(path: Path, e: BaseException) -> CheckpointError:
    """One clear line for a failed write. A full disk can surface as torch's ``inline_container.cc ...
    unexpected pos`` RuntimeError with the ``ENOSPC`` OSError only in its context, so the chain is searched."""
    import errno

    chain, cause = [], e
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(getattr(c, "errno", None) == errno.ENOSPC or "No space left" in str(c) for c in chain):
        return CheckpointError(f"no space left on the device holding {path.parent} while writing {path}; "
                               f"free some space, then {_next_step(path)}")
    text = " ".join(str(e).split())[:200]
    return CheckpointError(f"writing {path} failed ({type(e).__name__}: {text}); the previous {path.name}, "
                           f"if any, is intact")


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (PyTorch >= 1.6; its first bytes are a zip entry header, also when the
    file was cut short) or, in the legacy format, a pickle (first byte 0x80, the protocol marker)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or head[:1] == b"\x80"


def _fsync_directory(folder: Path) -> None:
    if os.name != "posix":                # directories cannot be opened for fsync on Windows
        return
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", weights_only: bool = True) -> Any:
    """``torch.load`` with clear errors. ``weights_only=True`` never runs code from the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): an interrupted download or copy? Fetch or save it again")
    if not _looks_like_torch_file(path):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither the zip format of torch.save nor a "
                              f"legacy pickle); expected a .pth file written by torch.save")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as e:
        if weights_only and "weights only load failed" in str(e).lower():
            lines = str(e).strip().splitlines()
            detail = next((line for line in lines if "Unsupported" in line), lines[0])
            detail = detail.split(" Please use")[0].replace("WeightsUnpickler error: ", "").strip()
            raise CheckpointError(
                f"{path} holds Python objects besides tensors, which the safe loader refuses ({detail}); "
                f"slrnet reads only tensors, numbers, strings and containers. Save the weights alone "
                f"(torch.save({{'state_dict': model.state_dict()}}, path)) where the file was made.") from e
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): "
                              f"{' '.join(str(e).split())[:200]}") from e
    except Exception as e:    # zip / pickle / legacy-format readers fail in many different ways
        if "deserialize object on" in str(e):     # e.g. CUDA tensors opened without CUDA
            raise CheckpointError(f"{path} holds tensors of a device that is not available here "
                                  f"(map_location={map_location!r}); use map_location='cpu'.") from e
        raise CheckpointError(
            f"{path} is not a readable checkpoint: it looks truncated or corrupt "
            f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else 'no detail'}). "
            f"Re-download it or save it again.") from e


# ---------------------------------------------------------------------------------- state dicts
def strip_prefix(state_dict: Mapping[str, Any], prefix: str = "module.") -> "OrderedDict[str, Any]":
    """Remove ``prefix`` from the keys that start with it (DataParallel / DDP save ``module.*``)."""
    return OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v) for k, v in state_dict.items())


def extract_state_dict(obj: Any, source: str = "state_dict") -> Mapping[str, torch.Tensor]:
    """The state_dict inside a checkpoint: ``obj['state_dict']`` / ``obj['model']`` or ``obj`` itself."""
    if not isinstance(obj, Mapping):
        raise TypeError(f"{source}: expected a dict of tensors, got {type(obj).__name__}")
    for wrapper in ("state_dict", "model"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping):
            return inner
    return obj


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside ``nn.DataParallel`` / ``DistributedDataParallel`` wrappers."""
    wrappers = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


@dataclass
class LoadReport:
    """What happened when a state_dict was matched against a model (keys in the model's names)."""
    matched: list[str] = field(default_factory=list)       # loaded
    via_alias: list[str] = field(default_factory=list)     # filled because an alias of theirs was loaded
    missing: list[str] = field(default_factory=list)       # in the model, not in the state_dict
    unexpected: list[str] = field(default_factory=list)    # in the state_dict, not in the model
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)   # (key, file shape, model shape)
    ignored: list[str] = field(default_factory=list)       # skipped on purpose (``ignore`` patterns)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = [f"{len(self.matched)} matched"]
        for name, items in (("filled via alias", self.via_alias), ("missing", self.missing),
                            ("unexpected", self.unexpected), ("shape mismatch", self.mismatched),
                            ("ignored", self.ignored)):
            if items:
                parts.append(f"{len(items)} {name}")
        return ", ".join(parts)

    def details(self) -> str:
        """Multi-line listing of the problems, at most ``SHOW_AT_MOST`` keys per category."""
        lines = []
        for name, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                lines.append(f"  {name} ({len(items)}): " + _first(items))
        if self.mismatched:
            shown = [f"{k}: file {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mismatched]
            lines.append(f"  shape mismatch ({len(shown)}): " + _first(shown))
        return "\n".join(lines)


def _first(items: list[str]) -> str:
    head = ", ".join(items[:SHOW_AT_MOST])
    more = len(items) - SHOW_AT_MOST
    return head + (f", ... and {more} more" if more > 0 else "")


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def alias_groups(model: nn.Module) -> dict[str, list[str]]:
    """key -> every state_dict key of ``model`` that holds the very same tensor (itself included)."""
    by_tensor: dict[int, list[str]] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        by_tensor.setdefault(id(value), []).append(key)
    return {key: keys for keys in by_tensor.values() for key in keys}


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True, *,
                           ignore: Iterable[str] = (), ignore_missing: Iterable[str] = (),
                           source: str | None = None) -> LoadReport:
    """Load ``state_dict`` into ``model`` and report; with ``strict`` any mismatch raises, naming keys.

    * ``module.`` prefixes (DataParallel / DDP) are stripped from the state_dict, and a wrapped
      ``model`` is unwrapped, so any combination of wrapped / unwrapped loads.
    * Aliased keys: a model key counts as present when any name of its tensor is in the state_dict.
    * ``ignore``: fnmatch patterns of state_dict keys to skip (e.g. ``"fc.*"``, an ImageNet head).
    * ``ignore_missing``: patterns of model keys that may be absent (e.g. ``"*.num_batches_tracked"``
      in files written by old PyTorch versions); they keep their current values.
    * ``strict=False`` loads whatever matches in name and shape and warns about the rest.
    Nothing is copied when a strict check fails. Returns a :class:`LoadReport`.
    """
    model = unwrap_model(model)
    state_dict = strip_prefix(extract_state_dict(state_dict, source or "state_dict"), "module.")
    ignore, ignore_missing = tuple(ignore), tuple(ignore_missing)
    target = model.state_dict(keep_vars=True)
    aliases = alias_groups(model)
    report = LoadReport()

    to_load: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    loaded_tensors: set[int] = set()
    for key, value in state_dict.items():
        if key not in target:
            (report.ignored if _matches(key, ignore) else report.unexpected).append(key)
            continue
        have, want = tuple(getattr(value, "shape", ())), tuple(target[key].shape)
        if not isinstance(value, torch.Tensor) or have != want:
            report.mismatched.append((key, have, want))
            continue
        if id(target[key]) in loaded_tensors:       # a second name of a tensor already taken
            report.via_alias.append(key)
            continue
        loaded_tensors.add(id(target[key]))
        to_load[key] = value
        report.matched.append(key)

    mismatched_keys = {k for k, _, _ in report.mismatched}
    seen = set(to_load) | set(report.via_alias) | mismatched_keys
    missing_tensors: set[int] = set()
    for key, tensor in target.items():
        if key in seen:
            continue
        if id(tensor) in loaded_tensors:
            report.via_alias.append(key)
        elif (id(tensor) not in missing_tensors and not _matches(key, ignore_missing)
              and not any(a in mismatched_keys for a in aliases[key])):
            missing_tensors.add(id(tensor))     # a tensor is missing once, under its first name
            report.missing.append(key)

    if not report.ok:
        origin = f"state_dict from {source}" if source else "state_dict"
        message = (f"{origin} does not match {type(model).__name__}: {report.summary()}\n"
                   f"{report.details()}")
        if strict:
            raise StateDictMismatchError(message + "\nPass strict=False to load only the matching keys.", report)
        warnings.warn(message, stacklevel=2)
    model.load_state_dict(to_load, strict=False)
    return report
