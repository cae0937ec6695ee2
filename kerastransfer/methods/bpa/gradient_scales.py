"""`GradientScales`: the multipliers BPA applies to the gradients of each filter's parameters.

Every variable holding a slice that a filter of a split layer owns (`channel_slices`) gets one
non-trainable multiplier, broadcastable to the variable: Gamma_k on the entries filter k owns (the
product where filters of two split layers own the same entry), 1 elsewhere. The multipliers are
recomputed whenever Gamma changes (`update`), so that a training step costs one multiply per
affected gradient (Shahriari 2017, "Distributed Deep Transfer Learning by Basic Probability
Assignment", Eq. 9).
"""

import keras
import numpy as np
import tensorflow as tf

from kerastransfer.methods.bpa.channel_slices import channel_slices


class GradientScales:
    """The gradient multipliers of the filters of `layers`, split layers of `model`.

    Args:
        holder: the layer the multipliers are created on (`add_weight`), so that they are saved
            and restored with it (a `BPAModel`).
        model: the functional model the split layers belong to.
        layers: the split `Conv2D` layers (layer objects); Gamma values come in this order.

    Attributes:
        unscaled: paths of the variables that read a split channel only after it was mixed
            with no per-filter slice (their gradients are left as they are).
    """

    def __init__(self, holder, model, layers):
        groups, unscaled = {}, {}
        for i, layer in enumerate(layers):
            owned, left = channel_slices(model, layer)
            for variable, owner in owned:
                groups.setdefault(id(variable), (variable, []))[1].append((i, owner))
            unscaled.update((id(v), v) for v in left)
        # (variable, its multiplier, [(split layer index, owner array)])
        self.entries = [
            (
                variable,
                holder.add_weight(
                    shape=np.broadcast_shapes(*(owner.shape for _, owner in members)),
                    initializer="ones",
                    trainable=False,
                    name=f"gamma_scale_{variable.path.replace('/', '_')}",
                ),
                members,
            )
            for variable, members in groups.values()
        ]
        self.unscaled = [v.path for v in unscaled.values()]

    def update(self, gammas):
        """Sets every multiplier from `gammas`, one array (d,) per split layer."""
        for _, multiplier, members in self.entries:
            scale = np.ones(multiplier.shape, dtype="float32")
            for i, owner in members:
                scale = scale * np.where(owner >= 0, gammas[i][np.maximum(owner, 0)], 1.0)
            multiplier.assign(scale.astype("float32"))

    def values(self):
        """dict variable path -> the multiplier applied to its gradient (NumPy)."""
        return {v.path: np.asarray(keras.ops.convert_to_numpy(m)) for v, m, _ in self.entries}

    def __call__(self, gradients, variables):
        """The gradients, each multiplied by its variable's multiplier (others unchanged)."""
        multipliers = {id(v): m for v, m, _ in self.entries}
        scaled = []
        for g, v in zip(gradients, variables):
            m = multipliers.get(id(v))
            if m is not None and g is not None:
                g = g * tf.cast(m.value, g.dtype)
            scaled.append(g)
        return scaled
