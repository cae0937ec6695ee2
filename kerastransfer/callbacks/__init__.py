"""Callbacks for `model.fit`.

- `GammaRefresh`: recomputes a `BPAModel`'s Gamma during `fit` (it lives with its method in
  `kerastransfer.methods.bpa`; re-exported here beside the other callbacks).
"""

from kerastransfer.methods.bpa.gamma_refresh import GammaRefresh

__all__ = ["GammaRefresh"]
