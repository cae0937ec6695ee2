"""Split layers, per-filter parameters and the batched masked passes behind Gamma."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.methods.bpa import dempster_shafer as bpa_lib
from kerastransfer.methods.bpa.channel_slices import filter_parameters
from kerastransfer.methods.bpa.filter_costs import compute_gamma, filter_confusions, labelled_set
from kerastransfer.methods.bpa.probing import filter_probe
from kerastransfer.methods.bpa.split_layers import resolve_split_layers
from kerastransfer.models import small_cnn

C = 3


def tiny_cnn():
    keras.utils.set_random_seed(1)
    return small_cnn((12, 12, 1), C, filters=(5, 4), dense=8, dropout=0.0, name="tiny")


def skip_cnn():
    """A model whose upper part also reads a tensor from below the split layer."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((10, 10, 1))
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    stem = keras.layers.Conv2D(3, 3, padding="same", name="stem")(x)
    y = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv_a")(stem)
    z = keras.layers.Add(name="add")([stem, y])
    z = keras.layers.GlobalAveragePooling2D()(z)
    return keras.Model(inputs, keras.layers.Dense(C, activation="softmax", name="head")(z))


def labelled(n=36, shape=(12, 12, 1), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 255, (n,) + shape).astype("float32"), np.arange(n) % C)


def naive_confusions(model, layer_name, x, y):
    """Reference: d full forward passes, each through a copy of the model whose split layer's
    other filters are zeroed in the weights (kernel and bias), so their output channels are 0."""
    layer = model.get_layer(layer_name)
    kernel, *bias = layer.get_weights()
    out = []
    for k in range(layer.filters):
        keep = np.zeros(layer.filters, "float32")
        keep[k] = 1
        layer.set_weights([kernel * keep] + [b * keep for b in bias])
        pred = np.argmax(model.predict(x, verbose=0), axis=-1)
        m = np.zeros((C, C), np.int64)
        np.add.at(m, (y, pred), 1)
        out.append(m)
    layer.set_weights([kernel] + bias)
    return np.stack(out)


def test_default_split_layer_is_the_first_conv2d():
    model = tiny_cnn()
    assert [layer.name for layer in resolve_split_layers(model)] == ["conv1"]
    assert [layer.name for layer in resolve_split_layers(model, ["conv2", "conv1"])] == [
        "conv2",
        "conv1",
    ]
    assert [layer.name for layer in resolve_split_layers(model, "conv2")] == ["conv2"]


def test_unknown_split_layer_names_close_matches_and_conv_layers():
    model = tiny_cnn()
    with pytest.raises(ValueError) as err:
        resolve_split_layers(model, ["conv3"])
    message = str(err.value)
    assert "'conv3'" in message and "Did you mean" in message and "['conv1', 'conv2']" in message


def test_non_convolutional_split_layer():
    with pytest.raises(
        ValueError, match=r"'bn1' is a BatchNormalization, not a Conv2D.*\['conv1', 'conv2'\]"
    ):
        resolve_split_layers(tiny_cnn(), "bn1")
    dense_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no Conv2D layer"):
        resolve_split_layers(dense_only)


def test_filter_parameters_follow_the_spec():
    model = tiny_cnn()
    found = {v.path: axis for v, axis in filter_parameters(model, model.get_layer("conv1"))}
    assert found == {
        "conv1/kernel": 3,
        "conv1/bias": 0,
        "bn1/gamma": 0,
        "bn1/beta": 0,
        "conv2/kernel": 2,
    }
    # conv2 is followed by BN, then Flatten -> Dense: the Dense rows fed by each channel.
    found = {v.path: axis for v, axis in filter_parameters(model, model.get_layer("conv2"))}
    assert found == {
        "conv2/kernel": 3,
        "conv2/bias": 0,
        "bn2/gamma": 0,
        "bn2/beta": 0,
        "fc1/kernel": 0,
    }


@pytest.mark.parametrize(
    "name,pass_strategy", [("conv1", "separable"), ("conv1", "tile"), ("conv2", "tile")]
)
def test_masked_passes_match_naive_single_filter_networks(name, pass_strategy):
    model = tiny_cnn()
    x, y = labelled()
    probe = filter_probe(model, name, pass_strategy=pass_strategy)
    assert probe.pass_strategy == pass_strategy
    (batched,) = filter_confusions([probe], (x, y), batch_size=16)
    assert batched.shape == (probe.num_filters, C, C)
    assert batched.sum() == probe.num_filters * len(y)
    np.testing.assert_array_equal(batched, naive_confusions(model, name, x, y))


