"""Small seeded models for the parameter-efficient fine-tuning tests: one per supported layer
type, a model holding all four, and a MobileNetV2 backbone nested in a functional model."""

import keras
import numpy as np
import pytest

L = keras.layers

# kind: (layer factory taking initializer seeds, input shape)
ONE_LAYER = {
    "dense": (lambda init: L.Dense(6, name="target", **init), (5,)),
    "conv": (lambda init: L.Conv2D(6, 3, name="target", **init), (7, 7, 4)),
    "depthwise": (
        lambda init: L.DepthwiseConv2D(3, depth_multiplier=2, name="target", **init),
        (7, 7, 4),
    ),
    "separable": (
        lambda init: L.SeparableConv2D(12, 3, depth_multiplier=3, name="target", **init),
        (7, 7, 4),
    ),
}
KINDS = tuple(ONE_LAYER)


def _init(kind, seed):
    kernel = keras.initializers.GlorotUniform(seed=seed)
    bias = keras.initializers.RandomNormal(stddev=0.1, seed=seed + 1)
    if kind == "separable":
        pointwise = keras.initializers.GlorotUniform(seed=seed + 2)
        return dict(
            depthwise_initializer=kernel, pointwise_initializer=pointwise, bias_initializer=bias
        )
    if kind == "depthwise":
        return dict(depthwise_initializer=kernel, bias_initializer=bias)
    return dict(kernel_initializer=kernel, bias_initializer=bias)


def one_layer_model(kind, seed=0):
    """Input -> one layer of `kind` (named 'target', nonzero bias), weights fixed by `seed`."""
    make, shape = ONE_LAYER[kind]
    inputs = keras.Input(shape, name="x")
    return keras.Model(inputs, make(_init(kind, seed))(inputs), name=f"{kind}_model")


def zoo_model(seed=0, filters=6, width=8):
    """Conv2D -> DepthwiseConv2D -> SeparableConv2D -> pooling -> Dense: every supported type."""
    inputs = keras.Input((width, width, 4), name="x")
    x = L.Conv2D(filters, 3, padding="same", name="conv", **_init("conv", seed))(inputs)
    x = L.DepthwiseConv2D(
        3, padding="same", depth_multiplier=2, name="depthwise", **_init("depthwise", seed + 10)
    )(x)
    x = L.SeparableConv2D(8, 3, padding="same", name="separable", **_init("separable", seed + 20))(
        x
    )
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(3, name="dense", **_init("dense", seed + 30))(x)
    return keras.Model(inputs, outputs, name="zoo")


def randomize_adapters(model, seed=0, scale=0.3):
    """Large random values in every adapter weight (A, B, m), so merged kernels differ from W."""
    from kerastransfer.methods.peft import AdaptedLayer
    from kerastransfer.methods.peft.selection import leaf_layers

    rng = np.random.default_rng(seed)
    for _, layer in leaf_layers(model):
        if isinstance(layer, AdaptedLayer):
            for v in layer.adapter_weights:
                if v.name.endswith("magnitude"):
                    v.assign(v.numpy() * rng.uniform(0.5, 1.5, v.shape))
                else:
                    v.assign(rng.normal(0, scale, v.shape))


def batch(model, n=4, seed=0):
    shape = model.inputs[0].shape[1:]
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


@pytest.fixture
def peft_models():
    """The builders above, for the test modules (which cannot import this file)."""

    class Builders:
        one_layer = staticmethod(one_layer_model)
        zoo = staticmethod(zoo_model)
        randomize = staticmethod(randomize_adapters)
        data = staticmethod(batch)
        kinds = KINDS

    return Builders


@pytest.fixture(scope="session")
def mobilenet_with_head():
    """MobileNetV2 (alpha 0.35, 32x32, random weights) nested in a functional model with a new
    Dense head."""
    backbone = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), alpha=0.35, include_top=False
    )
    inputs = keras.Input((32, 32, 3), name="image")
    x = L.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    return keras.Model(inputs, L.Dense(2, name="head")(x), name="classifier")
