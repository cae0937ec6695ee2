"""`fine_tune`: from a pretrained network and a dataset to a trained, evaluated model in one call.

The steps every transfer run repeats, in order:

1. **Source and target.** The source is a `keras.applications` name (loaded with ImageNet weights
   at the target's input size, offline from `$KERAS_HOME/models/`; `pretrained.load_source`), a
   KerasHub preset of an image backbone (taken as an application name is; `hub_source`), a
   `.keras` file or a model. The target (`build_transfer_model`) is the source's pooled body
   (`methods.feature_extraction.pooled_body`) at the input shape of `target_input_shape`, with
   the source's matching layers imported (a gray target gets the first convolution summed over
   its RGB input channels), and a new head (`surgery.replace_head`): optional ReLU layer of
   `head_width` units, dropout, softmax `classifier_new`.
2. **Warm-up.** The new head is trained with the body frozen (inference mode) on the body's
   pooled features (`methods.feature_extraction.stream_features`), computed once: as a
   full-model warm-up, but without a forward pass through the body every epoch. Early stopping on
   validation loss, best weights restored.
3. **The method**, on the whole model (normalization layers stay in inference mode unless
   `train_normalization=True`; the bottom `frozen_levels` levels stay frozen):

   - `"neon"`: imported layers at learning rate 0, new layers at `learning_rate` (Intel neon's
     transfer scheme; with `train_normalization=True` BatchNormalization statistics adapt).
   - `"discriminative"`: the body's trainable levels in `groups` groups, rates geometric from
     `learning_rate * imported_rate` (bottom) to `learning_rate` (head) (Howard and Ruder 2018,
     "Universal Language Model Fine-tuning for Text Classification").
   - `"layerwise_decay"`: rate x decay**depth from the top, decay chosen so the bottom level gets
     `learning_rate * imported_rate` (Clark et al. 2020, "ELECTRA"; timm's layer decay).
   - `"gradual"`: the body starts frozen and `callbacks.GradualUnfreezing` unfreezes one level
     every `every` epochs, top down; imported layers at `learning_rate * imported_rate`.
   - `"bpa"`: all layers at `learning_rate * imported_rate` (imported) / `learning_rate` (new),
     gradients of the first convolution's filters scaled by Gamma (`methods.bpa.BPAModel`,
     Shahriari 2017), refreshed each epoch by `GammaRefresh`. `bpa=True` adds it to any method
     but the parameter-efficient ones.

   The parameter-efficient methods (`PEFT_METHODS`, `kerastransfer.methods.peft`) are applied to
   the backbone after step 1 (`adapt_transfer_model`: a new model, the new head's layers fully
   trainable, every other weight frozen but what the method trains); steps 2 and 3 then run on
   it, adapters or biases at `learning_rate` like the head:

   - `"lora"`: a low-rank update of the kernel of every Dense, Conv2D, DepthwiseConv2D and
     SeparableConv2D layer of the backbone (or the `lora_targets`), of rank `rank` (default 8;
     lower where a kernel takes less), scaled by `lora_alpha / rank`, with `lora_dropout` on
     the adapter path (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models").
   - `"dora"`: LoRA on each kernel's direction and a trained magnitude per output unit (Liu et
     al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation").
   - `"bitfit"`: the backbone's biases only (Ben Zaken et al. 2022, "BitFit"); with
     `train_normalization=True` the normalization layers' gamma and beta too.

   The export of a "lora" or "dora" run is the merged plain model (`merge_adapters`), of the
   base architecture.

   Early stopping on validation loss restores the best epoch; `backup_dir` makes the run
   resumable to the uninterrupted result (`kerastransfer.callbacks.BackupAndRestore`),
   `log_dir` writes TensorBoard logs (with each optimizer group's rate), `export` writes a
   serving export (`export.export_serving`).

`imported_rate=0` gives the neon scheme whatever whole-network method. The report counts the
trainable parameters against the network's for every method. Every choice and its default is a
field of `FineTuneConfig`: pass one as `config=`, or its fields as keywords.

**Devices and precision** (`fine_tuning.devices`): `distribution` runs steps 1 to 3 under a
`tf.distribute` strategy (by default a `MirroredStrategy` over the visible GPUs when there are
several; `batch_size` is then the global batch; the adapters are made under it too), and
`precision="mixed_float16"` or `"mixed_bfloat16"` builds the model in that Keras dtype policy (loss
scaling for float16, the softmax in float32, a float32 copy exported; an adapted layer computes in
the policy's compute dtype, its adapters held in float32); the global policy is restored
afterwards.

Example (tiny; real runs use an application name such as "MobileNetV2"):

>>> from kerastransfer.models import small_cnn
>>> result = fine_tune(small_cnn(filters=(4, 6), dense=16), "embedded:usps",
...                    samples_per_class=5, epochs=1, warmup_epochs=2, verbose=0)
>>> result.model.output_shape, result.report.method
((None, 10), 'discriminative')
"""

from kerastransfer.fine_tuning.fine_tune_config import (
    DEFAULT_IMPORTED_RATE,
    METHODS,
    PEFT_METHODS,
    FineTuneConfig,
)
from kerastransfer.fine_tuning.one_call import fine_tune
from kerastransfer.fine_tuning.parameter_efficient import adapt_transfer_model
from kerastransfer.fine_tuning.report import FineTuneReport, FineTuneResult
from kerastransfer.fine_tuning.training import train_transfer_model
from kerastransfer.fine_tuning.transfer_model import build_transfer_model, target_input_shape

__all__ = [
    "DEFAULT_IMPORTED_RATE",
    "METHODS",
    "PEFT_METHODS",
    "FineTuneConfig",
    "FineTuneReport",
    "FineTuneResult",
    "adapt_transfer_model",
    "build_transfer_model",
    "fine_tune",
    "target_input_shape",
    "train_transfer_model",
]
