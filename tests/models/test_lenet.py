"""Seed 002's LeNet-5 variant: Table 1, the LeNet layers, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.models.lenet import (
    TABLE_1,
    CodeSoftmax,
    PartialConv2D,
    Subsampling2D,
    check_table_1,
    code_classifier,
    count_free_parameters,
    free_parameter_table,
    lenet5,
    lenet5_connection_table,
    scaled_tanh,
)
from kerastransfer.surgery import weighted_levels


def test_free_parameters_are_table_1_exactly():
    model = lenet5()
    assert free_parameter_table(model) == {
        "C1": 156,
        "S2": 12,
        "C3": 1516,
        "S4": 32,
        "C5": 48120,
        "F6": 2420,
    }
    assert count_free_parameters(model) == 52256
    assert check_table_1(model) == TABLE_1
    # C3 holds a full 6x16 kernel, but only the 60 connected 5x5 kernels are free.
    assert model.get_layer("C3").count_params() == 6 * 16 * 25 + 16
    assert model.count_params() - 900 == 52256


def test_levels_and_shapes_follow_figure_1():
    model = lenet5()
    assert [level[0].name for level in weighted_levels(model)] == list(TABLE_1)
    shapes = {name: model.get_layer(name).output.shape[1:] for name in TABLE_1}
    assert shapes == {
        "C1": (28, 28, 6),
        "S2": (14, 14, 6),
        "C3": (10, 10, 16),
        "S4": (5, 5, 16),
        "C5": (1, 1, 120),
        "F6": (20,),
    }
    assert model.input_shape == (None, 32, 32, 1)
    rescale = model.get_layer("rescale")
    assert isinstance(rescale, keras.layers.Rescaling) and rescale.scale == pytest.approx(1 / 255)


def test_one_of_n_model_differs_from_table_1_only_in_f6():
    model = lenet5(code_bits=5)
    table = free_parameter_table(model)
    assert table["F6"] == 5 * 121
    assert {k: v for k, v in table.items() if k != "F6"} == {
        k: v for k, v in TABLE_1.items() if k != "F6"
    }
    with pytest.raises(ValueError, match="Table 1"):
        check_table_1(model)


def test_connection_table_is_lenet5s():
    table = lenet5_connection_table()
    assert table.shape == (6, 16) and table.sum() == 60
    # LeCun et al. 1998, Table I, first row (S2 map 0) and last column (C3 map 15).
    assert np.flatnonzero(table[0]).tolist() == [0, 4, 5, 6, 9, 10, 11, 12, 14, 15]
    assert table[:, 15].tolist() == [1] * 6
    assert np.flatnonzero(table[:, 13]).tolist() == [1, 2, 4, 5]


def test_partial_conv_ignores_unconnected_maps_and_their_gradient_is_zero():
    layer = PartialConv2D(16, 5, name="c3")
    x = tf.random.normal((2, 14, 14, 6), seed=1)
    with tf.GradientTape() as tape:
        y = layer(x)
        loss = tf.reduce_sum(y**2)
    grad = tape.gradient(loss, layer.kernel).numpy()
    mask = lenet5_connection_table().astype(bool)
    assert np.all(grad[:, :, ~mask] == 0)
    assert np.all(np.abs(grad[:, :, mask]).sum(axis=0).sum(axis=0) > 0)
    assert np.all(layer.kernel.numpy()[:, :, ~mask] == 0)  # masked entries start at zero
    # Changing S2 map 1 (not read by C3 maps 0, 4, 5) leaves those maps unchanged.
    x2 = x.numpy()
    x2[..., 1] += 5.0
    y2 = layer(x2)
    unread = np.flatnonzero(~mask[1])
    np.testing.assert_allclose(y2.numpy()[..., unread], y.numpy()[..., unread], atol=1e-6)
    read = np.flatnonzero(mask[1])
    assert np.abs(y2.numpy()[..., read] - y.numpy()[..., read]).max() > 1e-3
    # Even a non-zero kernel entry outside the table is ignored.
    layer.kernel.assign(tf.ones_like(layer.kernel))
    ones = layer(np.ones((1, 5, 5, 6), "float32")).numpy()[0, 0, 0]
    np.testing.assert_allclose(ones, 25 * mask.sum(axis=0), rtol=1e-6)


def test_partial_conv_rejects_bad_tables():
    with pytest.raises(ValueError, match="shape"):
        PartialConv2D(8, 5)  # LeNet's table has 16 columns
    with pytest.raises(ValueError, match="no"):
        PartialConv2D(2, 3, connections=[[1, 0], [1, 0]])
    with pytest.raises(ValueError, match="input maps"):
        PartialConv2D(16, 5)(np.zeros((1, 14, 14, 3), "float32"))


def test_subsampling_is_coefficient_times_tile_sum_plus_bias():
    layer = Subsampling2D(2)
    x = np.random.default_rng(0).normal(size=(2, 6, 4, 3)).astype("float32")
    layer.build(x.shape)
    coef, bias = np.array([0.5, -2.0, 1.5], "float32"), np.array([0.1, 0.0, -0.3], "float32")
    layer.set_weights([coef, bias])
    expected = x.reshape(2, 3, 2, 2, 2, 3).sum(axis=(2, 4)) * coef + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert layer.count_params() == layer.free_parameters == 6
    with pytest.raises(ValueError, match="pool_size"):
        Subsampling2D(0)


def test_scaled_tanh_maps_plus_minus_one_to_themselves():
    np.testing.assert_allclose(scaled_tanh(np.array([-1.0, 0.0, 1.0])), [-1, 0, 1], atol=2e-4)
    assert float(scaled_tanh(100.0)) == pytest.approx(1.7159)


def test_code_softmax_picks_nearest_code():
    rng = np.random.default_rng(3)
    codes = rng.choice([-1.0, 1.0], size=(7, 20)).astype("float32")
    outputs = rng.normal(size=(50, 20)).astype("float32")
    probs = CodeSoftmax(codes)(outputs).numpy()
    nearest = ((outputs[:, None] - codes[None]) ** 2).sum(-1).argmin(-1)
    np.testing.assert_array_equal(probs.argmax(-1), nearest)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="codes"):
        CodeSoftmax([1.0, -1.0])
    with pytest.raises(ValueError, match="shape"):
        code_classifier(lenet5(), codes[:, :10])


def test_save_and_load_without_unsafe_mode(tmp_path):
    codes = np.where(np.random.default_rng(0).random((5, 20)) < 0.5, -1.0, 1.0)
    model = code_classifier(lenet5(), codes)
    path = tmp_path / "lenet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode=True: no lambdas, registered layers
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(loaded([x]).numpy(), model([x]).numpy(), rtol=1e-5, atol=1e-6)
    assert isinstance(loaded.get_layer("C3"), PartialConv2D)
    assert isinstance(loaded.get_layer("S4"), Subsampling2D)
    assert free_parameter_table(loaded) == TABLE_1
    np.testing.assert_array_equal(loaded.get_layer("code_softmax").codes, codes)


def test_lenet5_rejects_other_input_shapes():
    with pytest.raises(ValueError, match="resize='pad'"):
        lenet5(input_shape=(28, 28, 1))
    with pytest.raises(ValueError, match="code_bits"):
        lenet5(code_bits=1)
