"""`fine_tune`: from a pretrained network and a dataset to a trained, evaluated model in one call.

The steps every transfer run repeats, in order:

1. **Source and target.** The source is a `keras.applications` name (loaded with ImageNet weights
   at the target's input size, offline from `$KERAS_HOME/models/`; `pretrained.load_source`), a
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
     Shahriari 2017), refreshed each epoch by `GammaRefresh`. `bpa=True` adds it to any method.

   Early stopping on validation loss restores the best epoch; `backup_dir` makes the run
   resumable to the uninterrupted result (`kerastransfer.callbacks.BackupAndRestore`),
   `log_dir` writes TensorBoard logs (with each optimizer group's rate), `export` writes a
   serving export (`export.export_serving`).

`imported_rate=0` gives the neon scheme whatever the method. Every choice and its default is a
field of `FineTuneConfig`: pass one as `config=`, or its fields as keywords.

**Devices and precision** (`fine_tuning.devices`): `distribution` runs steps 1 to 3 under a
`tf.distribute` strategy (by default a `MirroredStrategy` over the visible GPUs when there are
several; `batch_size` is then the global batch), and `precision="mixed_float16"` or
`"mixed_bfloat16"` builds the model in that Keras dtype policy (loss scaling for float16, the
softmax in float32, a float32 copy exported); the global policy is restored afterwards.

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
    FineTuneConfig,
)
from kerastransfer.fine_tuning.one_call import fine_tune
from kerastransfer.fine_tuning.report import FineTuneReport, FineTuneResult
from kerastransfer.fine_tuning.training import train_transfer_model
from kerastransfer.fine_tuning.transfer_model import build_transfer_model, target_input_shape

__all__ = [
    "DEFAULT_IMPORTED_RATE",
    "METHODS",
    "FineTuneConfig",
    "FineTuneReport",
    "FineTuneResult",
    "build_transfer_model",
    "fine_tune",
    "target_input_shape",
    "train_transfer_model",
]
