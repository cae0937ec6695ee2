"""kerastransfer: transfer learning for Keras 3 / TensorFlow.

The flat public API; each name lives in the module named after it:

- `kerastransfer.data`: `load_dataset` and `TransferData`.
- `kerastransfer.models`: `small_cnn`, `mobilenet_v2_classifier`, `lenet5`.
- `kerastransfer.pretrained`: `load_source` (a model, a `.keras` file, a `keras.applications` name,
  a KerasHub preset: `kerastransfer.hub_source`, the optional `hub` extra).
- `kerastransfer.surgery`: `import_matching_layers`, `cut_at`, `replace_head`,
  `freeze_bottom_levels`, `weighted_levels`, `adapt_input_channels`.
- `kerastransfer.optimizers`: per-layer maps on `keras.optimizers.MultiOptimizer`.
- `kerastransfer.callbacks`, `kerastransfer.losses`: Keras concepts, where Keras keeps them.
- `kerastransfer.layers`: `GradientReversal`.
- `kerastransfer.methods`: one folder or file per method (`bpa/`,
  `domain_adaptation/`, `spottune/`, `distillation`, `feature_extraction`, `layer_transfer/`).
- `kerastransfer.fine_tuning`, `kerastransfer.tuning`: `fine_tune` (one call; its choices and
  defaults in `FineTuneConfig`) and the keras-tuner
  search over transfer choices (`TransferHyperModel`: the optional `tune` extra, imported on
  first use and left out of `__all__`, so `from kerastransfer import *` works without it).
- `kerastransfer.export`: `export_serving` (SavedModel, ONNX, LiteRT) and `verify_export`.
"""

from kerastransfer._command_startup import quiet_native_startup

with quiet_native_startup():  # the kerastransfer command only; see _command_startup
    import tensorflow  # noqa: F401

from kerastransfer import (
    models,  # noqa: E402, F401  (registers LeNet layers for .keras loading)
    tuning,  # noqa: E402, F401  (keras-tuner only on first use, below)
)
from kerastransfer.callbacks import GradualUnfreezing, LearningRateLogger, LRFinder
from kerastransfer.data import DatasetInfo, TransferData, load_dataset
from kerastransfer.export import export_serving, verify_export
from kerastransfer.fine_tuning import FineTuneConfig, fine_tune
from kerastransfer.layers import GradientReversal
from kerastransfer.losses import MultiKernelMMD
from kerastransfer.methods.bpa import BPAModel, GammaRefresh, MultiWorkerTrainer
from kerastransfer.methods.distillation import build_distiller, logits_model
from kerastransfer.methods.domain_adaptation import (
    AdaptationRamp,
    CDANModel,
    DANModel,
    DANNModel,
    MCCModel,
    domain_gap,
    paired_dataset,
)
from kerastransfer.methods.spottune import (
    SpotTuneModel,
    find_blocks,
    policy_usage,
    spottune_network,
)
from kerastransfer.optimizers import (
    ScaledMultiOptimizer,
    ScaledSchedule,
    ZeroRate,
    discriminative_optimizer,
    layerwise_decay_optimizer,
    neon_optimizer,
)
from kerastransfer.pretrained import load_source
from kerastransfer.surgery import (
    ImportReport,
    adapt_input_channels,
    cut_at,
    freeze_bottom_levels,
    import_matching_layers,
    replace_head,
    weighted_levels,
)

__version__ = "0.1.0"


def __getattr__(name):
    # keras-tuner is the optional `tune` extra: imported on first use only.
    if name == "TransferHyperModel":
        return tuning.TransferHyperModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AdaptationRamp",
    "BPAModel",
    "CDANModel",
    "DANModel",
    "DANNModel",
    "MCCModel",
    "GradientReversal",
    "GradualUnfreezing",
    "LRFinder",
    "LearningRateLogger",
    "fine_tune",
    "FineTuneConfig",
    "load_source",
    "verify_export",
    "MultiKernelMMD",
    "ScaledSchedule",
    "SpotTuneModel",
    "ZeroRate",
    "domain_gap",
    "find_blocks",
    "paired_dataset",
    "policy_usage",
    "spottune_network",
    "DatasetInfo",
    "GammaRefresh",
    "ImportReport",
    "MultiWorkerTrainer",
    "ScaledMultiOptimizer",
    "TransferData",
    "adapt_input_channels",
    "build_distiller",
    "cut_at",
    "discriminative_optimizer",
    "export_serving",
    "freeze_bottom_levels",
    "import_matching_layers",
    "layerwise_decay_optimizer",
    "load_dataset",
    "logits_model",
    "neon_optimizer",
    "replace_head",
    "weighted_levels",
]
