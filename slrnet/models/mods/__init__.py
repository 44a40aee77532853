"""SLRNet building blocks: ASPP, GCI, StochasticGate, PAMR and the CVLR modules.

    >>> from slrnet.models.mods import ASPP, GCI, StochasticGate, PAMR, run_pamr
    >>> from slrnet.models.mods import DictionaryInitialization, FactorizationReconstruction

Each module reproduces the reference fixtures in ``tests/fixtures`` (see the shared reference README).
"""
from slrnet.models.mods.aspp import ASPP
from slrnet.models.mods.gci import GCI
from slrnet.models.mods.pamr import PAMR, run_pamr
from slrnet.models.mods.sg import StochasticGate

__all__ = ["ASPP", "GCI", "PAMR", "run_pamr", "StochasticGate"]

try:  # cvlr.py is written separately; keep the package importable without it
    from slrnet.models.mods.cvlr import DictionaryInitialization, FactorizationReconstruction
except ModuleNotFoundError as err:
    if err.name != "slrnet.models.mods.cvlr":
        raise
else:
    __all__ += ["DictionaryInitialization", "FactorizationReconstruction"]
