"""kerastransfer: transfer learning for Keras 3 / TensorFlow.

Modules, one concept each:
- `data`: `load_dataset` (embedded samples, .npz, image folders, tensorflow-datasets).
- `models`: the networks the recipes use (`small_cnn`, `mobilenet_v2_classifier`).
- `surgery`: `import_matching_layers`, `replace_head`, `cut_at`, `freeze_bottom_levels`, channels.
- `optimizers`: per-layer optimizer maps on `keras.optimizers.MultiOptimizer` (neon, discriminative,
  layer-wise decay).
- `feature_extraction`: frozen features + linear softmax / SVM.
- `distillation`: knowledge distillation on `keras.distillation` (`build_distiller`, `logits_model`).
- `lenet`, `layer_transfer`: seed 002's LeNet-5 variant and its retained-levels sweep.
- `export`: SavedModel export with a raw-image `serve` signature.
- BPA distributed backpropagation: `bpa` (the math), `filters` (split layers, single-filter
  networks, Gamma), `train_step` (`BPAModel`), `callbacks` (`GammaRefresh`), `multiworker`
  (`MultiWorkerTrainer`), `bench` (`kerastransfer bench`).
"""

from kerastransfer.callbacks import GammaRefresh
from kerastransfer.data import DatasetInfo, TransferData, load_dataset
from kerastransfer.distillation import build_distiller, logits_model
from kerastransfer import lenet  # noqa: F401  (registers its layers for .keras loading)
from kerastransfer.export import export_serving
from kerastransfer.optimizers import (
    ScaledMultiOptimizer,
    discriminative_optimizer,
    layerwise_decay_optimizer,
    neon_optimizer,
)
from kerastransfer.surgery import (
    ImportReport,
    cut_at,
    freeze_bottom_levels,
    import_matching_layers,
    replace_head,
    weighted_levels,
)

from kerastransfer.train_step import BPAModel

__version__ = "0.1.0"
