"""`spottune_optimizer`: the policy network's own learning rate, as a `MultiOptimizer` map.

Guo et al. (2019) train the network with SGD at 0.1 and the policy at 0.01. Here the policy's
variables are matched by the names of its layers (`kerastransfer.optimizers.layer_pattern`, which
survives a `.keras` reload) and given `policy_optimizer`; everything else gets
`network_optimizer`. The result is a `kerastransfer.optimizers.ScaledMultiOptimizer`: Keras's
`ReduceLROnPlateau` multiplies both rates by its factor (their ratio stays above its `min_lr`), a
`LearningRateScheduler` gets each rate in turn (a schedule relative to the rate it receives keeps
the ratio), and setting `learning_rate` (a warm-up, `LRFinder`) rescales both.

Example:

>>> from kerastransfer.methods.spottune.spottune_model import SpotTuneModel
>>> inputs = keras.Input((6, 3))
>>> x = keras.layers.LSTM(4, name="lstm_a")(inputs)
>>> model = SpotTuneModel.from_model(keras.Model(inputs, keras.layers.Dense(2)(x)))
>>> {o.name: round(float(o.learning_rate), 4) for o in spottune_optimizer(model).optimizers}
{'policy': 0.01, 'network': 0.1}
"""

import re

import keras
from keras.optimizers import OptimizerMap

from kerastransfer.optimizers import ScaledMultiOptimizer, layer_pattern


def _sgd(learning_rate, name):
    return keras.optimizers.SGD(learning_rate, momentum=0.9, name=name)


def spottune_optimizer(model, network_optimizer=None, policy_optimizer=None):
    """A `ScaledMultiOptimizer`: `policy_optimizer` for the policy, `network_optimizer` else.

    Args:
        model: a `SpotTuneModel`.
        network_optimizer: default SGD(0.1, momentum 0.9), as the authors.
        policy_optimizer: default SGD(0.01, momentum 0.9), as the authors.
    """
    names = [
        layer.name
        for layer in model.policy.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    pattern = layer_pattern(names)
    clashes = sorted(
        v.path for v in model.network.trainable_variables if re.fullmatch(pattern, v.path)
    )
    if clashes:
        raise ValueError(
            f"Policy layer names {names} also name network variables {clashes[:3]}: give the "
            f"policy's layers unique names (the built-in policies use the prefix "
            f"'spottune_policy')."
        )
    network_optimizer = network_optimizer or _sgd(0.1, "network")
    policy_optimizer = policy_optimizer or _sgd(0.01, "policy")
    return ScaledMultiOptimizer(OptimizerMap(network_optimizer, {pattern: policy_optimizer}))
