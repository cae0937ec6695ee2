"""`fold_blocks`: replace SpotTune blocks whose policy always picks one copy by that plain copy.

When, on a validation set, the policy chooses the same copy of block l for every input, the other
copy is dead weight at serving time. Folding keeps only the chosen copy (a plain block, no routing)
and drops the other. If every block folds, the policy goes too and the result is a plain
functional model. For inputs like the validation set the folded model answers exactly as the
SpotTune model; an input on which the policy would have chosen differently gets the folded
choice instead, which is the trade made for the smaller export.

Example:

>>> from kerastransfer.methods.spottune.spottune_model import SpotTuneModel
>>> inputs = keras.Input((6, 3))
>>> x = keras.layers.LSTM(4, name="lstm_a")(inputs)
>>> model = SpotTuneModel.from_model(keras.Model(inputs, keras.layers.Dense(2)(x)))
>>> folded, report = fold_blocks(model, np.zeros((4, 6, 3), "float32"))
>>> list(report["folded"]), report["bytes_saved"] > 0
(['lstm_a'], True)
"""

import keras
import numpy as np

from kerastransfer.methods.spottune.network import replay_layers
from kerastransfer.methods.spottune.spottune_block import SpotTuneBlock
from kerastransfer.methods.spottune.spottune_model import SpotTuneModel
from kerastransfer.methods.spottune.usage import policy_usage
from kerastransfer.models.graph import replay


def _bytes(model):
    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.weights))


def _clone(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def fold_blocks(model, data, batch_size=64):
    """Fold the blocks of `model` whose argmax decision is constant over `data`.

    Args:
        model: a `SpotTuneModel`.
        data: validation inputs (array, `(inputs, labels)` or a batched `tf.data.Dataset`).

    Returns:
        `(folded, report)`: `folded` is a new `SpotTuneModel` (or a plain functional model when
        every block folds) sharing no weights with `model`; `report` holds `folded`
        {block: "frozen" | "tuned"}, `kept` (routed blocks), `params_before`, `params_after`,
        `bytes_before`, `bytes_after` and `bytes_saved`.
    """
    if not isinstance(model, SpotTuneModel):
        raise ValueError(f"`model` must be a SpotTuneModel. Received: {type(model).__name__}")
    decisions = policy_usage(model, data, batch_size)["decisions"]
    choice = {}
    for block, column in zip(model.blocks, decisions.T):
        if column.min() == column.max():
            choice[block.name] = "tuned" if column[0] == 1 else "frozen"
    network = model.network
    inputs, decision_input = network.inputs
    tensors = {id(inputs): keras.Input(inputs.shape[1:], dtype=inputs.dtype, name="inputs")}
    new_decisions = keras.Input(decision_input.shape[1:], name="decisions")
    tensors[id(decision_input)] = new_decisions

    def call(layer, inputs):
        if not (isinstance(layer, SpotTuneBlock) and layer.name in choice):
            return layer(inputs)
        branch = layer.tuned if choice[layer.name] == "tuned" else layer.frozen
        # Inline the branch's layers (Keras masks flow through them as in the source model).
        inner = {id(branch.inputs[0]): inputs[0]}
        replay_layers(branch, {sub.name for sub in branch.layers}, inner)
        return inner[id(branch.outputs[0])]

    replay(network, tensors, call)
    outputs = tensors[id(network.output)]
    all_folded = len(choice) == model.num_blocks
    if all_folded:
        folded = _clone(keras.Model(tensors[id(inputs)], outputs, name=f"{model.name}_folded"))
    else:
        net = _clone(
            keras.Model(
                [tensors[id(inputs)], new_decisions], outputs, name=f"{network.name}_folded"
            )
        )
        folded = SpotTuneModel(
            net,
            _clone(model.policy),
            model.temperature,
            model.budget,
            model.seed,
            name=f"{model.name}_folded",
        )
    before, after = _bytes(model), _bytes(folded)
    return folded, {
        "folded": {name.removeprefix("spottune_"): c for name, c in choice.items()},
        "kept": [b for b in model.block_names if f"spottune_{b}" not in choice],
        "params_before": int(model.count_params()),
        "params_after": int(folded.count_params()),
        "bytes_before": before,
        "bytes_after": after,
        "bytes_saved": before - after,
    }
