"""SpotTuneModel: per-input selection, frozen copies, straight-through gradients, routing,
determinism, save/reload and export in a fresh process, recurrent masking."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.export import export_serving
from kerastransfer.methods.spottune import (
    SpotTuneModel,
    spottune_optimizer,
)


def residual_net(seed=0):
    """16x16x3 -> stem conv -> 2 residual blocks (conv-BN-relu-conv + add) -> softmax(4)."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inputs = keras.Input((16, 16, 3), name="image")
    x = L.Rescaling(1 / 255.0, name="scale")(inputs)
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="stem")(x)
    for b in (1, 2):
        h = L.Conv2D(6, 3, padding="same", name=f"b{b}_conv1")(x)
        h = L.BatchNormalization(name=f"b{b}_bn")(h)
        h = L.ReLU(name=f"b{b}_relu")(h)
        h = L.Conv2D(6, 3, padding="same", name=f"b{b}_conv2")(h)
        x = L.Add(name=f"b{b}_add")([x, h])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(4, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs, name="resnet_tiny")
    for layer in model.layers:  # non-trivial BN statistics, so inference mode matters
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights([np.full(6, 1.5), np.full(6, 0.2), np.full(6, 0.1), np.full(6, 2.0)])
    return model


BLOCKS = [("b1_conv1", "b1_add"), ("b2_conv1", "b2_add")]


def brightness_policy(num_blocks, threshold=128.0, scale=0.5):
    """A policy whose decision is 'fine-tune every block' iff the mean pixel > threshold."""
    inputs = keras.Input((16, 16, 3), name="spottune_policy_input")
    x = keras.layers.GlobalAveragePooling2D(name="spottune_policy_gap")(inputs)
    x = keras.layers.Dense(2 * num_blocks, name="spottune_policy_logits")(x)
    outputs = keras.layers.Reshape((num_blocks, 2), name="spottune_policy_reshape")(x)
    policy = keras.Model(inputs, outputs, name="spottune_policy")
    kernel = np.zeros((3, 2 * num_blocks), "float32")
    kernel[:, 1::2] = scale / 3
    bias = np.zeros(2 * num_blocks, "float32")
    bias[1::2] = -scale * threshold
    policy.get_layer("spottune_policy_logits").set_weights([kernel, bias])
    return policy


def perturb_tuned(model, seed=1):
    rng = np.random.default_rng(seed)
    for block in model.blocks:
        block.tuned.set_weights(
            [w + rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in block.tuned.get_weights()]
        )


def plain_reference(source, model, branch):
    """The source architecture with the glue weights of `model.network` and every block's
    `branch` ("frozen" or "tuned") weights: the frozen-only / tuned-only network."""
    ref = keras.models.clone_model(source)
    owners = {}
    for block in model.blocks:
        copy = getattr(block, branch)
        for layer in copy.layers:
            owners[layer.name] = copy
    for layer in ref.layers:
        owner = owners.get(layer.name, model.network)
        if layer.weights:
            layer.set_weights(owner.get_layer(layer.name).get_weights())
    return ref


def images(mean, n=2, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(mean, 20, (n, 16, 16, 3)), 0, 255).astype("float32")


@pytest.fixture
def source():
    return residual_net()


def test_policy_selects_per_input_frozen_only_and_tuned_only(source):
    model = SpotTuneModel.from_model(source, BLOCKS, policy=brightness_policy(2))
    perturb_tuned(model)
    dark, bright = images(40), images(220)
    x = np.concatenate([dark, bright])
    np.testing.assert_array_equal(model.decisions(x).numpy(), [[0, 0]] * 2 + [[1, 1]] * 2)
    frozen_ref = plain_reference(source, model, "frozen")
    tuned_ref = plain_reference(source, model, "tuned")
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out[:2], frozen_ref.predict(dark, verbose=0), atol=1e-6)
    np.testing.assert_allclose(out[2:], tuned_ref.predict(bright, verbose=0), atol=1e-6)
    # The two networks really differ on these inputs (so the check above could fail).
    assert np.abs(tuned_ref.predict(dark, verbose=0) - out[:2]).max() > 1e-3
    # Frozen-only equals the untouched source network (glue not trained yet).
    np.testing.assert_allclose(out[:2], source.predict(dark, verbose=0), atol=1e-6)


