"""keras-tuner search over transfer choices.

- `TransferHyperModel`, `SEARCH_SPACE` (`transfer_hypermodel.py`): the `keras_tuner.HyperModel`.
- `search`, `TransferSearch`, `fit_command` (`search.py`): the search behind `kerastransfer tune`.
"""

from kerastransfer.tuning.search import TransferSearch, fit_command, search
from kerastransfer.tuning.transfer_hypermodel import SEARCH_SPACE, TransferHyperModel

__all__ = ["SEARCH_SPACE", "TransferHyperModel", "TransferSearch", "fit_command", "search"]
