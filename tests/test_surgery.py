import keras
import numpy as np
import pytest

from kerastransfer import surgery
from kerastransfer.models import mobilenet_v2_classifier, small_cnn


def tiny(classes=3, channels=1, name="primary"):
    return small_cnn((12, 12, channels), classes, filters=(4, 6), dense=8, name=name)


def weights_of(layer):
    return [w.copy() for w in layer.get_weights()]


def test_import_report_lists_imported_mismatched_and_unmatched():
    keras.utils.set_random_seed(1)
    source, target = tiny(10), tiny(5, name="target")
    report = surgery.import_matching_layers(source, target)
    assert report.imported == ["conv1", "bn1", "conv2", "bn2", "fc1"]
    assert report.mismatched == {"classifier": ([(8, 10), (10,)], [(8, 5), (5,)])}
    for name in report.imported:
        for a, b in zip(source.get_layer(name).get_weights(), target.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(
        source.get_layer("classifier").get_weights()[0][:, :5],
        target.get_layer("classifier").get_weights()[0],
    )
    assert "mismatched classifier" in str(report)


def test_new_head_is_unmatched_and_old_head_is_source_only():
    source = tiny(10)
    target = surgery.replace_head(tiny(10, name="t"), 4, cut_layer="dropout")
    report = surgery.import_matching_layers(source, target)
    assert report.unmatched == ["classifier_new"]
    assert report.source_only == ["classifier"]


def test_import_from_keras_file(tmp_path):
    source = tiny()
    path = tmp_path / "source.keras"
    source.save(path)
    target = tiny(name="t")
    report = surgery.import_matching_layers(str(path), target)
    assert len(report.imported) == 6
    np.testing.assert_array_equal(
        source.get_layer("conv2").get_weights()[0], target.get_layer("conv2").get_weights()[0]
    )


def test_import_imagenet_application_into_nested_backbone(imagenet_weights):
    target = mobilenet_v2_classifier((96, 96, 3), 5, weights=None)
    before = target.get_layer("classifier").get_weights()[0].copy()
    report = surgery.import_matching_layers("MobileNetV2", target)
    reference = keras.applications.MobileNetV2(
        include_top=False, weights="imagenet", input_shape=(96, 96, 3)
    )
    assert len(report.imported) == len(surgery.weighted_layers(reference)) > 100
    assert report.unmatched == ["classifier"] and not report.mismatched
    backbone = target.get_layer("mobilenetv2_1.00_96")
    for name in ("Conv1", "block_16_project", "Conv_1_bn"):
        for a, b in zip(
            reference.get_layer(name).get_weights(), backbone.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(before, target.get_layer("classifier").get_weights()[0])


def test_gray_target_on_rgb_source_sums_first_kernel(imagenet_weights):
    rgb = keras.applications.MobileNetV2(
        include_top=False, weights="imagenet", input_shape=(96, 96, 3)
    )
    gray = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 1))
    report = surgery.import_matching_layers(rgb, gray)
    assert report.adapted == {"Conv1": ([(3, 3, 3, 32)], [(3, 3, 1, 32)])}
    assert "Conv1" in report.imported and not report.mismatched
    image = np.random.default_rng(0).uniform(-1, 1, (2, 96, 96, 1)).astype("float32")
    out_rgb = keras.Model(rgb.input, rgb.get_layer("Conv1").output)(np.repeat(image, 3, -1))
    out_gray = keras.Model(gray.input, gray.get_layer("Conv1").output)(image)
    np.testing.assert_allclose(out_gray, out_rgb, atol=1e-5)


def test_rgb_target_on_gray_source_repeats_kernel_over_three():
    keras.utils.set_random_seed(2)
    gray, rgb = tiny(channels=1), tiny(channels=3, name="rgb")
    report = surgery.import_matching_layers(gray, rgb)
    assert list(report.adapted) == ["conv1"]
    image = np.random.default_rng(0).uniform(0, 255, (4, 12, 12, 1)).astype("float32")
    np.testing.assert_allclose(rgb(np.repeat(image, 3, -1)), gray(image), atol=1e-5)


def test_adapt_input_channels_rejects_other_counts():
    with pytest.raises(ValueError, match="from or to 1 input channel"):
        surgery.adapt_input_channels(np.zeros((3, 3, 3, 4)), 4)


def test_cut_and_replace_head_like_neon_vgg():
    base = tiny(10)
    cut = surgery.cut_at(base, "pool2")
    assert cut.output_shape == (None, 3, 3, 6)
    model = surgery.replace_head(base, 2, cut_layer="pool2", hidden=(16, 16), dropout=0.5)
    names = [layer.name for layer in model.layers]
    assert names[-6:] == [
        "flatten_new",
        "fc1_new",
        "dropout1_new",
        "fc2_new",
        "dropout2_new",
        "classifier_new",
    ]
    assert model.output_shape == (None, 2)
    assert model.get_layer("conv1") is base.get_layer("conv1")  # kept layers are shared
    avg = surgery.replace_head(base, 3, cut_layer="pool2", pooling="avg")
    assert avg.get_layer("avg_pool_new").output.shape == (None, 6)


def test_unknown_layer_name_says_what_exists():
    with pytest.raises(ValueError, match=r"No layer named 'conv3'.*Did you mean.*conv1"):
        surgery.cut_at(tiny(), "conv3")
    with pytest.raises(ValueError, match="pooling"):
        surgery.replace_head(tiny(), 2, pooling="mean")


