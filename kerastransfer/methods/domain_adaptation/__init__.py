"""Unsupervised domain adaptation: DAN (multi-kernel MMD) and DANN (gradient reversal).

- `DANModel` (`dan.py`): source loss + lambda x MK-MMD at named layers (Long et al. 2015).
- `DANNModel` (`dann.py`): domain classifier behind a gradient reversal layer (Ganin and
  Lempitsky 2015).
- `DomainAdaptationModel` (`adaptation_model.py`): their common base.
- `AdaptationRamp` (`schedules.py`): the 2/(1+exp(-10p))-1 weight ramp.
- `paired_dataset` (`paired_data.py`): `((x_source, x_target), y_source)` batches, no target labels.
- `domain_gap`, `domain_gap_main` (`discrepancy.py`): MMD per layer between two domains.

The MMD itself is `kerastransfer.losses.MultiKernelMMD`; the reversal layer
`kerastransfer.layers.GradientReversal`.
"""

from kerastransfer.methods.domain_adaptation.adaptation_model import DomainAdaptationModel
from kerastransfer.methods.domain_adaptation.dan import DANModel
from kerastransfer.methods.domain_adaptation.dann import DANNModel
from kerastransfer.methods.domain_adaptation.discrepancy import domain_gap, domain_gap_main
from kerastransfer.methods.domain_adaptation.paired_data import paired_dataset
from kerastransfer.methods.domain_adaptation.schedules import AdaptationRamp

__all__ = [
    "AdaptationRamp",
    "DANModel",
    "DANNModel",
    "DomainAdaptationModel",
    "domain_gap",
    "domain_gap_main",
    "paired_dataset",
]
