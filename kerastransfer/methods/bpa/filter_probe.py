"""`FilterProbe`: counts the confusion matrices of the d single-filter networks of a split layer.

Two exact pass strategies share this base; both compute everything below the split layer once per
batch and differ in how they run the d masked networks above it:

- `SeparablePassProbe` (`separable_pass.py`): when the split layer reaches a `Conv2D` through
  per-channel layers only, the next convolution runs once for all d masks.
- `TilePassProbe` (`tile_pass.py`): any graph; the part above the split runs once on the d masked
  copies of the batch, stacked.

`filter_probe(model, layer)` picks the first that applies (`method="auto"`).
"""

import tensorflow as tf

from kerastransfer.methods.bpa.split_layers import check_functional, resolve_split_layers, split_node

PASS_METHODS = ("auto", "separable", "tile")


class FilterProbe:
    """Base of the pass strategies: validation, labels, counting; subclasses run the passes.

    Args:
        model: a functional model with one output of class scores (probabilities or logits,
            shape `(batch, C)` with C >= 2).
        layer: the split `Conv2D` layer.
        masks_per_pass: filters per call of the upper part (default: all d). Lower it to bound
            memory: the upper part sees `masks_per_pass * batch` samples at once.
    """

    method = None

    def __init__(self, model, layer, masks_per_pass=None):
        check_functional(model)
        if len(model.outputs) != 1:
            raise ValueError(
                f"Gamma needs a model with one output of class scores; model '{model.name}' has "
                f"{len(model.outputs)} outputs."
            )
        num_classes = model.outputs[0].shape[-1]
        if len(model.outputs[0].shape) != 2 or num_classes is None or num_classes < 2:
            raise ValueError(
                "Gamma needs class scores of shape (batch, C) with C >= 2 (softmax probabilities "
                f"or logits). Received output shape: {model.outputs[0].shape}"
            )
        if layer.data_format != "channels_last":
            raise ValueError(
                f"Split layer '{layer.name}' uses data_format={layer.data_format!r}; only "
                "'channels_last' is supported."
            )
        self.model = model
        self.layer = layer
        self.num_filters = layer.filters
        self.num_classes = int(num_classes)
        if masks_per_pass is None:
            masks_per_pass = self.num_filters
        if not isinstance(masks_per_pass, int) or masks_per_pass < 1:
            raise ValueError(
                f"`masks_per_pass` must be a positive integer. Received: {masks_per_pass!r}"
            )
        self.masks_per_pass = min(masks_per_pass, self.num_filters)
        self.split_tensor = split_node(model, layer).output_tensors[0]
        self._step = tf.function(self.batch_confusions)

    def labels(self, y):
        """Integer class ids of a batch of labels (sparse or one-hot), flattened to (batch,)."""
        y = tf.convert_to_tensor(y)
        if y.shape.rank == 2 and y.shape[-1] == self.num_classes and self.num_classes > 1:
            y = tf.argmax(y, axis=-1)  # one-hot
        return tf.cast(tf.reshape(y, [-1]), tf.int32)

    def count(self, labels, scores, n, batch):
        """(n, C, C) confusion matrices of n masked networks whose scores are stacked by mask."""
        preds = tf.reshape(tf.argmax(scores, axis=-1, output_type=tf.int32), [n, batch])
        return tf.map_fn(
            lambda p: tf.math.confusion_matrix(
                labels, p, num_classes=self.num_classes, dtype=tf.int32
            ),
            preds,
            fn_output_signature=tf.TensorSpec([self.num_classes] * 2, tf.int32),
        )

    def mask_chunks(self):
        """(start, n) of each group of masks run together."""
        d, k = self.num_filters, self.masks_per_pass
        return [(start, min(k, d - start)) for start in range(0, d, k)]

    def batch_confusions(self, x, y):
        """(d, C, C) int32 confusion matrices of the d single-filter networks on one batch."""
        raise NotImplementedError

    def confusions(self, x, y):
        """Per-filter confusion matrices of one batch; traceable (call it inside `strategy.run`)."""
        return self._step(x, y)


def filter_probe(model, layer, masks_per_pass=None, method="auto"):
    """The probe of split layer `layer` (a `Conv2D` or its name) of `model`.

    Args:
        method: `"auto"` (separable where the graph allows it, else tile), `"separable"` (a
            ValueError if the graph does not allow it) or `"tile"`.

    Example:

    >>> import keras
    >>> inputs = keras.Input((8, 8, 1))
    >>> x = keras.layers.Conv2D(3, 3, name="conv1")(inputs)
    >>> x = keras.layers.Conv2D(2, 3, name="conv2")(keras.layers.ReLU()(x))
    >>> outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    >>> filter_probe(keras.Model(inputs, outputs), "conv1").method
    'separable'
    """
    from kerastransfer.methods.bpa.separable_pass import SeparablePassProbe, separable_plan
    from kerastransfer.methods.bpa.tile_pass import TilePassProbe

    if method not in PASS_METHODS:
        raise ValueError(f"`method` must be one of {PASS_METHODS}. Received: method={method!r}")
    if isinstance(layer, str):
        (layer,) = resolve_split_layers(model, layer)
    check_functional(model)
    plan = separable_plan(model, layer) if method != "tile" else None
    if plan is not None:
        return SeparablePassProbe(model, layer, masks_per_pass, plan=plan)
    if method == "separable":
        raise ValueError(
            f"Split layer '{layer.name}' is not followed, through per-channel layers only, by "
            "a Conv2D that alone leads to the output: use method='tile' or 'auto'."
        )
    return TilePassProbe(model, layer, masks_per_pass)