def test_load_source_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="Did you mean MobileNetV2"):
        surgery.load_source("MobileNetV22")
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        surgery.load_source(str(tmp_path / "missing.keras"))


def test_levels_group_batch_norm_with_its_convolution():
    levels = surgery.weighted_levels(tiny())
    assert [[layer.name for layer in level] for level in levels] == [
        ["conv1", "bn1"],
        ["conv2", "bn2"],
        ["fc1"],
        ["classifier"],
    ]


def test_freeze_bottom_levels_keeps_them_and_their_statistics():
    keras.utils.set_random_seed(3)
    model = tiny()
    frozen = surgery.freeze_bottom_levels(model, 2)
    assert frozen == ["conv1", "bn1", "conv2", "bn2"]
    before = {n: weights_of(model.get_layer(n)) for n in ("conv1", "bn1", "conv2", "bn2", "fc1")}
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.uniform(0, 255, (32, 12, 12, 1)), rng.integers(0, 3, 32), epochs=2, verbose=0)
    for name in ("conv1", "bn1", "conv2", "bn2"):  # bn weights include the moving statistics
        for a, b in zip(before[name], model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(before["fc1"][0], model.get_layer("fc1").get_weights()[0])
    with pytest.raises(ValueError, match="between 0 and 4"):
        surgery.freeze_bottom_levels(tiny(), 5)


def test_duplicate_layer_names_are_refused():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")], name="inner")
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="dense")(inner(inputs))
    with pytest.raises(ValueError, match="appears twice"):
        surgery.weighted_layers(keras.Model(inputs, outputs))


def test_feature_extractor_on_a_nested_backbone_and_inside_it():
    from kerastransfer.methods.feature_extraction import feature_extractor

    model = mobilenet_v2_classifier((32, 32, 3), 3, weights=None)
    extractor = feature_extractor(model, "mobilenetv2_1.00_32")
    assert extractor.output_shape == (None, 1280) and not extractor.trainable
    with pytest.raises(ValueError, match="inside a nested model"):
        feature_extractor(model, "Conv1")


def test_corrupt_keras_files_are_named_as_such(tmp_path):
    cut = tmp_path / "cut.keras"
    tiny().save(tmp_path / "whole.keras")
    cut.write_bytes((tmp_path / "whole.keras").read_bytes()[:500])  # an interrupted copy
    with pytest.raises(
        ValueError, match=r"'.*cut.keras' is not a valid .keras file \(it is not a zip"
    ):
        surgery.load_source(str(cut))
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(ValueError, match="the zip archive has no config.json"):
        surgery.import_matching_layers(str(tmp_path / "other.keras"), tiny())
    with pytest.raises(FileNotFoundError, match="No model file at 'weights/primary.h5'"):
        surgery.load_source("weights/primary.h5")


def test_unknown_application_names_get_case_insensitive_suggestions():
    with pytest.raises(ValueError, match="Did you mean MobileNetV2"):
        surgery.load_source("MOBILENETV2")
    with pytest.raises(ValueError, match="Did you mean ResNet50"):
        surgery.load_source("resnet50")  # a module of keras.applications, not a model


def test_missing_imagenet_weights_offline_name_the_file_to_copy():
    import os
    import urllib.request

    # No network: route downloads to a closed local port (Keras downloads with urllib).
    proxy = urllib.request.ProxyHandler(
        {"http": "http://127.0.0.1:9", "https": "http://127.0.0.1:9"}
    )
    urllib.request.install_opener(urllib.request.build_opener(proxy))
    try:
        with pytest.raises(RuntimeError) as error:
            surgery.load_source("MobileNetV3Small")
    finally:
        urllib.request.install_opener(None)
    message = str(error.value)
    expected = os.path.join(
        os.environ["KERAS_HOME"], "models", "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    )
    assert f"copy that file to {expected}" in message
    assert "https://storage.googleapis.com/" in message


def test_importing_nothing_is_an_error_unless_asked_for():
    source = tiny()
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, name="features")(inputs)
    other = keras.Model(
        inputs, keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x)), name="other"
    )
    with pytest.raises(ValueError, match="No layer of target 'other' matches .* allow_empty=True"):
        surgery.import_matching_layers(source, other)
    report = surgery.import_matching_layers(source, other, allow_empty=True)
    assert report.imported == [] and report.unmatched == ["features", "head"]
    everything = [layer.name for layer in other.layers if layer.weights]
    assert surgery.import_matching_layers(source, other, skip=everything).imported == []
    with pytest.raises(ValueError, match="`skip` must be a list of layer names, not a string"):
        surgery.import_matching_layers(source, tiny(name="t"), skip="conv1")


def test_head_and_freezing_arguments_are_checked():
    with pytest.raises(ValueError, match="`num_classes` must be an integer >= 2. Received: 2.5"):
        surgery.replace_head(tiny(), 2.5)
    with pytest.raises(ValueError, match="`hidden` must be a list of positive layer sizes"):
        surgery.replace_head(tiny(), 2, hidden=(16, 0))
    with pytest.raises(ValueError, match="between 0 and 4 .* Received: 1.5"):
        surgery.freeze_bottom_levels(tiny(), 1.5)
