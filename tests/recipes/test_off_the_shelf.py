"""The off-the-shelf recipe: ImageNet features + linear probes against random features and
fine-tuning, the composed (exportable) models, a dataset given by path, resuming from
--backup-dir, and bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.data import load_dataset


@pytest.fixture(scope="module")
def recipe(load_recipe):
    return load_recipe("off_the_shelf")


def raw_test_images(n):
    """The first `n` test images of the embedded Fashion-MNIST (the recipe's test split), 28x28x1
    uint8, as a user has them."""
    fashion = load_dataset("embedded:fashion_mnist", validation_split=0)
    return fashion.take("test", range(n))[0].astype("uint8")


@pytest.fixture(scope="module")
def tiny_run(recipe, imagenet_weights, tmp_path_factory, copy_embedded):
    # The embedded Fashion-MNIST sample, given as an .npz path in a folder with a space.
    folder = tmp_path_factory.mktemp("data") / "my data"
    path = copy_embedded("fashion_mnist", folder / "fashion-copy.npz")
    backup, out = tmp_path_factory.mktemp("backup"), tmp_path_factory.mktemp("saved_models")
    argv = [
        "--dataset",
        str(path),
        "--image-size",
        "48",
        "--samples-per-class",
        "10",
        "--validation-split",
        "0.05",
        "--linear-epochs",
        "100",
        "--epochs",
        "1",
        "--batch-size",
        "50",
        "--backup-dir",
        str(backup),
        "--export",
        "--saved-models",
        str(out),
    ]
    result = recipe.main(argv)
    return {**result, "argv": argv}


def test_the_svm_model_serves_probabilities_from_raw_pixels(tiny_run):
    svm = tiny_run["models"]["svm"]
    assert svm.layers[-1].name == "probabilities"
    x = np.random.default_rng(1).uniform(0, 255, (5, 48, 48, 3)).astype("float32")
    np.testing.assert_allclose(svm.predict(x, verbose=0).sum(-1), 1.0, rtol=1e-5)


def test_imagenet_features_beat_random_features_and_rows_are_complete(tiny_run):
    rows = {r["key"]: r for r in tiny_run["rows"]}
    assert list(rows) == ["softmax", "svm", "random", "fine-tune"]
    # Linear probe: 1280 features x 10 classes + 10 biases; fine-tuning trains the network too
    # (BatchNormalization frozen), so it has far more trainable parameters.
    assert rows["softmax"]["trainable_params"] == rows["svm"]["trainable_params"] == 12_810
    assert rows["fine-tune"]["trainable_params"] > 2_000_000
    for r in rows.values():
        assert 0.0 <= r["test_accuracy"] <= 1.0
    # The same probe on the same architecture: ImageNet weights must give better features. At
    # this tiny scale (48x48, 10 images per class) the gap is small: five random initialisations
    # (seeds 0-4) gave 0.565-0.633 test accuracy against 0.655 for the ImageNet features.
    assert rows["softmax"]["test_accuracy"] > rows["random"]["test_accuracy"] + 0.02
    assert rows["softmax"]["test_accuracy"] > 0.4 and rows["svm"]["test_accuracy"] > 0.25
    assert rows["fine-tune"]["epochs"] == 1 and rows["fine-tune"]["warmup_epochs"] >= 1


def test_fine_tuning_keeps_batchnorm_frozen_and_trains_the_backbone(tiny_run):
    model = tiny_run["models"]["fine-tune"]
    layers = [
        sub
        for layer in model.layers
        for sub in (layer.layers if isinstance(layer, keras.Model) else [layer])
    ]
    batchnorm = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batchnorm and not any(layer.trainable for layer in batchnorm)
    assert any(isinstance(layer, keras.layers.Conv2D) and layer.trainable for layer in layers)


def test_export_serves_raw_images_like_the_keras_model(tiny_run, serve_in_fresh_process):
    path = tiny_run["export_path"]
    best = max(
        (r for r in tiny_run["rows"] if r["key"] != "random"), key=lambda r: r["val_accuracy"]
    )
    model = tiny_run["models"][best["key"]]
    raw = raw_test_images(4)
    expected = model.predict(
        keras.ops.image.resize(np.repeat(raw, 3, -1).astype("float32"), (48, 48)), verbose=0
    )
    served = serve_in_fresh_process(path, raw)["probabilities"]
    np.testing.assert_allclose(served, expected, rtol=1e-3, atol=1e-4)


def test_bad_input_is_a_clear_error(recipe, tmp_path):
    with pytest.raises(FileNotFoundError, match="--weights-file"):
        recipe.main(
            [
                "--weights-file",
                str(tmp_path / "missing.h5"),
                "--image-size",
                "32",
                "--samples-per-class",
                "1",
            ]
        )
    with pytest.raises(ValueError, match="--validation-split > 0"):
        recipe.main(["--validation-split", "0", "--image-size", "32", "--samples-per-class", "1"])
    with pytest.raises(SystemExit):
        recipe.main(["--backbone", "ResNet9"])


def test_a_rerun_with_backup_dir_redoes_nothing_and_exports_a_kept_model(
    recipe, tiny_run, monkeypatch, tmp_path
):
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was computed again")

    monkeypatch.setattr(recipe, "extract_features", no_training)
    monkeypatch.setattr(recipe, "fine_tune", no_training)
    again = recipe.main(tiny_run["argv"][:-2] + ["--saved-models", str(tmp_path)])
    assert again["rows"] == tiny_run["rows"] and again["models"] == {}
    # The best method's model of seed 0 came from --backup-dir and serves like the original.
    served = tf.saved_model.load(str(tmp_path / "off_the_shelf"))
    raw = raw_test_images(2)
    reference = tf.saved_model.load(tiny_run["export_path"])
    np.testing.assert_allclose(
        served.serve(raw)["probabilities"].numpy(),
        reference.serve(raw)["probabilities"].numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
