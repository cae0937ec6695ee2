"""Layers for transfer learning.

- `GradientReversal` (`gradient_reversal.py`): identity forward, gradient times -lambda backward
  (domain-adversarial training).
- `MultilinearMap`, `RandomizedMultilinearMap` (`multilinear_map.py`): the conditioning of CDAN.
"""

from kerastransfer.layers.gradient_reversal import GradientReversal
from kerastransfer.layers.multilinear_map import MultilinearMap, RandomizedMultilinearMap

__all__ = ["GradientReversal", "MultilinearMap", "RandomizedMultilinearMap"]