def test_frozen_copies_bit_identical_through_training_tuned_and_policy_move(source):
    model = SpotTuneModel.from_model(source, BLOCKS, seed=0)
    frozen = [[w.copy() for w in b.frozen.get_weights()] for b in model.blocks]
    tuned = [[w.copy() for w in b.tuned.get_weights()] for b in model.blocks]
    policy = [w.copy() for w in model.policy.get_weights()]
    assert all(not v.trainable for b in model.blocks for v in b.frozen.weights)
    model.compile(spottune_optimizer(model), "sparse_categorical_crossentropy")
    x = np.concatenate([images(40, 16), images(220, 16, seed=1)])
    y = np.arange(32) % 4
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for block, before in zip(model.blocks, frozen):
        for a, b in zip(block.frozen.get_weights(), before):
            np.testing.assert_array_equal(a, b)  # BN moving statistics included
    assert any(
        not np.array_equal(a, b)
        for block, before in zip(model.blocks, tuned)
        for a, b in zip(block.tuned.get_weights(), before)
    )
    assert any(not np.array_equal(a, b) for a, b in zip(model.policy.get_weights(), policy))


def test_gradients_reach_the_policy_through_straight_through_samples(source):
    model = SpotTuneModel.from_model(source, BLOCKS, seed=3)
    perturb_tuned(model)
    x, y = images(128, 8), np.arange(8) % 4
    samples = model.decision_samples(x, training=True).numpy()
    assert set(np.unique(samples)) <= {0.0, 1.0}  # hard samples forward
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
        loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, model.policy.trainable_variables)
    logits_grads = [
        g for g, v in zip(grads, model.policy.trainable_variables) if "logits" in v.path
    ]
    assert logits_grads and all(g is not None for g in logits_grads)
    assert float(tf.linalg.global_norm(logits_grads)) > 0


