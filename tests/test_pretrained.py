"""`load_source`: models, .keras files and keras.applications names, one error for each
mistake; `application_preprocessing`."""

import os
import urllib.request

import keras
import numpy as np
import pytest

from kerastransfer.pretrained import application_preprocessing, load_source


def test_load_source_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="Did you mean MobileNetV2"):
        load_source("MobileNetV22")
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        load_source(str(tmp_path / "missing.keras"))


def test_unknown_application_names_get_case_insensitive_suggestions():
    with pytest.raises(ValueError, match="Did you mean MobileNetV2"):
        load_source("MOBILENETV2")
    with pytest.raises(ValueError, match="Did you mean ResNet50"):
        load_source("resnet50")  # a module of keras.applications, not a model


def test_missing_imagenet_weights_offline_name_the_file_to_copy():
    # No network: route downloads to a closed local port (Keras downloads with urllib).
    proxy = urllib.request.ProxyHandler(
        {"http": "http://127.0.0.1:9", "https": "http://127.0.0.1:9"}
    )
    urllib.request.install_opener(urllib.request.build_opener(proxy))
    try:
        with pytest.raises(RuntimeError) as error:
            load_source("MobileNetV3Small")
    finally:
        urllib.request.install_opener(None)
    message = str(error.value)
    expected = os.path.join(
        os.environ["KERAS_HOME"], "models", "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    )
    assert f"copy that file to {expected}" in message
    assert "https://storage.googleapis.com/" in message


def test_an_application_loads_at_the_input_shape_asked_for_with_the_weights_asked_for(tmp_path):
    keras.utils.set_random_seed(0)
    model = load_source("MobileNetV2", input_shape=(48, 48, 3), weights=None)
    assert model.input_shape == (None, 48, 48, 3) and model.output_shape == (None, 2, 2, 1280)
    path = str(tmp_path / "weights.weights.h5")
    model.save_weights(path)
    again = load_source("MobileNetV2", input_shape=(48, 48, 3), weights=path)
    np.testing.assert_array_equal(
        again.get_layer("Conv1").get_weights()[0], model.get_layer("Conv1").get_weights()[0]
    )
    with pytest.raises(ValueError, match=r"Cannot build keras.applications.MobileNetV2 .* \(8, 8"):
        load_source("MobileNetV2", input_shape=(8, 8, 3), weights=None)
    with pytest.raises(TypeError, match="`source` must be a keras.Model"):
        load_source(3)


def test_application_preprocessing_scales_raw_pixels_as_each_family_expects():
    pixels = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    tf_mode = application_preprocessing("MobileNetV2", 3)(pixels)
    np.testing.assert_allclose(tf_mode, [[[[-1, 0, 1]]]])
    caffe = application_preprocessing("VGG16", 3)(pixels)
    np.testing.assert_allclose(caffe, [[[[-123.68, 127.5 - 116.779, 255 - 103.939]]]], rtol=1e-5)
    assert application_preprocessing("EfficientNetB0", 3) is None  # scales pixels itself
