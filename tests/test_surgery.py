import keras
import numpy as np
import pytest

from kerastransfer import surgery
from kerastransfer.models import mobilenet_v2_classifier, small_cnn
from kerastransfer.pretrained import load_source


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
    before = target.get_layer("classifier_new").get_weights()[0].copy()
    report = surgery.import_matching_layers("MobileNetV2", target)
    reference = keras.applications.MobileNetV2(
        include_top=False, weights="imagenet", input_shape=(96, 96, 3)
    )
    assert len(report.imported) == len(surgery.weighted_layers(reference)) > 100
    assert report.unmatched == ["classifier_new"] and not report.mismatched
    backbone = target.get_layer("mobilenetv2_1.00_96")
    for name in ("Conv1", "block_16_project", "Conv_1_bn"):
        for a, b in zip(
            reference.get_layer(name).get_weights(), backbone.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(before, target.get_layer("classifier_new").get_weights()[0])


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


@pytest.mark.parametrize("channels", [0, -1, 1.5, True])
@pytest.mark.parametrize("c_in", [1, 3])
def test_adapt_input_channels_refuses_a_channel_count_below_one(c_in, channels):
    # a gray kernel "adapted" to 0 channels used to come back empty, silently
    with pytest.raises(ValueError, match="`channels` must be an integer >= 1"):
        surgery.adapt_input_channels(np.ones((3, 3, c_in, 4)), channels)


def test_adapt_input_channels_refuses_what_is_not_a_convolution_kernel():
    with pytest.raises(ValueError, match=r"`kernel` must be a convolution kernel.*\(3, 4\)"):
        surgery.adapt_input_channels(np.ones((3, 4)), 1)


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
    assert [layer.name for layer in avg.layers][-2:] == ["avg_pool_new", "classifier_new"]


def test_replace_head_drops_out_before_a_lone_classifier_and_computes_it_in_float32():
    keras.utils.set_random_seed(4)
    model = surgery.replace_head(tiny(10), 4, cut_layer="fc1", dropout=0.5)
    assert [layer.name for layer in model.layers][-2:] == ["dropout_new", "classifier_new"]
    x = np.random.default_rng(0).uniform(0, 255, (64, 12, 12, 1)).astype("float32")
    inference = model(x, training=False)
    assert not np.allclose(model(x, training=True), inference)  # half the features dropped
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = surgery.replace_head(tiny(10, name="mixed"), 4, cut_layer="fc1", dropout=0.5)
    finally:
        keras.config.set_dtype_policy("float32")
    assert mixed.get_layer("fc1").compute_dtype == "bfloat16"
    assert mixed.get_layer("classifier_new").compute_dtype == "float32"


def test_cut_at_a_nested_model_ends_at_its_call():
    model = mobilenet_v2_classifier((32, 32, 3), 3, weights=None)
    cut = surgery.cut_at(model, "mobilenetv2_1.00_32")
    assert cut.output_shape == (None, 1280)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    backbone = model.get_layer("mobilenetv2_1.00_32")
    np.testing.assert_allclose(cut(x), backbone(x / 127.5 - 1), rtol=1e-5, atol=1e-5)


def test_unknown_layer_name_says_what_exists():
    with pytest.raises(ValueError, match=r"No layer named 'conv3'.*Did you mean.*conv1"):
        surgery.cut_at(tiny(), "conv3")
    with pytest.raises(ValueError, match="pooling"):
        surgery.replace_head(tiny(), 2, pooling="mean")


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
        load_source(str(cut))
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(ValueError, match="the zip archive has no config.json"):
        surgery.import_matching_layers(str(tmp_path / "other.keras"), tiny())
    with pytest.raises(FileNotFoundError, match="No model file at 'weights/primary.h5'"):
        load_source("weights/primary.h5")


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


def test_wrong_types_are_named():
    with pytest.raises(
        TypeError, match=r"`model` must be a keras.Model. Received: str.*load_source"
    ):
        surgery.cut_at("model.keras", "conv1")
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        surgery.freeze_bottom_levels("model.keras", 1)
    with pytest.raises(TypeError, match=r"named by a string. Received: 3 \(int\)"):
        surgery.cut_at(tiny(), 3)
    with pytest.raises(ValueError, match=r"`hidden` must be a list.*e.g. \[256\]"):
        surgery.replace_head(tiny(), 3, hidden=5)
    with pytest.raises(ValueError, match=r"`dropout` must be in \[0, 1\). Received: '0.5'"):
        surgery.replace_head(tiny(), 3, dropout="0.5")
    assert surgery.replace_head(tiny(), 3, dropout=np.float32(0.5)).output_shape == (None, 3)
