"""The one feature extractor: a source's pooled body, its frozen form, features streamed over
datasets, and the linear classifier on them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.methods.feature_extraction import (
    extract_features,
    feature_extractor,
    fit_linear_classifier,
    linear_classifier,
    pooled_body,
    stream_features,
)
from kerastransfer.models import small_cnn

IMAGES = np.random.default_rng(0).uniform(0, 255, (6, 12, 12, 1)).astype("float32")


def tiny(name="primary"):
    keras.utils.set_random_seed(0)
    return small_cnn((12, 12, 1), 3, filters=(4, 6), dense=8, name=name)


def test_the_body_of_a_model_is_everything_below_its_classifier_with_its_weights():
    source = tiny()
    body, report = pooled_body(source)
    assert body.output_shape == (None, 8) and body.trainable
    assert report.imported == ["conv1", "bn1", "conv2", "bn2", "fc1"]
    assert report.source_only == ["classifier"]
    below_classifier = keras.Model(source.inputs, source.get_layer("classifier").input)
    np.testing.assert_allclose(body(IMAGES), below_classifier(IMAGES), rtol=1e-6)
    random_body, random_report = pooled_body(source, weights=None)
    assert random_report.imported == []
    assert not np.allclose(random_body(IMAGES), body(IMAGES))
    with pytest.raises(ValueError, match=r"`input_shape` must be the source model's own"):
        pooled_body(source, (16, 16, 1))


def test_the_body_of_an_application_takes_raw_gray_pixels_with_an_adapted_first_kernel(tmp_path):
    keras.utils.set_random_seed(1)
    rgb = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "mobilenet.weights.h5")
    rgb.save_weights(path)
    body, report = pooled_body("MobileNetV2", (32, 32, 1), weights=path)
    assert report.adapted == {"Conv1": ([(3, 3, 3, 32)], [(3, 3, 1, 32)])}
    assert len(report.imported) > 100 and body.output_shape == (None, 1280)
    gray = IMAGES[:2, :, :, :].repeat(3, 1).repeat(3, 2)[:, :32, :32]
    pooled_rgb = keras.layers.GlobalAveragePooling2D()(rgb(np.repeat(gray, 3, -1) / 127.5 - 1))
    np.testing.assert_allclose(body(gray), pooled_rgb, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="`input_shape` must be given"):
        pooled_body("MobileNetV2")


def test_feature_extractor_is_frozen_and_cuts_at_a_layer_or_the_body():
    source = tiny()
    extractor = feature_extractor(source, "pool2", pooling="max")
    assert extractor.output_shape == (None, 6) and not extractor.trainable
    body = feature_extractor(source)
    assert body.output_shape == (None, 8) and not body.trainable
    with pytest.raises(ValueError, match="`layer_name` must be None for the keras.applications"):
        feature_extractor("MobileNetV2", "Conv1")
    with pytest.raises(ValueError, match="`pooling` must be"):
        feature_extractor(source, "pool2", pooling="mean")


def test_stream_features_go_split_by_split_in_float32_and_match_the_model():
    source = tiny()
    labels = np.arange(6) % 3
    train = tf.data.Dataset.from_tensor_slices((IMAGES, labels)).batch(4)
    test = tf.data.Dataset.from_tensor_slices((IMAGES[:3], labels[:3])).batch(4)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = feature_extractor(tiny("mixed"))
    finally:
        keras.config.set_dtype_policy("float32")
    batches = list(stream_features(mixed, {"train": train, "test": test}))
    assert [(name, int(x.shape[0])) for name, x, _ in batches] == [
        ("train", 4),
        ("train", 2),
        ("test", 3),
    ]
    assert all(x.dtype == tf.float32 for _, x, _ in batches)
    x, y = extract_features(feature_extractor(source), train)
    np.testing.assert_allclose(x, feature_extractor(source)(IMAGES), rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(ValueError, match="empty"):
        extract_features(feature_extractor(source), train.take(0))


def test_a_normalizing_linear_classifier_sees_features_at_one_scale():
    x = np.random.default_rng(0).uniform(0, 6, (4, 32)).astype("float32")
    classifier = linear_classifier(32, 3, normalize=True)
    assert classifier.count_params() == 32 * 3 + 3
    np.testing.assert_allclose(classifier(x), classifier(x * 1e-12), rtol=1e-4)
    normalized = keras.Model(classifier.inputs, classifier.get_layer("unit_rms").output)(x)
    np.testing.assert_allclose(np.sqrt(np.mean(np.square(normalized), axis=1)), 1.0, rtol=1e-5)


def test_a_flat_body_has_the_layers_of_the_nested_one_as_its_own(tmp_path):
    keras.utils.set_random_seed(2)
    rgb = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "mobilenet.weights.h5")
    rgb.save_weights(path)
    nested, nested_report = pooled_body("MobileNetV2", (32, 32, 3), weights=path)
    flat, flat_report = pooled_body("MobileNetV2", (32, 32, 3), weights=path, flat=True)
    assert not any(isinstance(layer, keras.Model) for layer in flat.layers)
    assert [layer.name for layer in flat.layers[:3]] == ["image", "preprocess", "Conv1"]
    assert flat_report.imported == nested_report.imported and not flat_report.unmatched
    images = np.repeat(IMAGES[:2], 3, -1).repeat(3, 1).repeat(3, 2)[:, :32, :32]
    np.testing.assert_array_equal(flat(images), nested(images))
    source = tiny()
    body, _ = pooled_body(source, flat=True)
    assert [layer.name for layer in body.layers] == [layer.name for layer in source.layers[:-1]]
    np.testing.assert_allclose(body(IMAGES), pooled_body(source)[0](IMAGES), rtol=1e-6)


def test_a_linear_classifier_without_early_stopping_or_weight_decay():
    x = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    y = np.arange(16) % 2
    plain = fit_linear_classifier(x, y, 2, epochs=4, validation=(x, y), patience=None, l2=0)
    assert plain.history.epoch == [0, 1, 2, 3] and plain.losses == []
    assert plain.get_layer("scores").kernel_regularizer is None
    assert linear_classifier(5, 2).get_layer("scores").kernel_regularizer is not None
    with pytest.raises(ValueError, match="`patience` must be a positive integer or None"):
        fit_linear_classifier(x, y, 2, patience=0)


def test_bad_datasets_and_features_are_named_before_any_graph_runs():
    extractor = feature_extractor(small_cnn((12, 12, 1), 3, filters=(2, 3), dense=4), "fc1")
    labels = np.arange(6) % 3
    big = tf.data.Dataset.from_tensor_slices((np.zeros((6, 14, 14, 1), "float32"), labels))
    with pytest.raises(ValueError, match=r"^The images of `dataset` must be of shape \(12, 12, 1"):
        extract_features(extractor, big.batch(2))
    with pytest.raises(ValueError, match=r"^`dataset` must yield \(images, labels\) batches"):
        extract_features(extractor, tf.data.Dataset.from_tensor_slices(IMAGES).batch(2))
    with pytest.raises(TypeError, match=r"must be a batched tf.data.Dataset.*from_tensor_slices"):
        extract_features(extractor, (IMAGES, labels))
    features = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    with pytest.raises(ValueError, match=r"labels must be class ids in 0..2.*labels \[3\]"):
        fit_linear_classifier(features, labels + 1, 3, epochs=1, loss="hinge")
    with pytest.raises(ValueError, match="non-empty 2-D array"):
        fit_linear_classifier(features[:0], labels[:0], 3, epochs=1)
    with pytest.raises(ValueError, match="non-empty 2-D array"):
        fit_linear_classifier(features[:, 0], labels, 3, epochs=1)
    nan = features.copy()
    nan[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"features must be finite.*first: \[2\]"):
        fit_linear_classifier(nan, labels, 3, epochs=1)
    with pytest.raises(ValueError, match="validation labels must be class ids"):
        fit_linear_classifier(features, labels, 3, epochs=1, validation=(features, labels + 5))
