"""Small shared helpers: device resolution, seeding, progress bars, atomic file writes.

    >>> from slrnet.utils import resolve_device, seed_everything, progress
    >>> dev = resolve_device("auto")          # cuda if available, else mps, else cpu
    >>> seed_everything(0)
    >>> for x in progress(range(3), desc="demo"): pass   # silent under CI / without a TTY
"""
from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Map ``"auto"`` (or None) to the best available device; pass anything else through."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use 'auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} was requested but this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1}); use 'auto' or 'cuda'")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"device={device!r} was requested but MPS (Apple GPU) is not available on this machine; "
                         f"use 'auto' or 'cpu'")
    return dev


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def progress_disabled() -> bool:
    """Progress bars are off under CI (``CI`` set), with ``SLRNET_NO_PROGRESS=1``, or without a TTY."""
    if os.environ.get("SLRNET_NO_PROGRESS", "") not in ("", "0"):
        return True
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        return True
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return True


def progress(iterable: Iterable | None = None, **kwargs: Any):
    """``tqdm.auto.tqdm`` that stays quiet where a bar would only clutter logs."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", progress_disabled())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``: a full disk or a kill
    leaves the previous file or none, never a truncated one. A failure is an ``OSError`` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _naming(e, path) from None
    try:
        os.chmod(tmp, 0o644)   # mkstemp creates 0600; outputs are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _naming(e, path) from None
        raise
    return path


def _naming(e: OSError, path: Path) -> OSError:
    """``e`` with a message that names ``path`` (an ENOSPC from ``write`` names no file) and its errno kept."""
    if str(path) in str(e):
        return e
    message = f"writing {path} failed ({e.strerror or e}); no partial file was left"
    return type(e)(e.errno, message) if e.errno is not None else OSError(message)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as pretty JSON (numpy / torch scalars converted)."""

    def default(o):
        if isinstance(o, (np.generic,)):
            return o.item()
        if isinstance(o, torch.Tensor) and o.numel() == 1:
            return o.item()
        if isinstance(o, (np.ndarray, torch.Tensor)):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"cannot serialise {type(o).__name__} to JSON")

    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=default) + "\n").encode())


def repo_root() -> Path:
    """The checkout root (the folder holding ``pyproject.toml``), or the CWD when installed elsewhere."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def default_data_root() -> Path:
    """``$SLRNET_DATA`` if set, else ``<repo>/data``."""
    env = os.environ.get("SLRNET_DATA")
    return Path(env) if env else repo_root() / "data"


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
