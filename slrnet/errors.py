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


class RunFolderInUse(UserError, RuntimeError):
    """A run folder holds another run (finished, or live with a lock)."""
