"""Deprecated: `kerastransfer.methods.dan` is `kerastransfer.methods.domain_adaptation`.

Importing this module warns once; it goes in the next release.
"""

import warnings

from kerastransfer.methods.domain_adaptation import (  # noqa: F401
    AdaptationRamp,
    CDANModel,
    DANModel,
    DANNModel,
    DomainAdaptationModel,
    MCCModel,
    domain_discriminator,
    domain_gap,
    domain_gap_main,
    paired_dataset,
)

warnings.warn(
    "`kerastransfer.methods.dan` is now `kerastransfer.methods.domain_adaptation`; the old name "
    "goes in the next release.",
    DeprecationWarning,
    stacklevel=2,
)
