import os

import keras
import numpy as np
import pytest

from kerastransfer.fine_tuning import METHODS, fine_tune
from kerastransfer.models import small_cnn

DATA = "embedded:usps"  # 16x16 gray digits, converted to the source's 28x28 input


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny pretrained source network saved as a .keras file."""
    keras.utils.set_random_seed(0)
    model = small_cnn((28, 28, 1), 10, filters=(4, 6), dense=16)
    model.compile("adam", "sparse_categorical_crossentropy")
    from kerastransfer.data import load_dataset

    data = load_dataset("embedded:mnist", image_shape=(28, 28, 1), samples_per_class=20)
    model.fit(data.train, epochs=2, verbose=0)
    path = tmp_path_factory.mktemp("source") / "source.keras"
    model.save(path)
    return str(path)


def _run(source, method, **kwargs):
    kwargs = {
        "samples_per_class": 5,
        "epochs": 2,
        "warmup_epochs": 3,
        "verbose": 0,
        "patience": 5,
        **kwargs,
    }
    return fine_tune(source, DATA, method=method, **kwargs)


class _Kernels(keras.callbacks.Callback):
    def __init__(self, names):
        super().__init__()
        self.names, self.snaps = names, []

    def _get(self, name):
        from kerastransfer.surgery import get_layer

        return get_layer(self.model, name).get_weights()[0].copy()

    def on_train_begin(self, logs=None):
        self.snaps.append({n: self._get(n) for n in self.names})

    def on_train_end(self, logs=None):
        self.snaps.append({n: self._get(n) for n in self.names})

    def moved(self, name):
        return not np.array_equal(self.snaps[0][name], self.snaps[1][name])


def test_neon_keeps_imported_layers_bit_identical_and_trains_the_head(source, tmp_path):
    watch = _Kernels(["conv1", "fc1", "classifier_new"])
    result = _run(source, "neon", callbacks=[watch], log_dir=str(tmp_path / "logs"))
    report = result.report
    assert report.imported == ["conv1", "bn1", "conv2", "bn2", "fc1"]
    assert report.new_layers == ["classifier_new"]
    assert not watch.moved("conv1") and not watch.moved("fc1")
    assert watch.moved("classifier_new")
    assert report.groups["imported_lr0"][0] == 0.0
    assert result.model.output_shape == (None, 10)
    assert 0 <= report.test_accuracy <= 1 and report.epochs == 2
    assert "method neon" in str(report) and "test" in str(report)
    assert os.listdir(tmp_path / "logs" / "train")  # TensorBoard events, group rates included


def test_discriminative_and_layerwise_decay_rates_rise_to_the_top(source):
    report = _run(source, "discriminative", learning_rate=1e-3, imported_rate=0.01).report
    rates = [rate for name, (rate, count) in report.groups.items() if count]
    assert rates == sorted(rates)
    assert rates[0] == pytest.approx(1e-5, rel=1e-5) and rates[-1] == pytest.approx(1e-3, rel=1e-5)
    report = _run(source, "layerwise_decay", learning_rate=1e-3, imported_rate=0.1).report
    rates = sorted(rate for rate, count in report.groups.values() if count)
    assert rates[0] == pytest.approx(1e-4, rel=1e-3) and rates[-1] == pytest.approx(1e-3)


def test_gradual_unfreezes_the_body_level_by_level(source):
    watch = _Kernels(["conv1", "fc1"])
    report = _run(source, "gradual", epochs=3, callbacks=[watch]).report
    assert report.history["trainable_levels"] == [1.0, 2.0, 3.0]
    assert watch.moved("fc1") and not watch.moved("conv1")  # conv1's turn comes at epoch 5


def test_bpa_computes_gamma_during_fit(source):
    report = _run(source, "bpa", epochs=1).report
    assert report.method == "bpa"
    # the split layer is the first convolution, nested in the body: gamma/body/<trunk>/conv1/...
    means = [k for k in report.history if k.startswith("gamma/") and k.endswith("/conv1/mean")]
    assert len(means) == 1 and 0 < report.history[means[0]][0] <= 1


class _Crash(keras.callbacks.Callback):
    """Dies at batch `batch` of epoch `epoch` (0-based), or at the end of that epoch (before
    the epoch's backup: `BackupAndRestore` comes after the caller's callbacks)."""

    def __init__(self, epoch, batch=None):
        super().__init__()
        self.epoch, self.batch, self.now = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.now = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.now == self.epoch and batch == self.batch:
            raise RuntimeError("killed")

    def on_epoch_end(self, epoch, logs=None):
        if self.batch is None and epoch == self.epoch:
            raise RuntimeError("killed")


class _Iterations(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.at_epoch_begin = []

    def on_epoch_begin(self, epoch, logs=None):
        self.at_epoch_begin.append(int(self.model.optimizer.iterations))


# Killed between epochs and mid-epoch, resumed: the uninterrupted run's weights and report. The
# range test's rate (discriminative, learning_rate="find"), Gamma (bpa), the unfrozen levels and
# the optimizer state (gradual) and early stopping's state come back with the backup.
# One in the default suite (mid-epoch, with the range test); the others under `-m slow`.
SLOW = pytest.mark.slow
RESUMES = [
    pytest.param("discriminative", dict(learning_rate="find"), 2, None, marks=SLOW),
    ("discriminative", dict(learning_rate="find"), 1, 2),
    pytest.param("gradual", {}, 2, 1, marks=SLOW),
    pytest.param("bpa", {}, 1, None, marks=SLOW),
]


@pytest.mark.parametrize("method,options,epoch,batch", RESUMES)
def test_a_killed_run_resumes_to_the_uninterrupted_result(
    source, tmp_path, method, options, epoch, batch
):
    options = dict(epochs=4, batch_size=16, patience=2, **options)
    steps = _Iterations()
    whole = _run(source, method, callbacks=[steps], **options)
    backup = str(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="killed"):
        _run(source, method, backup_dir=backup, callbacks=[_Crash(epoch, batch)], **options)
    resumed_steps = _Iterations()
    resumed = _run(source, method, backup_dir=backup, callbacks=[resumed_steps], **options)
    assert resumed.report.warmup_epochs == 0  # the restored weights hold the warmed-up head
    # the optimizer state came back (a fresh optimizer would count from 0)
    assert resumed_steps.at_epoch_begin[0] == steps.at_epoch_begin[epoch] > 0
    for got, want in zip(resumed.model.get_weights(), whole.model.get_weights()):
        np.testing.assert_array_equal(got, want)
    for key in ("history", "epochs", "best_epoch", "test_accuracy", "found_learning_rate"):
        assert getattr(resumed.report, key) == getattr(whole.report, key), key
    assert not os.path.exists(backup) or not os.listdir(backup)  # a finished run cleans up


def test_exports_and_validates_arguments(source, tmp_path):
    result = _run(source, "neon", epochs=1, export=str(tmp_path / "export"))
    assert (tmp_path / "export" / "saved_model.pb").exists()
    assert result.report.export_path == str(tmp_path / "export")
    with pytest.raises(ValueError, match="`method` must be one of"):
        fine_tune(source, DATA, method="bogus")
    with pytest.raises(ValueError, match="image_size"):
        fine_tune(source, DATA, image_size=64)
    with pytest.raises(ValueError, match="frozen_levels"):
        _run(source, "neon", frozen_levels=9)
    with pytest.raises(ValueError, match="must be 0 for method 'neon'"):
        _run(source, "neon", imported_rate=0.5)
    assert set(METHODS) == {"neon", "discriminative", "layerwise_decay", "gradual", "bpa"}


@pytest.mark.slow  # real ImageNet weights: ~20 s on 2 idle cores
def test_mobilenet_v2_imagenet_on_gray_images(imagenet_weights):
    result = fine_tune(
        "MobileNetV2",
        "embedded:fashion_mnist",
        image_size=32,
        samples_per_class=2,
        epochs=1,
        warmup_epochs=1,
        verbose=0,
        method="neon",
        batch_size=10,
    )
    report = result.report
    assert report.input_shape == (32, 32, 1)
    assert report.adapted["Conv1"][1][0] == (3, 3, 1, 32)  # RGB kernel summed to gray
    assert len(report.imported) > 100


def test_an_application_that_cannot_load_offline_names_the_file():
    import urllib.request

    # No network: route downloads to a closed local port (Keras downloads with urllib).
    proxy = urllib.request.ProxyHandler(
        {"http": "http://127.0.0.1:9", "https": "http://127.0.0.1:9"}
    )
    urllib.request.install_opener(urllib.request.build_opener(proxy))
    try:
        with pytest.raises(RuntimeError, match="copy that file to .*models/densenet121_.*notop.h5"):
            fine_tune("DenseNet121", DATA, image_size=32, samples_per_class=2, verbose=0)
    finally:
        urllib.request.install_opener(None)


def test_learning_rate_find_runs_the_range_test_first(source):
    report = _run(source, "discriminative", epochs=1, learning_rate="find").report
    assert 1e-7 <= report.found_learning_rate <= 1e-1
    top = max(rate for rate, count in report.groups.values() if count)
    assert top == pytest.approx(report.found_learning_rate, rel=1e-5)
    with pytest.raises(ValueError, match="'find'"):
        fine_tune(source, DATA, learning_rate="fast")
