"""Callbacks for `model.fit` that work with any transfer method.

- `BackupAndRestore` (`backup_and_restore.py`): resume `fit` after a kill, exactly, from backups
  a kill cannot break.
- `EpochSeeding` (`epoch_seeding.py`): epoch e reads epoch e's batches, whatever ran before.
- `GradualUnfreezing` (`gradual_unfreezing.py`): one more level trainable every k epochs, top down.
- `LRFinder`, `find_learning_rate` (`lr_finder.py`): the learning-rate range test.
- `LearningRateLogger` (`learning_rate_logger.py`): each optimizer group's rate in the logs.

A method's own callback lives with its method: `GammaRefresh` is in `kerastransfer.methods.bpa`
(and `kerastransfer.GammaRefresh`); `kerastransfer.callbacks.GammaRefresh` still works, with a
`DeprecationWarning`, and goes away in the next release.
"""

import warnings

from kerastransfer.callbacks.backup_and_restore import BackupAndRestore
from kerastransfer.callbacks.epoch_seeding import EpochSeeding
from kerastransfer.callbacks.gradual_unfreezing import GradualUnfreezing
from kerastransfer.callbacks.learning_rate_logger import LearningRateLogger
from kerastransfer.callbacks.lr_finder import LRFinder, find_learning_rate


def __getattr__(name):
    if name == "GammaRefresh":
        warnings.warn(
            "`kerastransfer.callbacks.GammaRefresh` is deprecated: import it from "
            "`kerastransfer.methods.bpa` (or `kerastransfer`).",
            DeprecationWarning,
            stacklevel=2,
        )
        from kerastransfer.methods.bpa import GammaRefresh

        return GammaRefresh
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BackupAndRestore",
    "EpochSeeding",
    "GradualUnfreezing",
    "LRFinder",
    "LearningRateLogger",
    "find_learning_rate",
]
