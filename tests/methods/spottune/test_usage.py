"""Policy usage: per-input fine-tuned fraction and per-block usage, for a dataset and logged to
History and TensorBoard during fit."""

import glob

import keras
import numpy as np
import tensorflow as tf

from kerastransfer.methods.spottune import PolicyUsage, SpotTuneModel, policy_usage


def source_and_policy():
    """Two Dense blocks; the policy fine-tunes block `a` iff x[0] > 0, and never block `b`."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,), name="x")
    h = keras.layers.Dense(3, name="a")(inputs)
    h = keras.layers.Dense(3, name="b")(h)
    source = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(h))
    p_in = keras.Input((3,), name="spottune_policy_input")
    p = keras.layers.Dense(4, name="spottune_policy_logits")(p_in)
    policy = keras.Model(p_in, keras.layers.Reshape((2, 2), name="spottune_policy_rs")(p))
    kernel = np.zeros((3, 4), "float32")
    kernel[0, 1] = 10.0  # block a: tuned logit grows with x[0]
    policy.get_layer("spottune_policy_logits").set_weights([kernel, np.array([0, 0, 1, 0.0])])
    return source, policy


def test_policy_usage_for_a_dataset():
    source, policy = source_and_policy()
    model = SpotTuneModel.from_model(source, [("a", "a"), ("b", "b")], policy=policy)
    x = np.array([[1, 0, 0], [-1, 0, 0], [2, 1, 1], [-3, 1, 0]], "float32")
    y = np.zeros(4, "int64")
    for data in (x, (x, y), tf.data.Dataset.from_tensor_slices((x, y)).batch(3)):
        usage = policy_usage(model, data)
        np.testing.assert_array_equal(usage["decisions"], [[1, 0], [0, 0], [1, 0], [0, 0]])
        np.testing.assert_allclose(usage["fraction"], [0.5, 0, 0.5, 0])
        assert usage["block_usage"] == {"a": 0.5, "b": 0.0}
        assert usage["mean_fraction"] == 0.25


def test_callback_logs_to_history_and_tensorboard(tmp_path):
    source, policy = source_and_policy()
    model = SpotTuneModel.from_model(source, [("a", "a"), ("b", "b")], policy=policy)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = (x[:, 1] > 0).astype("int64")
    history = model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        validation_data=(x, y),
        callbacks=[
            PolicyUsage(x, log_dir=str(tmp_path)),
            keras.callbacks.TensorBoard(str(tmp_path)),
        ],
    )
    logs = history.history
    assert len(logs["spottune_fraction"]) == 2
    assert set(logs) >= {
        "spottune_usage/a",
        "spottune_usage/b",
        "finetuned_fraction",
        "val_finetuned_fraction",
    }
    expected = policy_usage(model, x)
    assert logs["spottune_usage/a"][-1] == expected["block_usage"]["a"]
    # The validation metric is the argmax fraction on the validation data (the same x).
    assert abs(logs["val_finetuned_fraction"][-1] - expected["mean_fraction"]) < 1e-6
    assert glob.glob(str(tmp_path / "spottune" / "events.out.tfevents.*"))
