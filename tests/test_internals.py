"""Canaries for `kerastransfer._internals`: each test fails when the pinned Keras, TensorFlow,
keras-tuner or keras-hub changes the private part that one function of it reads."""

import json
import os
import pathlib
import re
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer import _internals
from kerastransfer._internals import (
    functional_graph,
    gradient_registry,
    hub_backbone_class,
    keras_archive_problem,
    keras_mask,
    last_call_outputs,
    loss_tracker,
    nodes_by_depth,
    producing_layer,
    set_initial_epoch,
    tuner_checkpoint_path,
    write_tuner_state_atomically,
)

PACKAGE = pathlib.Path(_internals.__file__).parent


def _mlp(name="mlp"):
    inputs = keras.Input((4,), name=f"{name}_in")
    x = keras.layers.Dense(3, name=f"{name}_hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name=f"{name}_out")(x), name=name)


def test_every_function_has_a_canary():
    own = _internals.__name__
    functions = {n for n, f in vars(_internals).items() if getattr(f, "__module__", "") == own}
    tested = {n.removeprefix("test_") for n in globals() if n.startswith("test_")}
    assert functions <= tested


def test_no_private_outside_internals():
    private = re.compile(
        r"keras\.src|tensorflow\.python|\"config\.json\"|[.'\"]_(nodes_by_depth|functional|"
        r"inbound_nodes|keras_history|keras_mask|loss_tracker|gradient_registry|"
        r"get_checkpoint_fname|try_build|optimizer_map|inner_optimizers|learning_rate)\b"
    )
    hits = [
        f"{path.relative_to(PACKAGE)}:{i}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_internals.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert hits == []


def test_functional_graph():
    model = _mlp()
    assert functional_graph(model) is model
    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="only")])
    assert isinstance(sequential._functional, keras.Model)
    graph = functional_graph(sequential)
    assert graph is sequential._functional
    assert graph.layers[1:] == sequential.layers  # the same layers, after an InputLayer
    assert functional_graph(keras.Sequential([keras.layers.Dense(2)])) is None  # not built

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    assert functional_graph(Subclassed()) is None


def test_nodes_by_depth():
    inputs = keras.Input((4,), name="x")
    shared = keras.layers.Dense(4, name="shared")
    model = keras.Model(inputs, shared(shared(inputs)))
    assert isinstance(model._nodes_by_depth, dict)
    by_depth = nodes_by_depth(model)
    assert sorted(by_depth) == [0, 1, 2]  # depth 0: the outputs' node; the largest: the inputs'
    (out_node,) = by_depth[0]
    (in_node,) = by_depth[2]
    assert isinstance(in_node.operation, keras.layers.InputLayer)
    assert out_node.operation is shared  # a shared layer: one node per call
    assert [n.operation for n in by_depth[1]] == [shared]
    assert out_node.output_tensors[0] is model.outputs[0]
    assert out_node.input_tensors[0] is by_depth[1][0].output_tensors[0]
    args, kwargs = out_node.arguments.fill_in({id(out_node.input_tensors[0]): "filled"})
    assert args == ("filled",) and kwargs == {}


def test_last_call_outputs():
    inner = _mlp("inner")
    inputs = keras.Input((4,))
    called = inner(inputs)
    outer = keras.Model(inputs, keras.layers.Dense(1, name="top")(called))
    assert [len(n.output_tensors) for n in inner._inbound_nodes] == [1]
    assert last_call_outputs(inner) == [called]
    assert inner.output is not called  # why the private: `.output` is the inner graph's
    assert last_call_outputs(outer.get_layer("top")) == [outer.outputs[0]]


def test_producing_layer():
    model = _mlp()
    assert model.outputs[0]._keras_history.operation is model.get_layer("mlp_out")
    assert producing_layer(model.outputs[0]) is model.get_layer("mlp_out")
    assert isinstance(producing_layer(model.inputs[0]), keras.layers.InputLayer)


def test_keras_mask():
    inputs = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(10, 3, mask_zero=True)(inputs)
    assert embedded._keras_mask is not None
    assert keras_mask(embedded) is embedded._keras_mask
    assert tuple(keras_mask(embedded).shape) == (None, 5)
    assert keras_mask(keras.layers.Dense(2)(inputs)) is None
    assert keras_mask(inputs) is None


def test_loss_tracker():
    model = _mlp()
    assert loss_tracker(model) is None  # created by `compile`
    model.compile("sgd", "mse")
    tracker = loss_tracker(model)
    assert isinstance(tracker, keras.metrics.Mean) and tracker.name == "loss"
    assert tracker is model.metrics[0]
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    loss = model.evaluate(x, y, verbose=0)
    assert float(tracker.result()) == pytest.approx(loss)


