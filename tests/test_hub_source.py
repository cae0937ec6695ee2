"""KerasHub presets as sources (the `hub` extra): a tiny ResNet backbone saved with
`save_to_preset` works where a `keras.applications` name works (`load_source`, surgery,
`fine_tune`, LoRA), and each wrong source gets its own message. No network is used: the handle
tests run with Hugging Face's offline mode on, or fail before any request."""

import sys

import keras
import numpy as np
import pytest

from kerastransfer.cli import main
from kerastransfer.fine_tuning import fine_tune
from kerastransfer.methods.peft import AdaptedLayer
from kerastransfer.pretrained import application_preprocessing, load_source
from kerastransfer.surgery import (
    cut_at,
    freeze_bottom_levels,
    import_matching_layers,
    iter_layers,
    replace_head,
    weighted_layers,
)

# The converter's scale and offset: ImageNet mean and std, on [0, 255] pixels.
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
NO_EXTRA = "KerasHub presets need the `hub` extra (`pip install '.[test]'` installs it)"


@pytest.fixture(scope="module")
def keras_hub():
    return pytest.importorskip("keras_hub", reason=NO_EXTRA)


@pytest.fixture(scope="module")
def preset(keras_hub, tmp_path_factory):
    """A tiny ResNet preset (89k parameters, random weights) with its image converter."""
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
    )
    path = tmp_path_factory.mktemp("hub") / "tiny_resnet"
    backbone.save_to_preset(str(path))
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32), scale=list(1 / (255 * STD)), offset=list(-MEAN / STD)
    )
    converter.save_to_preset(str(path))
    return path


@pytest.fixture
def offline(keras_hub, monkeypatch):
    """Hugging Face's offline mode: a handle fails at once instead of retrying for seconds."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_a_preset_loads_as_a_functional_backbone_with_its_weights(keras_hub, preset):
    model = load_source(preset, input_shape=(32, 32, 3))
    backbone = keras_hub.models.Backbone.from_preset(str(preset))
    assert not isinstance(model, keras_hub.models.Backbone)  # a plain functional model
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 4, 4, 16)
    x = np.random.RandomState(0).uniform(-2, 2, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(x), backbone(x), atol=1e-5)
    random = load_source(str(preset), input_shape=(32, 32, 3), weights=None)
    assert not np.allclose(random(x), backbone(x))


def test_preprocessing_is_the_converters_scale_and_offset(preset):
    pixels = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    rgb = application_preprocessing(str(preset), 3)
    np.testing.assert_allclose(rgb(pixels)[0, 0, 0], (pixels[0, 0, 0] / 255 - MEAN) / STD, 1e-5)
    gray = application_preprocessing(str(preset), 1)(np.array([[[[255.0]]]], "float32"))
    expected = np.mean(1 / STD) + np.mean(-MEAN / STD)  # a gray input: the channels' mean
    np.testing.assert_allclose(gray[0, 0, 0, 0], expected, rtol=1e-5)


def test_surgery_imports_a_preset_by_name_and_shape(preset):
    target = load_source(preset, input_shape=(32, 32, 1), weights=None)  # gray, random
    report = import_matching_layers(str(preset), target)
    source = weighted_layers(load_source(preset))
    assert sorted(report.imported) == sorted(source) and list(report.adapted) == ["conv1_conv"]
    for name, layer in weighted_layers(target).items():
        if name != "conv1_conv":
            for mine, theirs in zip(layer.get_weights(), source[name].get_weights()):
                np.testing.assert_array_equal(mine, theirs)
    summed = np.sum(source["conv1_conv"].get_weights()[0], axis=2, keepdims=True)
    np.testing.assert_allclose(target.get_layer("conv1_conv").get_weights()[0], summed, 1e-6)
    assert cut_at(target, "stack0_block0_out").output_shape == (None, 8, 8, 64)
    model = replace_head(target, 3, cut_layer="stack0_block0_out", pooling="avg")
    assert model.output_shape == (None, 3)
    assert freeze_bottom_levels(model, 1) == ["conv1_conv", "conv1_bn"]


def test_fine_tune_trains_from_a_preset_folder_and_names_it(preset):
    result = fine_tune(
        str(preset),
        "embedded:fashion_mnist",
        samples_per_class=5,
        epochs=1,
        warmup_epochs=1,
        image_size=32,
        verbose=0,
    )
    report = result.report
    assert report.source == str(preset) and str(preset) in str(report)
    assert result.model.input_shape == (None, 32, 32, 1) and result.model.output_shape[-1] == 10
    assert "conv1_conv" in report.adapted and len(report.imported) == 12
    assert result.model.name == "tiny_resnet_transfer"


def test_lora_on_a_preset_trains_a_small_fraction(preset):
    result = fine_tune(
        str(preset),
        "embedded:fashion_mnist",
        method="lora",
        rank=2,
        samples_per_class=5,
        epochs=1,
        warmup_epochs=1,
        image_size=32,
        verbose=0,
    )
    adapted = [layer for layer in iter_layers(result.model) if isinstance(layer, AdaptedLayer)]
    assert len(adapted) == 6  # the six convolutions of the backbone
    report = result.report
    assert 0 < report.trainable_parameters < 0.1 * report.total_parameters


def test_the_folder_of_no_preset_is_named(tmp_path):
    with pytest.raises(ValueError, match="is a folder .* neither a .keras file nor a KerasHub"):
        load_source(tmp_path)


def test_a_text_backbone_is_refused(keras_hub, tmp_path):
    keras_hub.models.BertBackbone(
        vocabulary_size=10, num_layers=1, num_heads=1, hidden_dim=2, intermediate_dim=4
    ).save_to_preset(str(tmp_path / "bert"))
    with pytest.raises(ValueError, match="is a KerasHub text backbone .BertBackbone.; kerastr"):
        load_source(str(tmp_path / "bert"))
    with pytest.raises(ValueError, match="text backbone"):
        fine_tune(str(tmp_path / "bert"), "embedded:fashion_mnist", verbose=0)


def test_a_handle_that_cannot_be_fetched_is_named_with_the_way_out(offline):
    with pytest.raises(RuntimeError) as error:
        load_source("hf://nobody/nothing")
    message = str(error.value)
    assert message.startswith("Cannot fetch the KerasHub preset 'hf://nobody/nothing'")
    assert "give a local preset folder as the source" in message
    with pytest.raises(RuntimeError, match="'kaggle://nobody/nothing' .Unexpected Kaggle preset"):
        load_source("kaggle://nobody/nothing")  # refused before any request


def test_the_command_prints_an_unfetchable_handle_in_one_line(offline, capsys):
    assert main(["fit", "hf://nobody/nothing", "embedded:fashion_mnist", "--verbose", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("kerastransfer fit: error: Cannot fetch the KerasHub preset 'hf://")


def test_a_preset_without_the_extra_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # as on `pip install kerastransfer`
    for source in (tmp_path, "hf://keras/resnet_18_imagenet"):
        with pytest.raises(ImportError) as error:
            load_source(source)
        message = str(error.value)
        assert message.endswith(
            "needs the optional package 'keras-hub': pip install 'kerastransfer[hub]'"
        )
        assert str(source) in message
