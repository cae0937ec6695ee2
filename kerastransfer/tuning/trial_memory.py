"""`TrialMemory`: give back what one trial's models held, so a search does not grow.

`keras.backend.clear_session()` alone does not free a trained model's graphs under TensorFlow
2.21: every optimizer step in graph mode all-reduces its gradients through
`ReplicaContext.all_reduce`, whose `tf.custom_gradient` registers a gradient function in
TensorFlow's global gradient registry ("CustomGradient-N") that is never removed. That function
holds symbolic tensors of the traced train step, so the whole `FuncGraph` (and the C++ graph
behind it) outlives the model: about 4 graphs and 14 MB per trial on a small CNN, 60 MB per
trial on MobileNetV2 (tensorflow/tensorflow#80895, keras-team/tf-keras#286; the fix proposed
upstream, keras-team/tf-keras#898, purges these entries in `clear_session`).

`TrialMemory` does that purge for the entries registered inside its block only (entries that
existed before, such as a user's own `tf.custom_gradient` functions, are left alone), then
clears the Keras session, collects garbage and hands freed heap pages back to the operating
system (glibc `malloc_trim`), so that the resident size measures what the process still holds.
Use it around work whose graphs are not needed afterwards (a tuner trial, one run of a sweep).

Example:

>>> import keras, numpy as np
>>> with TrialMemory() as scope:
...     model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
...     model.compile("adam", "mse")
...     _ = model.fit(np.ones((8, 4)), np.ones((8, 2)), verbose=0)
...     del model
>>> scope.forgotten > 0
True
"""

import ctypes
import gc

import keras

from kerastransfer._internals import gradient_registry

_PREFIX = "CustomGradient-"


def live_graphs():
    """Number of TensorFlow `FuncGraph` objects alive in this process (traced functions)."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj).__name__ == "FuncGraph")


def release_memory():
    """Collect garbage and return freed heap pages to the operating system where glibc can."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class TrialMemory:
    """A block whose custom gradients are forgotten and whose Keras session is cleared on exit.

    Drop every reference to the block's models before it ends (`del model`): what is still
    referenced stays alive, as always. `forgotten` counts the registry entries removed.
    """

    def __init__(self, clear_session=True):
        self.clear_session = clear_session
        self.forgotten = 0
        self._before = None

    def __enter__(self):
        registry = gradient_registry()
        self._before = set(registry) if registry is not None else None
        return self

    def __exit__(self, *exc_info):
        registry = gradient_registry()
        if registry is not None and self._before is not None:
            new = [k for k in registry if k.startswith(_PREFIX) and k not in self._before]
            for key in new:
                del registry[key]
            self.forgotten = len(new)
        if self.clear_session:
            keras.backend.clear_session()
        release_memory()
        return False
