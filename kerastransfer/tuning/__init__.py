"""keras-tuner search over transfer choices.

- `TransferHyperModel`, `SEARCH_SPACE` (`transfer_hypermodel.py`): the `keras_tuner.HyperModel`.
- `search`, `TransferSearch`, `fit_command` (`transfer_search.py`): the search behind
  `kerastransfer tune`.
- `TrialMemory` (`trial_memory.py`): frees what a trial's graphs held, so a search does not grow.

keras-tuner is the optional `tune` extra (`pip install 'kerastransfer[tune]'`): the names that
need it are imported on first use, so `import kerastransfer.tuning` works without it.
"""

import importlib

from kerastransfer.tuning.trial_memory import TrialMemory

_LAZY = {
    "SEARCH_SPACE": "transfer_hypermodel",
    "TransferHyperModel": "transfer_hypermodel",
    "TransferSearch": "transfer_search",
    "fit_command": "transfer_search",
    "search": "transfer_search",
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "SEARCH_SPACE",
    "TransferHyperModel",
    "TransferSearch",
    "TrialMemory",
    "fit_command",
    "search",
]
