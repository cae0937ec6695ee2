"""`fine_tune` on streaming data: an unreadable file is named before any update from its batch,
or skipped and counted; augmentation and a cache reach the pipelines."""

import keras
import numpy as np
import pytest
from PIL import Image

from kerastransfer.fine_tuning import fine_tune
from kerastransfer.models import small_cnn


@pytest.fixture
def setting(tmp_path):
    keras.utils.set_random_seed(0)
    small_cnn((16, 16, 3), 2, filters=(4, 6), dense=8).save(tmp_path / "source.keras")
    rng = np.random.default_rng(0)
    for c, name in enumerate(("dark", "bright")):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(20):
            pixels = rng.integers(0, 120, (20, 20, 3)) + 120 * c
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "photos" / name / f"{i}.jpg")
    return str(tmp_path / "source.keras"), tmp_path / "photos"


def run(source, folder, **kw):
    kw = dict(epochs=2, warmup_epochs=2, batch_size=4, validation_split=0.25, verbose=0, **kw)
    return fine_tune(source, str(folder), **kw)


def test_an_unreadable_file_stops_fine_tune_with_its_name(setting):
    source, folder = setting
    bad = folder / "bright" / "7.jpg"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"Cannot read image file {bad}: truncated JPEG"):
        run(source, folder)


def test_skip_unreadable_trains_on_the_rest_and_reports_the_count(setting):
    source, folder = setting
    (folder / "dark" / "3.jpg").write_bytes(b"not an image")
    (folder / "bright" / "7.jpg").write_bytes(b"")
    result = run(source, folder, skip_unreadable=True)
    assert len(result.report.skipped) == 2
    assert "2 unreadable files skipped" in str(result.report)
    assert 0.5 <= result.report.test_accuracy <= 1.0


def test_augmentation_and_cache_reach_the_training_pipeline(setting, tmp_path):
    source, folder = setting
    plain = run(source, folder)
    augmented = run(source, folder, augment="photos", cache=str(tmp_path / "cache"))
    assert augmented.data.augment is not None and plain.data.augment is None
    assert (tmp_path / "cache" / "kerastransfer-cache.json").exists()
    assert plain.report.history["loss"] != augmented.report.history["loss"]
    for split in ("validation", "test"):  # the same examples were evaluated
        np.testing.assert_array_equal(plain.data.labels(split), augmented.data.labels(split))