def test_gradient_registry():
    registry = gradient_registry()
    assert isinstance(registry, dict)

    @tf.custom_gradient
    def identity(x):
        return tf.identity(x), lambda dy: dy

    before = set(registry)
    tf.function(identity).get_concrete_function(tf.TensorSpec((), tf.float32))
    new = set(gradient_registry()) - before
    assert new and all(key.startswith("CustomGradient-") for key in new)
    for key in new:
        del registry[key]  # what TrialMemory does


def test_tuner_checkpoint_path(tmp_path):
    keras_tuner = pytest.importorskip("keras_tuner")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")

    def build(hp):
        model = _mlp()
        model.compile("sgd", "mse")
        return model

    class Tuner(keras_tuner.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            model = self.hypermodel.build(trial.hyperparameters)
            model.set_weights([np.full(w.shape, 0.5, w.dtype) for w in model.get_weights()])
            model.save_weights(tuner_checkpoint_path(self, trial.trial_id))
            return float(model.evaluate(x, y, verbose=0))

    oracle = keras_tuner.oracles.RandomSearchOracle(keras_tuner.Objective("loss", "min"), 1)
    tuner = Tuner(oracle=oracle, hypermodel=build, directory=str(tmp_path), project_name="p")
    tuner.search(verbose=0)
    (trial,) = tuner.oracle.get_best_trials(1)
    path = tuner_checkpoint_path(tuner, trial.trial_id)
    assert path == tuner._get_checkpoint_fname(trial.trial_id)
    assert path.startswith(tuner.get_trial_dir(trial.trial_id)) and path.endswith(".weights.h5")
    (best,) = tuner.get_best_models(1)  # `Tuner.load_model` reads `path`
    assert all(np.all(w == 0.5) for w in best.get_weights())


def test_keras_archive_problem(tmp_path):
    path = str(tmp_path / "model.keras")
    _mlp().save(path)
    with zipfile.ZipFile(path) as archive:
        assert _internals.KERAS_ARCHIVE_CONFIG in archive.namelist()
    assert keras_archive_problem(path) is None
    assert keras.models.load_model(path).name == "mlp"
    cut = tmp_path / "cut.keras"
    cut.write_bytes(pathlib.Path(path).read_bytes()[:100])
    assert "not a zip archive" in keras_archive_problem(str(cut))
    other = tmp_path / "other.keras"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("model.weights.h5", b"")
    assert keras_archive_problem(str(other)) == "the zip archive has no config.json"


def test_set_initial_epoch():
    class Resume(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            set_initial_epoch(self.model, 2)

    model = _mlp()
    model.compile("sgd", "mse")
    history = model.fit(np.ones((4, 4)), np.ones((4, 2)), epochs=4, verbose=0, callbacks=[Resume()])
    assert history.epoch == [2, 3]  # fit continued at the epoch the callback set
    set_initial_epoch(model, None)
    assert model.fit(np.ones((4, 4)), np.ones((4, 2)), epochs=1, verbose=0).epoch == [0]


def test_write_tuner_state_atomically(tmp_path, monkeypatch):
    keras_tuner = pytest.importorskip("keras_tuner")
    write_tuner_state_atomically()
    oracle = keras_tuner.oracles.RandomSearchOracle(keras_tuner.Objective("loss", "min"), 3, seed=3)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.save()  # the oracle, as the tuner saves it, goes through the replaced writer
    path = tmp_path / "p" / "oracle.json"
    before = path.read_text()
    assert json.loads(before)["seed"] == 3
    oracle.seed = 5

    def killed(*args):  # the kill comes after the new state is written, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        oracle.save()
    assert path.read_text() == before  # the old state is whole
    monkeypatch.undo()
    oracle.save()
    assert json.loads(path.read_text())["seed"] == 5


def test_hub_backbone_class(tmp_path):
    keras_hub = pytest.importorskip("keras_hub", reason="the `hub` extra (in `.[test]`)")
    backbone = keras_hub.models.VGGBackbone(stackwise_num_repeats=[1], stackwise_num_filters=[2])
    backbone.save_to_preset(str(tmp_path))
    assert (tmp_path / _internals.HUB_PRESET_CONFIG).is_file()  # what makes a folder a preset
    assert hub_backbone_class(str(tmp_path)) is keras_hub.models.VGGBackbone
