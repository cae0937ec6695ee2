"""The domain classifier of adversarial domain adaptation, shared by the adversarial methods.

`domain_discriminator` builds the stack `DANNModel` uses (Ganin and Lempitsky 2015): Flatten,
then hidden ReLU `Dense` layers each followed by dropout, then one float32 logit (source = 1,
target = 0); layers named `domain_*`, so a per-layer optimizer map can address them.
`CDANModel` puts it on the multilinear map of features and predictions.

Example:

>>> discriminator = domain_discriminator((None, 8), units=(4,), dropout=0.5)
>>> [layer.name for layer in discriminator.layers]
['domain_flatten', 'domain_hidden0', 'domain_dropout0', 'domain_logit']
>>> keras.ops.convert_to_numpy(domain_labels(2, 1)).ravel().tolist()
[1.0, 1.0, 0.0]
"""

import keras
from keras import layers, ops


def check_discriminator(units, dropout):
    """`(tuple of widths, float dropout)`, or the errors `DANNModel` gives."""
    units = [int(u) for u in units]
    if any(u < 1 for u in units):
        raise ValueError(f"`discriminator_units` must be positive. Received: {units}")
    if not 0 <= dropout < 1:
        raise ValueError(f"`discriminator_dropout` must be in [0, 1). Received: {dropout}")
    return tuple(units), float(dropout)


def domain_discriminator(
    input_shape, units=(500, 500), dropout=0.5, batch_norm=False, name="domain_classifier"
):
    """A built `keras.Sequential` domain classifier ending in one logit.

    Args:
        input_shape: the shape it reads, batch axis included (e.g. `(None, 2048)`).
        units: hidden ReLU layer widths (default (500, 500), DANN's).
        dropout: dropout after each hidden layer, in [0, 1) (default 0.5).
        batch_norm: `BatchNormalization` between each hidden layer and its ReLU (default
            False), as in Transfer-Learning-Library's `DomainDiscriminator`.
        name: the model's name.
    """
    units, dropout = check_discriminator(units, dropout)
    stack = [layers.Flatten(name="domain_flatten")]
    for i, u in enumerate(units):
        if batch_norm:
            stack.append(layers.Dense(u, name=f"domain_hidden{i}"))
            stack.append(layers.BatchNormalization(name=f"domain_batch_norm{i}"))
            stack.append(layers.ReLU(name=f"domain_relu{i}"))
        else:
            stack.append(layers.Dense(u, activation="relu", name=f"domain_hidden{i}"))
        if dropout:
            stack.append(layers.Dropout(dropout, name=f"domain_dropout{i}"))
    stack.append(layers.Dense(1, dtype="float32", name="domain_logit"))
    discriminator = keras.Sequential(stack, name=name)
    discriminator.build(tuple(input_shape))
    return discriminator


def domain_labels(num_source, num_target):
    """`(num_source + num_target, 1)` float32 domain labels: ones, then zeros."""
    return ops.concatenate(
        [ops.ones((num_source, 1), "float32"), ops.zeros((num_target, 1), "float32")], axis=0
    )
