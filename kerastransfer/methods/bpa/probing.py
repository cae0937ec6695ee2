"""`FilterProbe`: counts the confusion matrices of the d single-filter networks of a split layer.

Two exact pass strategies share this base; both compute everything below the split layer once per
batch and differ in how they run the d masked networks above it:

- `SeparablePassProbe` (`separable_pass.py`): when the split layer reaches a `Conv2D` through
  per-channel layers only, the next convolution runs once for all d masks.
- `TilePassProbe` (`tile_pass.py`): any graph; the part above the split runs once on the d masked
  copies of the batch, stacked.

`filter_probe(model, layer)` picks the first that applies (`method="auto"`).

Exactness. In float32 both strategies count the same confusion matrices as the naive d full
passes (tests: small_cnn, depthwise, separable, grouped and residual-Add graphs, Dense after
Flatten or global pooling, MobileNetV2). Under `mixed_bfloat16` "exact" means: the tile pass
computes the same bfloat16 operations as a full pass and agreed on every prediction; the separable
pass reorders the next convolution's sums (conv(E) + depthwise(P - E)) and rounds differently in
bfloat16. Measured on small_cnn (conv1, d=20, 1000 MNIST images, 20000 predictions): tile 100%
of predictions equal to the naive passes (Gamma identical); separable 99.995% (1 prediction
differed; largest Gamma difference 0.008 for `gamma="paper"`, 0.002 for `"agreement"`). Use
`method="tile"` where bit-for-bit agreement with full bfloat16 passes matters.
"""

import tensorflow as tf

from kerastransfer.methods.bpa.split_layers import (
    check_functional,
    flat_view,
    resolve_split_layers,
    split_node,
)

PASS_METHODS = ("auto", "separable", "tile")
NONFINITE_SCORES = (
    "Non-finite values (NaN or inf) in the images or class scores of the masked passes"
)


def assert_finite_inputs(x, message):
    """`x` (a structure of tensors), its floating tensors checked for NaN/inf when run."""
    return tf.nest.map_structure(
        lambda t: tf.debugging.assert_all_finite(t, message) if t.dtype.is_floating else t,
        tf.nest.map_structure(tf.convert_to_tensor, x),
    )


class FilterProbe:
    """Base of the pass strategies: validation, labels, counting; subclasses run the passes.

    Args:
        model: a functional model with one output of class scores (probabilities or logits,
            shape `(batch, C)` with C >= 2). Nested functional models are inlined
            (`split_layers.flat_view`): the probe runs the model's own layers and variables.
        layer: the split `Conv2D` layer (a layer object of `model`, nested ones included).
        masks_per_pass: filters per call of the upper part (default: all d). Lower it to bound
            memory: the upper part sees `masks_per_pass * batch` samples at once.
    """

    method = None

    def __init__(self, model, layer, masks_per_pass=None):
        check_functional(model)
        model = flat_view(model)
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
        self._steps = {}  # one traced function per (x, y) signature, batch size left open

    def labels(self, y):
        """Integer class ids of a batch of labels (sparse or one-hot), flattened to (batch,)."""
        y = tf.convert_to_tensor(y)
        if y.shape.rank == 2 and y.shape[-1] == self.num_classes and self.num_classes > 1:
            y = tf.argmax(y, axis=-1)  # one-hot
        return tf.cast(tf.reshape(y, [-1]), tf.int32)

    def count(self, labels, scores, n, batch):
        """(n, C, C) confusion matrices of n masked networks whose scores are stacked by mask.

        Raises (at run time) where a score is NaN or infinite: argmax would count it silently.
        """
        scores = tf.debugging.assert_all_finite(scores, NONFINITE_SCORES)
        preds = tf.reshape(tf.argmax(scores, axis=-1, output_type=tf.int32), [n, batch])
        # counts[k, i, j] = sum_b [label_b = i][pred_kb = j]: one contraction for all n masks.
        predicted = tf.one_hot(preds, self.num_classes, dtype=tf.float32)
        true = tf.one_hot(labels, self.num_classes, dtype=tf.float32)
        return tf.cast(tf.einsum("bi,nbj->nij", true, predicted), tf.int32)

    def mask_chunks(self):
        """(start, n) of each group of masks run together."""
        d, k = self.num_filters, self.masks_per_pass
        return [(start, min(k, d - start)) for start in range(0, d, k)]

    def batch_confusions(self, x, y):
        """(d, C, C) int32 confusion matrices of the d single-filter networks on one batch."""
        raise NotImplementedError

    def _checked_confusions(self, x, y):
        return self.batch_confusions(assert_finite_inputs(x, NONFINITE_SCORES), y)

    def confusions(self, x, y):
        """Per-filter confusion matrices of one batch; traceable (call it inside `strategy.run`).

        Traced once per dtype and rank of `(x, y)`, with the batch size left open: a last,
        smaller batch does not trace the d masked passes again.
        """
        specs = tf.nest.map_structure(
            lambda t: tf.TensorSpec([None] + list(t.shape[1:]), t.dtype),
            (tf.nest.map_structure(tf.convert_to_tensor, x), tf.convert_to_tensor(y)),
        )
        key = str(specs)
        if key not in self._steps:
            self._steps[key] = tf.function(self._checked_confusions, input_signature=specs)
        return self._steps[key](x, y)


def filter_probe(model, layer, masks_per_pass=None, method="auto"):
    """The probe of split layer `layer` (a `Conv2D`, its name or its path in nested models).

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
    model = flat_view(model)
    plan = separable_plan(model, layer) if method != "tile" else None
    if plan is not None:
        return SeparablePassProbe(model, layer, masks_per_pass, plan=plan)
    if method == "separable":
        raise ValueError(
            f"Split layer '{layer.name}' is not followed, through per-channel layers only, by "
            "a Conv2D that alone leads to the output: use method='tile' or 'auto'."
        )
    return TilePassProbe(model, layer, masks_per_pass)
