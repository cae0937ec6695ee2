"""The policy's own learning rate through a MultiOptimizer map."""

import keras
import numpy as np
import pytest

from kerastransfer.methods.spottune import SpotTuneModel, lstm_policy, spottune_optimizer


def source():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 2))
    x = keras.layers.LSTM(3, name="lstm")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(x))


def test_policy_learns_at_its_own_rate_and_the_map_survives_reload(tmp_path):
    model = SpotTuneModel.from_model(source(), policy=lstm_policy((5, 2), 1, units=(4,)))
    opt = spottune_optimizer(
        model, keras.optimizers.SGD(0.0, name="network"), keras.optimizers.SGD(0.5, name="policy")
    )
    rates = lambda o: {sub.name: round(float(sub.learning_rate), 6) for sub in o.optimizers}  # noqa: E731
    assert rates(opt) == {"network": 0.0, "policy": 0.5}
    model.compile(opt, "sparse_categorical_crossentropy")
    tuned = model.blocks[0].tuned  # copies that differ, so the policy's choice matters
    tuned.set_weights([w + 0.5 for w in tuned.get_weights()])
    network, policy = model.network.get_weights(), model.policy.get_weights()
    x = np.random.default_rng(0).normal(size=(8, 5, 2)).astype("float32")
    model.fit(x, np.arange(8) % 2, epochs=1, verbose=0)
    for a, b in zip(model.network.get_weights(), network):
        np.testing.assert_array_equal(a, b)  # network at rate 0
    assert any(not np.array_equal(a, b) for a, b in zip(model.policy.get_weights(), policy))
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert rates(reloaded.optimizer) == {"network": 0.0, "policy": 0.5}
    assert rates(spottune_optimizer(model)) == {"network": 0.1, "policy": 0.01}


def test_policy_names_that_clash_with_the_network_are_an_error():
    inputs = keras.Input((5, 2))
    x = keras.layers.Flatten()(inputs)
    out = keras.layers.Reshape((1, 2))(keras.layers.Dense(2, name="head")(x))
    model = SpotTuneModel.from_model(source(), policy=keras.Model(inputs, out))
    with pytest.raises(ValueError, match="unique names"):
        spottune_optimizer(model)
