"""keras-tuner search over transfer choices.

- `TransferHyperModel`, `SEARCH_SPACE` (`transfer_hypermodel.py`): the `keras_tuner.HyperModel`.
- `search`, `TransferSearch`, `fit_command` (`transfer_search.py`): the search behind
  `kerastransfer tune`.
- `TrialMemory` (`trial_memory.py`): frees what a trial's graphs held, so a search does not grow.
"""

from kerastransfer.tuning.transfer_hypermodel import SEARCH_SPACE, TransferHyperModel
from kerastransfer.tuning.transfer_search import TransferSearch, fit_command, search
from kerastransfer.tuning.trial_memory import TrialMemory

__all__ = [
    "SEARCH_SPACE",
    "TransferHyperModel",
    "TransferSearch",
    "TrialMemory",
    "fit_command",
    "search",
]
