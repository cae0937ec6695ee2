"""Parameter-efficient fine-tuning of Keras models: a few new or chosen weights are trained, the
pretrained ones stay frozen.

- `apply_lora` (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") and
  `apply_dora` (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation"): a low-rank
  update of the kernels of the Dense, Conv2D, DepthwiseConv2D and SeparableConv2D layers, each
  wrapped in an `AdaptedLayer`; `max_rank(layer)` is the largest rank a layer takes.
- `apply_bitfit` (Ben Zaken, Ravfogel and Goldberg 2022, "BitFit: Simple Parameter-efficient
  Fine-tuning for Transformer-based Masked Language-models"): the biases only.
- `save_adapters`, `load_adapters`: the trained weights alone, in one small file checked against
  the base on loading. `merge_adapters`: the adapted model as a plain model of the base
  architecture. `trainable_parameter_count`: (trainable, total) scalars of a model.

Each `apply_*` returns a new model (nested models, such as a `keras.applications` backbone,
walked into) and leaves `model` as it was.
"""

from kerastransfer.methods.peft.adapted_layer import AdaptedLayer, max_rank
from kerastransfer.methods.peft.adapters_io import load_adapters, save_adapters
from kerastransfer.methods.peft.bitfit import apply_bitfit
from kerastransfer.methods.peft.dora import apply_dora
from kerastransfer.methods.peft.lora import apply_lora, trainable_parameter_count
from kerastransfer.methods.peft.merge import merge_adapters

__all__ = [
    "AdaptedLayer",
    "apply_bitfit",
    "apply_dora",
    "apply_lora",
    "load_adapters",
    "max_rank",
    "merge_adapters",
    "save_adapters",
    "trainable_parameter_count",
]
