"""The private parts of Keras, TensorFlow, keras-tuner and keras-hub that the package reads, one
function each.

Nothing else in the package touches a private name of these libraries (nor imports `keras.src` or
`tensorflow.python`): it calls the function here. Each function has a canary in
`tests/test_internals.py` that fails when the pinned version (Keras 3.15, TensorFlow 2.21,
keras-tuner 1.4, keras-hub 0.32) changes what the function relies on. None has a public
equivalent there:

- `functional_graph`: the functional graph a built `Sequential` keeps (`Sequential._functional`).
  A public copy (`keras.Model(model.inputs, model.outputs)`) would be a second model per call.
- `nodes_by_depth`: the nodes of a functional graph, one per layer call
  (`Functional._nodes_by_depth`). `Model.layers` lists layers, not calls; the node view of
  `kerastransfer.models.graph` needs the calls (`node.operation`, `node.arguments`,
  `node.input_tensors`, `node.output_tensors`: public attributes of Keras's `Node`, a class Keras
  does not export).
- `last_call_outputs`: the outputs of a layer's last call (`Operation._inbound_nodes`). For a
  nested model `Layer.output` is the output of its own inner graph, not of its call in the outer
  model.
- `producing_layer`: the layer whose call made a symbolic tensor (`KerasTensor._keras_history`).
- `keras_mask`: the Keras mask of a symbolic tensor (the `_keras_mask` attribute; Keras's own
  reader, `get_keras_mask`, is not exported).
- `loss_tracker`: the `Mean` metric behind a compiled model's `loss` log (`Trainer._loss_tracker`),
  which a custom `train_step` updates as Keras's own `train_step` does.
- `gradient_registry`: TensorFlow's registry of gradient functions
  (`tensorflow.python.framework.ops._gradient_registry._registry`), from which `TrialMemory`
  removes the custom gradients that TensorFlow 2.21 never removes.
- `write_tuner_state_atomically`: keras-tuner writes its state files (the oracle's, each
  trial's, the tuner's) in place with `keras_tuner.src.utils.save_json`, which the oracle, trial
  and tuner classes look up at each call; it is replaced by a writer that writes a temporary file
  and renames it over the old one, so a kill never leaves a file cut short.
- `tuner_checkpoint_path`: the file keras-tuner's `Tuner.load_model` reads a trial's weights from
  (`Tuner._get_checkpoint_fname`).
- `set_initial_epoch`: the epoch `fit` starts from, set by a callback in `on_train_begin`
  (`Trainer._initial_epoch`, what `keras.callbacks.BackupAndRestore` sets). `fit(initial_epoch=)`
  is public but chosen before the callbacks run, and a callback given to a user's `fit` must
  resume it.
- `keras_archive_problem`: the `.keras` file layout (a zip archive holding `config.json`), to say
  what is wrong with a file before `keras.models.load_model` fails on it.
- `hub_backbone_class`: the backbone class of a KerasHub preset, read from its `config.json`
  without building the model (`keras_hub.src.utils.preset_utils.get_preset_loader`, the first
  step of `Backbone.from_preset`; keras-hub 0.32). `from_preset` would build it: minutes and
  gigabytes for a large text backbone given by mistake. `HUB_PRESET_CONFIG` is the file that
  makes a folder a preset.
"""

import zipfile

import keras

KERAS_ARCHIVE_CONFIG = "config.json"  # the model's configuration inside a `.keras` archive
HUB_PRESET_CONFIG = "config.json"  # the backbone's configuration in a KerasHub preset


def functional_graph(model):
    """The functional graph of `model`: `model` itself when it is functional, the graph a built
    `keras.Sequential` keeps, else `None` (a subclassed model, an unbuilt `Sequential`)."""
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    return graph if hasattr(graph, "_nodes_by_depth") else None


def nodes_by_depth(graph):
    """`{depth: [node, ...]}` of a functional graph (`functional_graph`); depth 0 holds the
    nodes of the outputs, the largest depth those of the inputs."""
    return graph._nodes_by_depth


def last_call_outputs(layer):
    """The output tensors (a list) of the last call of `layer` on symbolic tensors."""
    return list(layer._inbound_nodes[-1].output_tensors)


def producing_layer(tensor):
    """The layer (an `Operation`: `InputLayer` for an input) whose call made the symbolic
    `tensor`."""
    return tensor._keras_history.operation


def keras_mask(tensor):
    """The Keras mask that travels with the symbolic `tensor`, or `None`."""
    return getattr(tensor, "_keras_mask", None)


def loss_tracker(model):
    """The `keras.metrics.Mean` metric that a compiled `model` reports as `loss`."""
    return model._loss_tracker


def gradient_registry():
    """TensorFlow's registry of gradient functions (a dict, name -> function), or `None` when
    this TensorFlow keeps it elsewhere (then `TrialMemory` purges nothing)."""
    try:
        from tensorflow.python.framework import ops
    except ImportError:
        return None
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


def set_initial_epoch(model, epoch):
    """Makes the running `model.fit` continue at `epoch` (call it from `on_train_begin`); None
    lets the next `fit` start where its `initial_epoch` says (Keras never clears it)."""
    model._initial_epoch = None if epoch is None else int(epoch)


def write_tuner_state_atomically():
    """Makes keras-tuner write its JSON state files atomically (see the module). Idempotent."""
    import json
    import os

    from keras_tuner.src import utils

    if getattr(utils.save_json, "writes_atomically", False):
        return

    def save_json(path, obj):
        text = json.dumps(obj)
        partial = f"{path}.partial"
        with open(partial, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
        return text

    save_json.writes_atomically = True
    utils.save_json = save_json


def tuner_checkpoint_path(tuner, trial_id):
    """The file `tuner.load_model` (a `keras_tuner.Tuner`) reads trial `trial_id`'s weights from."""
    return tuner._get_checkpoint_fname(trial_id)


def keras_archive_problem(path):
    """Why the file at `path` is not a `.keras` archive, in a few words; `None` when it is a zip
    archive holding the model's configuration (what `keras.models.load_model` opens first)."""
    if not zipfile.is_zipfile(path):
        return "it is not a zip archive (truncated or corrupt download, or another format)"
    with zipfile.ZipFile(path) as archive:
        if KERAS_ARCHIVE_CONFIG not in archive.namelist():
            return f"the zip archive has no {KERAS_ARCHIVE_CONFIG}"
    return None


def hub_backbone_class(preset):
    """The `keras_hub.models.Backbone` subclass that KerasHub preset `preset` (a folder or a
    `kaggle://` / `hf://` handle, fetched) holds, from its configuration alone."""
    from keras_hub.src.utils.preset_utils import get_preset_loader

    return get_preset_loader(preset).check_backbone_class()
