"""Errors a user can fix: the command line prints them as one ``error: ...`` line (``--debug`` for the traceback).

Besides ``ValueError`` (a bad value or path: ``slrnet.config.ConfigError`` is one), ``KeyError`` and ``OSError``
(a missing file, no permission, a full disk), the library raises subclasses of :class:`UserError` for problems
with the user's files or runs that are not bad values: an unreadable checkpoint, a checkpoint of another
architecture, a diverged training, a run folder already in use. Importing this module does not import torch.
"""
from __future__ import annotations


class UserError(Exception):
    """Base class: the message alone says what went wrong and what to do."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file could not be read or written (truncated, corrupt, refused by the safe loader, disk full)."""


class StateDictMismatchError(UserError, RuntimeError):
    """A state_dict does not fit a model; ``.report`` holds the full ``slrnet.checkpoint.LoadReport``."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint (if any) is kept."""

    @classmethod
    def at(cls, loss: float, terms: dict, epoch: int, step: int, last_checkpoint) -> "TrainingDiverged":
        """The error of a non-finite ``loss`` at ``epoch`` / ``step`` (0-based) with its ``terms`` (name -> float);
        ``last_checkpoint`` the run's last.pth (a Path, existing or not)."""
        values = ", ".join(f"{k}={v:.4g}" for k, v in terms.items())
        kept = (f"the last good checkpoint ({last_checkpoint}) is kept: fix the cause, then resume from it with "
                f"--resume" if last_checkpoint.is_file() else "no checkpoint had been written yet")
        return cls(f"loss is {loss} at epoch {epoch + 1}, step {step + 1} ({values}); stopped; {kept}. Lower "
                   f"train.lr (a resumed run takes the config's learning rate) or check the data.")


class RunFolderInUse(UserError, RuntimeError):
    """A run folder holds another run (finished, or live with a lock)."""
