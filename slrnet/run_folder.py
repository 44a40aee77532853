"""A run folder belongs to one run: claimed with a lock file, never silently reused.

    >>> folder = RunFolder("outputs/runs/voc/r38")
    >>> folder.claim(resume=False, overwrite=False)   # RunFolderInUse if it holds a run or is live elsewhere
    >>> ...                                           # train
    >>> folder.release()

* A folder **holds a run** when it has a ``config.yaml``, a ``log.jsonl`` or a checkpoint. Starting into it needs
  ``resume`` (continue that run) or ``overwrite`` (delete its results first); otherwise the caller is told both
  and to pick another name. Two trainings with the same ``--run`` can therefore no longer mix their logs or
  replace each other's ``best.pth``.
* While a run is live, ``.lock`` holds its host and process id. A second process is refused; a lock left by a
  killed process (same host, pid gone) is stale and taken over. Locks from another host are trusted.
* Claiming also removes the temporary files a killed checkpoint write leaves (``checkpoints/.*.tmp``).
"""
from __future__ import annotations

import atexit
import os
import shutil
import socket
from pathlib import Path

from slrnet.errors import RunFolderInUse

RESULT_FILES = ("config.yaml", "log.jsonl", "history.json")
RESULT_DIRS = ("checkpoints", "snapshots")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # exists, owned by someone else
        return True
    return True


class RunFolder:
    noun, other_name = "run folder", "another --run name"        # the words of its messages (OutputFolder: its own)

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock = self.path / ".lock"
        self._held = False

    def holds_run(self) -> list[str]:
        """What marks the folder as holding a run (empty list: it does not)."""
        found = [name for name in RESULT_FILES if (self.path / name).is_file()]
        ckpt = self.path / "checkpoints"
        if ckpt.is_dir() and any(ckpt.glob("*.pth")):
            found.append("checkpoints/*.pth")
        return found

    def _owner(self) -> tuple[str, int] | None:
        try:
            host, pid = self.lock.read_text().split()[:2]
            return host, int(pid)
        except (OSError, ValueError):
            return None

    def claim(self, resume: bool = False, overwrite: bool = False) -> "RunFolder":
        self.path.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            found = self.holds_run()
            if found and not resume and not overwrite:
                raise RunFolderInUse(f"run folder {self.path} already holds a run ({', '.join(found)}); "
                                     f"{self._choices()}, or choose another --run name")
            if overwrite and not resume:
                for name in RESULT_FILES:
                    (self.path / name).unlink(missing_ok=True)
                for name in RESULT_DIRS:
                    shutil.rmtree(self.path / name, ignore_errors=True)
            for tmp in (self.path / "checkpoints").glob(".*.tmp"):     # left by a killed checkpoint write
                tmp.unlink(missing_ok=True)
        except BaseException:
            self.release()
            raise
        return self

    def _choices(self) -> str:
        """The ways on from a folder holding a run: ``--resume`` only when there is a checkpoint to resume from."""
        if (self.path / "checkpoints" / "last.pth").is_file():
            return "pass --resume to continue it, --overwrite to delete its results and start again"
        return ("it has no checkpoint to resume from (it stopped before its first epoch ended): pass --overwrite to "
                "delete its results and start again")

    def _take_lock(self) -> None:
        me = f"{socket.gethostname()} {os.getpid()}\n"
        for _ in range(3):
            try:
                fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner == (socket.gethostname(), os.getpid()):
                    break                                        # this process holds it already
                if owner is not None and (owner[0] != socket.gethostname() or _pid_alive(owner[1])):
                    raise RunFolderInUse(f"{self.noun} {self.path} is in use by process {owner[1]} on {owner[0]} "
                                         f"(lock file {self.lock}); wait for it, or choose {self.other_name}")
                self.lock.unlink(missing_ok=True)                # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            break
        else:
            raise RunFolderInUse(f"could not take the lock {self.lock}; another process keeps creating it")
        self._held = True
        atexit.register(self.release)

    def release(self) -> None:
        if self._held and self._owner() == (socket.gethostname(), os.getpid()):
            self.lock.unlink(missing_ok=True)
        self._held = False

    # ------------------------------------------------------------------ the run's log
    @property
    def log_path(self) -> Path:
        return self.path / "log.jsonl"

    def append_log(self, record: dict) -> None:
        """One JSON line in ``log.jsonl`` (floats rounded to 6 digits)."""
        import json

        with open(self.log_path, "a") as f:
            f.write(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}) + "\n")

    def drop_log_records_after(self, epoch: int) -> None:
        """Resuming after a kill: the run may have logged steps past its last checkpoint; they are trained again, so
        their records go (and a half-written last line with them)."""
        if not self.log_path.is_file():
            return
        import json

        from slrnet.utils import atomic_write_bytes

        kept = []
        for line in self.log_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:          # the half-written last line of a killed process
                continue
            if record.get("epoch", -1) <= epoch:
                kept.append(line)
        atomic_write_bytes(self.log_path, "".join(line + "\n" for line in kept).encode())
