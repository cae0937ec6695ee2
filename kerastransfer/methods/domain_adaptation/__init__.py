"""Unsupervised domain adaptation: DAN (MK-MMD), DANN, CDAN (adversarial) and MCC.

- `DANModel` (`dan.py`): source loss + lambda x MK-MMD at named layers (Long et al. 2015).
- `DANNModel` (`dann.py`): domain classifier behind a gradient reversal layer (Ganin and
  Lempitsky 2015).
- `CDANModel` (`cdan.py`): a domain classifier conditioned on the predictions through the
  multilinear map, CDAN+E entropy conditioning (Long et al. 2018).
- `MCCModel` (`mcc.py`): Minimum Class Confusion on the target predictions (Jin et al. 2020);
  any of the models adds it with `mcc_weight=`.
- `DomainAdaptationModel` (`adaptation_model.py`): their common base.
- `domain_discriminator` (`discriminator.py`): the domain classifier of the adversarial methods.
- `AdaptationRamp` (`schedules.py`): the 2/(1+exp(-10p))-1 weight ramp.
- `paired_dataset` (`paired_data.py`): `((x_source, x_target), y_source)` batches, no target labels.
- `domain_gap`, `domain_gap_main` (`discrepancy.py`): MMD per layer between two domains.

The MMD itself is `kerastransfer.losses.MultiKernelMMD`, the MCC loss
`kerastransfer.losses.minimum_class_confusion`; the reversal layer
`kerastransfer.layers.GradientReversal`, CDAN's maps `kerastransfer.layers.MultilinearMap` and
`RandomizedMultilinearMap`.
"""

from kerastransfer.methods.domain_adaptation.adaptation_model import DomainAdaptationModel
from kerastransfer.methods.domain_adaptation.cdan import CDANModel
from kerastransfer.methods.domain_adaptation.dan import DANModel
from kerastransfer.methods.domain_adaptation.dann import DANNModel
from kerastransfer.methods.domain_adaptation.discrepancy import domain_gap, domain_gap_main
from kerastransfer.methods.domain_adaptation.discriminator import domain_discriminator
from kerastransfer.methods.domain_adaptation.mcc import MCCModel
from kerastransfer.methods.domain_adaptation.paired_data import paired_dataset
from kerastransfer.methods.domain_adaptation.schedules import AdaptationRamp

__all__ = [
    "AdaptationRamp",
    "CDANModel",
    "DANModel",
    "DANNModel",
    "DomainAdaptationModel",
    "MCCModel",
    "domain_discriminator",
    "domain_gap",
    "domain_gap_main",
    "paired_dataset",
]
