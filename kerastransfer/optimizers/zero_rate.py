"""`ZeroRate`: a learning rate pinned at 0, whatever a callback sets."""

import warnings

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="kerastransfer")
class ZeroRate:
    """A learning rate pinned at 0: the rate of layers imported and kept bit-identical.

    Keras's learning-rate callbacks (`LearningRateScheduler`, `ReduceLROnPlateau`) set each
    sub-optimizer's rate with `optimizer.learning_rate = value`; on a callable rate that calls
    `assign`. Here a non-zero value is refused with a warning and the rate stays 0, so an absolute
    schedule never starts training the imported layers. To train them, build a map without them.

    >>> opt = keras.optimizers.SGD(learning_rate=ZeroRate(), name="imported_lr0")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     opt.learning_rate = 0.01
    >>> float(opt.learning_rate)
    0.0
    """

    def __call__(self):
        return 0.0

    def assign(self, value):
        value = float(np.asarray(keras.ops.convert_to_numpy(value)))
        if value != 0.0:
            warnings.warn(
                f"Ignoring a request to set a rate-0 group (imported layers) to {value:g}: it "
                "stays 0 so the imported weights stay as imported. To train those layers, build "
                "an optimizer map without them.",
                UserWarning,
                stacklevel=2,
            )

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
