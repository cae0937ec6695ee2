"""`FilterProbe`: counts the confusion matrices of the d single-filter networks of a split layer.

The base of the two pass strategies (`SeparablePassProbe` in `separable_pass.py`, `TilePassProbe`
in `tile_pass.py`): validation of the model and the split layer, labels, counting and the traced
step; subclasses run the d masked networks (`batch_confusions`). `probing.filter_probe` picks the
strategy for a split layer.
"""

import tensorflow as tf

from kerastransfer.methods.bpa.split_layers import check_functional, split_node
from kerastransfer.models.graph import flat_view

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
            (`kerastransfer.models.graph.flat_view`): the probe runs the model's own layers and
            variables.
        layer: the split `Conv2D` layer (a layer object of `model`, nested ones included).
        masks_per_pass: filters per call of the upper part (default: all d). Lower it to bound
            memory: the upper part sees `masks_per_pass * batch` samples at once.
    """

    pass_strategy = None  # "separable" or "tile"

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
