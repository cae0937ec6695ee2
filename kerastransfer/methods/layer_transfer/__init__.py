"""Layer transfer: retain the bottom n levels of a trained source LeNet-5, fixed.

After Gutstein, Fuentes and Freudenthal, "Knowledge transfer in deep convolutional neural nets"
(2008): a LeNet-5 variant (`kerastransfer.models.lenet.lenet5`) is trained on one set of
classes; a new net then learns a different set of classes with its bottom n levels (C1, S2, C3,
S4, C5: n = 0..5) copied from the source and kept fixed, from k training samples per class,
repeated over trials. Classes are target codes of +-1 values, one-of-N (`"onehot"`) or random
20-bit codes (`"random20"`, the paper's), learned with a squared error; a prediction is the
class whose code is nearest to the output:

    loss = mean_i ||f(x_i) - c_{y_i}||^2,    prediction(x) = argmin_k ||f(x) - c_k||^2

Example (tiny settings):

>>> source, report = train_source("embedded:mnist", classes=[0, 1, 2, 3, 4], epochs=1)
>>> rows = layer_transfer_sweep(source, "embedded:mnist", target_classes=[5, 6, 7, 8, 9],
...                             levels=[0, 4], samples_per_class=[5], trials=1, epochs=2)
>>> [(r["retained"], r["samples_per_class"], r["trial"]) for r in rows]
[(0, 5, 0), (4, 5, 0)]
"""

from kerastransfer.methods.layer_transfer.codes import (
    CODES,
    code_accuracy,
    decode,
    make_codes,
)
from kerastransfer.methods.layer_transfer.source_net import (
    IMAGE_SHAPE,
    MAX_RETAINED,
    SourceReport,
    check_retained,
    coded,
    compile_code_model,
    load_lenet_data,
    split_arrays,
    train_source,
    trainable_free_parameters,
    transfer_lenet,
)
from kerastransfer.methods.layer_transfer.sweep import (
    LevelRunner,
    available_per_class,
    check_sweep_args,
    layer_transfer_sweep,
    training_steps,
)

__all__ = [
    "CODES",
    "IMAGE_SHAPE",
    "LevelRunner",
    "MAX_RETAINED",
    "SourceReport",
    "available_per_class",
    "check_retained",
    "check_sweep_args",
    "code_accuracy",
    "coded",
    "compile_code_model",
    "decode",
    "layer_transfer_sweep",
    "load_lenet_data",
    "make_codes",
    "split_arrays",
    "train_source",
    "trainable_free_parameters",
    "training_steps",
    "transfer_lenet",
]
