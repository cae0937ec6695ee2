"""Layers for transfer learning.

- `GradientReversal` (`gradient_reversal.py`): identity forward, gradient times -lambda backward
  (domain-adversarial training).
"""

from kerastransfer.layers.gradient_reversal import GradientReversal

__all__ = ["GradientReversal"]