def test_inference_is_deterministic_and_routing_equals_compute_both_and_mask(source):
    model = SpotTuneModel.from_model(source, BLOCKS, seed=0)
    perturb_tuned(model)
    x = np.concatenate([images(40, 5), images(220, 5, seed=2)])
    decisions = np.array([[i % 2, (i // 2) % 2] for i in range(10)])
    routed = model.call_with_decisions(x, decisions).numpy()
    for block in model.blocks:
        block.routing = False
    masked = model.call_with_decisions(x, decisions).numpy()
    np.testing.assert_allclose(routed, masked, atol=1e-6)
    for block in model.blocks:
        block.routing = True
    # Every sample on one branch (the other partition is empty) also works.
    np.testing.assert_allclose(
        model.call_with_decisions(x[:3], np.ones((3, 2))).numpy(),
        plain_reference(source, model, "tuned").predict(x[:3], verbose=0),
        atol=1e-6,
    )
    a, b = model.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_array_equal(a, b)


def test_budget_penalty_is_added_only_in_training(source):
    model = SpotTuneModel.from_model(source, BLOCKS, budget=2.0, seed=0)
    x = images(128, 4)
    model(x, training=False)
    assert not model.losses
    model(x, training=True)
    (penalty,) = model.losses
    # budget * mean fraction of fine-tuned blocks: a multiple of 2 / (4 samples * 2 blocks).
    value = float(penalty) / (2.0 / 8)
    assert 0 <= float(penalty) <= 2.0 and abs(value - round(value)) < 1e-5
    assert not SpotTuneModel.from_model(source, BLOCKS).budget


def test_bad_arguments_are_clear_errors(source):
    for bad in (0, -1.0, float("nan"), "hot"):
        with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
            SpotTuneModel.from_model(source, BLOCKS, temperature=bad)
    with pytest.raises(ValueError, match="`budget` must be >= 0"):
        SpotTuneModel.from_model(source, BLOCKS, budget=-1)
    with pytest.raises(ValueError, match=r"policy must output \(batch, num_blocks, 2\)"):
        SpotTuneModel.from_model(source, BLOCKS, policy=brightness_policy(3))


_RELOAD = """
import sys, numpy as np, keras
import kerastransfer.methods.spottune  # registers the SpotTune classes
model = keras.saving.load_model(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], model.predict(x, verbose=0))
assert type(model).__name__ == "SpotTuneModel" and model.optimizer is not None
"""


def test_save_reload_and_export_in_a_fresh_process(
    source, tmp_path, serve_in_fresh_process, run_python
):
    model = SpotTuneModel.from_model(source, BLOCKS, policy=brightness_policy(2))
    perturb_tuned(model)
    model.compile(spottune_optimizer(model), "sparse_categorical_crossentropy")
    x = np.concatenate([images(40, 3), images(220, 3, seed=4)])
    model.fit(x, np.arange(6) % 4, epochs=1, verbose=0)
    expected = model.predict(x, verbose=0)
    path = tmp_path / "spottune.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    run_python(_RELOAD, path, tmp_path / "x.npy", tmp_path / "out.npy")
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6)

    export = export_serving(model, tmp_path / "served")
    served = serve_in_fresh_process(export, x.astype("uint8"))
    np.testing.assert_allclose(
        served["probabilities"],
        model.predict(x.astype("uint8").astype("float32"), verbose=0),
        atol=1e-5,
    )
    loaded = tf.saved_model.load(export)  # a served model answers the same twice
    raw = tf.constant(x.astype("uint8"))
    np.testing.assert_array_equal(
        loaded.serve(raw)["probabilities"].numpy(), loaded.serve(raw)["probabilities"].numpy()
    )


def lstm_net(mask=True, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, 3), name="sequence")
    x = keras.layers.Masking(0.0, name="masking")(inputs) if mask else inputs
    x = keras.layers.LSTM(5, return_sequences=True, name="lstm_1")(x)
    x = keras.layers.GRU(5, return_sequences=True, name="gru_2")(x)
    x = keras.layers.LSTM(5, name="lstm_3")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="stack")


def test_recurrent_blocks_keep_masking_semantics():
    source = lstm_net()
    model = SpotTuneModel.from_model(source, mask_value=0.0, seed=0)
    assert model.block_names == ["lstm_1", "gru_2", "lstm_3"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 7, 3)).astype("float32")
    x[:2, 4:] = 0.0  # two padded sequences
    frozen = np.zeros((4, 3))
    expected = source.predict(x, verbose=0)
    for training in (False, True):  # routed inference and the training mix
        np.testing.assert_allclose(
            model.call_with_decisions(x, frozen, training=training).numpy(), expected, atol=1e-6
        )
    unmasked = lstm_net(mask=False)
    unmasked.set_weights(source.get_weights())
    assert np.abs(unmasked.predict(x, verbose=0)[:2] - expected[:2]).max() > 1e-4
    # Trailing padding changes nothing, through the policy and every routed block.
    perturb_tuned(model)
    short = x[:2, :4]
    padded = np.concatenate([short, np.zeros((2, 5, 3), "float32")], axis=1)
    np.testing.assert_allclose(
        model.predict(padded, verbose=0), model.predict(short, verbose=0), atol=1e-6
    )
    mixed = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    routed = model.call_with_decisions(x, mixed).numpy()
    for block in model.blocks:
        block.routing = False
    np.testing.assert_allclose(routed, model.call_with_decisions(x, mixed).numpy(), atol=1e-6)


def test_recurrent_state_semantics_are_checked():
    inputs = keras.Input((5, 3), batch_size=2)
    x = keras.layers.LSTM(4, stateful=True, name="stateful")(inputs)
    with pytest.raises(ValueError, match="`stateful` is stateful|is stateful"):
        SpotTuneModel.from_model(keras.Model(inputs, x))
    inputs = keras.Input((5, 3))
    x = keras.layers.GRU(4, go_backwards=True, return_sequences=True, name="backwards")(inputs)
    source = keras.Model(inputs, keras.layers.LSTM(2, name="top")(x))
    model = SpotTuneModel.from_model(source)
    assert model.blocks[0].tuned.get_layer("backwards").go_backwards
    x = np.random.default_rng(1).normal(size=(3, 5, 3)).astype("float32")
    np.testing.assert_allclose(
        model.call_with_decisions(x, np.ones((3, 2))).numpy(),
        source.predict(x, verbose=0),
        atol=1e-6,
    )


def test_fit_names_labels_out_of_range_and_wrong_shapes_before_training():
    model = SpotTuneModel.from_model(residual_net(), BLOCKS, seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.zeros((4, 16, 16, 3), "float32")
    with pytest.raises(
        ValueError, match=r"^`y` must be class ids in 0..3 .*Received: labels \[4\]"
    ):
        model.fit(x, np.array([0, 1, 2, 4]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^`x` must be of shape \(16, 16, 3\).*to_image_shape"):
        model.fit(np.zeros((4, 12, 12, 3), "float32"), np.zeros(4), epochs=1, verbose=0)
