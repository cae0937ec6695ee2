"""Policy networks: output shapes, masking of padded sequences, bad input."""

import numpy as np
import pytest

from kerastransfer.methods.spottune import conv_policy, lstm_policy


def test_conv_policy_shapes_and_downsampling():
    policy = conv_policy((96, 96, 3), 10)
    assert policy.output_shape == (None, 10, 2)
    assert policy.get_layer("spottune_policy_pool").pool_size == (3, 3)  # 96 -> 32
    assert all(layer.name.startswith("spottune_policy") for layer in policy.layers)
    assert policy.count_params() < 10_000
    out = policy.predict(np.zeros((2, 96, 96, 3), "float32"), verbose=0)
    assert out.shape == (2, 10, 2)


def test_lstm_policy_masks_padding():
    policy = lstm_policy((None, 4), 3, units=(6, 6), mask_value=0.0)
    assert [layer.name for layer in policy.layers if "lstm" in layer.name] == [
        "spottune_policy_lstm0",
        "spottune_policy_lstm1",
    ]
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    padded = np.concatenate([x, np.zeros((2, 3, 4), "float32")], axis=1)
    np.testing.assert_allclose(
        policy.predict(padded, verbose=0), policy.predict(x, verbose=0), atol=1e-6
    )


def test_bad_policy_arguments():
    with pytest.raises(ValueError, match="`num_blocks` must be >= 1"):
        conv_policy((32, 32, 3), 0)
    with pytest.raises(ValueError, match=r"\(height, width, channels\)"):
        conv_policy((32, 3), 2)
    with pytest.raises(ValueError, match=r"\(timesteps, features\)"):
        lstm_policy((32, 32, 3), 2)
    with pytest.raises(ValueError, match="`units`"):
        lstm_policy((5, 2), 2, units=())
