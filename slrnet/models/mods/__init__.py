"""SLRNet building blocks: ASPP, GCI, StochasticGate, PAMR, the CVLR modules and a faster Dropout.

    >>> from slrnet.models.mods import ASPP, GCI, StochasticGate, PAMR, run_pamr, Dropout
    >>> from slrnet.models.mods import DictionaryInitialization, FactorizationReconstruction

Each module reproduces the reference fixtures in ``tests/fixtures`` (see the shared reference README).
"""
from slrnet.models.mods.aspp import ASPP
from slrnet.models.mods.cvlr import DictionaryInitialization, FactorizationReconstruction
from slrnet.models.mods.dropout import Dropout, keep_mask
from slrnet.models.mods.gci import GCI
from slrnet.models.mods.pamr import PAMR, run_pamr
from slrnet.models.mods.sg import StochasticGate

__all__ = ["ASPP", "DictionaryInitialization", "Dropout", "FactorizationReconstruction", "GCI", "PAMR",
           "StochasticGate", "keep_mask", "run_pamr"]