def test_auto_pass_strategy_and_chunks_give_the_same_counts():
    model = tiny_cnn()
    x, y = labelled()
    assert (
        filter_probe(model, "conv1").pass_strategy == "separable"
    )  # conv1 -> bn1 -> relu1 -> pool1 -> conv2
    assert (
        filter_probe(model, "conv2").pass_strategy == "tile"
    )  # conv2 -> ... -> Dense: no next convolution
    with pytest.raises(ValueError, match="pass_strategy='tile'"):
        filter_probe(model, "conv2", pass_strategy="separable")
    whole = filter_confusions([filter_probe(model, "conv1")], (x, y))[0]
    for pass_strategy in ("separable", "tile"):
        chunked = filter_confusions(
            [filter_probe(model, "conv1", masks_per_pass=2, pass_strategy=pass_strategy)], (x, y)
        )[0]
        np.testing.assert_array_equal(whole, chunked)
    with pytest.raises(ValueError, match="masks_per_pass"):
        filter_probe(model, "conv1", masks_per_pass=0)


def test_skip_connection_around_the_split_layer():
    model = skip_cnn()
    x, y = labelled(shape=(10, 10, 1))
    probe = filter_probe(model, "conv_a")
    assert len(probe.above.inputs) == 2  # the split activation and the skipped `stem` output
    (batched,) = filter_confusions([probe], (x, y), batch_size=10)
    np.testing.assert_array_equal(batched, naive_confusions(model, "conv_a", x, y))


def test_compute_gamma_from_confusions_and_one_hot_labels():
    model = tiny_cnn()
    x, y = labelled()
    costs, confusions = compute_gamma(
        model,
        (x, y),
        ["conv1", "conv2"],
        gamma="agreement",
        normalization="none",
        return_confusions=True,
    )
    for name in ("conv1", "conv2"):
        np.testing.assert_allclose(costs[name], bpa_lib.gamma_costs(confusions[name], "agreement"))
    dataset = tf.data.Dataset.from_tensor_slices((x, np.eye(C)[y])).batch(10)
    one_hot = compute_gamma(
        model, dataset, ["conv1", "conv2"], gamma="agreement", normalization="none"
    )
    for name in costs:
        np.testing.assert_allclose(one_hot[name], costs[name])
    normalised = compute_gamma(model, (x, y), "conv1", gamma="paper")["conv1"]
    assert normalised.max() == pytest.approx(1.0) and normalised.shape == (5,)


def test_confusions_summed_across_replicas(mirrored):
    with mirrored.scope():
        model = tiny_cnn()
    x, y = labelled(n=40)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    probe = filter_probe(model, "conv1")
    single = filter_confusions([probe], dataset, strategy=tf.distribute.get_strategy())[0]
    both = filter_confusions([probe], dataset, strategy=mirrored)[0]
    assert both.sum() == 5 * 40
    np.testing.assert_array_equal(both, single)


def test_bad_data_and_models():
    model = tiny_cnn()
    with pytest.raises(ValueError, match="tf.data.Dataset"):
        compute_gamma(model, np.zeros((4, 12, 12, 1)))
    inputs = keras.Input((6, 6, 1))
    feats = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, name="c")(inputs))
    two_heads = keras.Model(inputs, [keras.layers.Dense(2)(feats), keras.layers.Dense(2)(feats)])
    with pytest.raises(ValueError, match="one output"):
        filter_probe(two_heads, "c")
    regression = keras.Model(inputs, keras.layers.Dense(1)(feats))
    with pytest.raises(ValueError, match="C >= 2"):
        filter_probe(regression, "c")


def test_transfer_data_subsets():
    from kerastransfer.data import load_dataset

    data = load_dataset("embedded:mnist", samples_per_class=2, validation_split=0.02, batch_size=16)
    keras.utils.set_random_seed(0)
    model = small_cnn((28, 28, 1), 10, filters=(3, 4), dense=8)
    probe = filter_probe(model, "conv1")
    counts = {
        s: filter_confusions([probe], labelled_set(data, s))[0]
        for s in ("train", "validation", "train+validation")
    }
    n_train, n_val = data.size("train"), data.size("validation")
    assert counts["train"].sum() == 3 * n_train and counts["validation"].sum() == 3 * n_val
    np.testing.assert_array_equal(
        counts["train+validation"], counts["train"] + counts["validation"]
    )
    costs = compute_gamma(model, data, subset="validation", normalization="none", gamma="agreement")
    expected = bpa_lib.gamma_costs(counts["validation"], "agreement")
    np.testing.assert_allclose(costs["conv1"], expected)
    with pytest.raises(ValueError, match="subset"):
        compute_gamma(model, data, subset="test")
