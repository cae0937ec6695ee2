"""`TilePassProbe`: the d single-filter networks of any graph, as one stacked pass.

The split activation is tiled to d x batch, each copy multiplied by a one-hot channel mask, and the
whole part of the model above the split layer runs once on the stack (tensors that skip over the
split layer are tiled along).
"""

import keras
import tensorflow as tf

from kerastransfer.methods.bpa.base_probe import FilterProbe
from kerastransfer.models.graph import frontier


class TilePassProbe(FilterProbe):
    """Runs the masked networks by tiling the batch; works on any functional graph.

    Args: see `FilterProbe`.
    """

    pass_strategy = "tile"

    def __init__(self, model, layer, masks_per_pass=None):
        super().__init__(model, layer, masks_per_pass)
        cut = [self.split_tensor] + frontier(model, self.split_tensor)
        self.below = keras.Model(model.inputs, cut, name=f"{layer.name}_below")
        self.above = keras.Model(cut, model.outputs[0], name=f"{layer.name}_above")

    def batch_confusions(self, x, y):
        labels = self.labels(y)
        split, *skips = tf.nest.flatten(self.below(x, training=False))
        batch = tf.shape(split)[0]
        eye = tf.eye(self.num_filters, dtype=split.dtype)
        counts = []
        for start, n in self.mask_chunks():
            masks = tf.reshape(
                eye[start : start + n], [n] + [1] * (split.shape.rank - 1) + [self.num_filters]
            )
            stacked_shape = tf.concat([[n * batch], tf.shape(split)[1:]], 0)
            stacked = tf.reshape(split[None] * masks, stacked_shape)
            tiled = [
                tf.tile(s, tf.concat([[n], tf.ones([s.shape.rank - 1], tf.int32)], 0))
                for s in skips
            ]
            scores = self.above([stacked] + tiled, training=False)
            counts.append(self.count(labels, scores, n, batch))
        return tf.concat(counts, axis=0)
