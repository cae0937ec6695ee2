"""Callbacks for `model.fit`.

- `GammaRefresh`: recomputes a `BPAModel`'s Gamma during `fit` (it lives with its method in
  `kerastransfer.methods.bpa`; re-exported here beside the other callbacks).
- `GradualUnfreezing` (`gradual_unfreezing.py`): one more level trainable every k epochs, top down.
- `LRFinder`, `find_learning_rate` (`lr_finder.py`): the learning-rate range test.
- `LearningRateLogger` (`learning_rate_logger.py`): each optimizer group's rate in the logs.
"""

from kerastransfer.callbacks.gradual_unfreezing import GradualUnfreezing
from kerastransfer.callbacks.learning_rate_logger import LearningRateLogger
from kerastransfer.callbacks.lr_finder import LRFinder, find_learning_rate
from kerastransfer.methods.bpa.gamma_refresh import GammaRefresh

__all__ = [
    "GammaRefresh",
    "GradualUnfreezing",
    "LRFinder",
    "LearningRateLogger",
    "find_learning_rate",
]
