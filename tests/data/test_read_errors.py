"""A pipeline's failure to read an image becomes one ValueError naming the file and the fix."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerastransfer.data import load_dataset
from kerastransfer.data.read_errors import explain_read_error


def failure(data):
    try:
        for split in data.splits:
            for _ in data.dataset(split):
                pass
    except tf.errors.OpError as e:
        return e
    raise AssertionError("the pipeline read every file")


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(5):
            pixels = rng.integers(0, 256, (16, 16, 3), np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{i}.jpg")
    return tmp_path / "photos"


def test_checked_vanished_and_undecodable_files_are_named(folder):
    data = load_dataset(str(folder), image_shape=(8, 8, 3), validation_split=0)
    bad = folder / "a" / "1.jpg"
    bad.write_bytes(b"GIF89a")  # says GIF, holds nothing
    error = explain_read_error(failure(data), data)
    assert isinstance(error, ValueError)
    assert str(error).startswith(f"Cannot read image file {bad}: ")
    assert "skip_unreadable=True" in str(error)

    bad.unlink()
    error = explain_read_error(failure(data), data)
    assert f"Image file '{bad}' does not exist" in str(error)

    good = folder / "b" / "2.jpg"
    contents = bytearray(good.read_bytes())
    contents[2:40] = bytes(38)  # start and end markers intact, the header inside destroyed
    good.write_bytes(bytes(contents))
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(bad)
    raw = failure(data)
    assert str(good) not in raw.message  # TensorFlow's own message does not name it
    error = explain_read_error(raw, data)
    assert str(error).startswith(f"Cannot read image file {good}: ")
    assert "{{" not in str(error) and "[Op:" not in str(error)


def test_errors_that_are_not_about_images_are_left_alone():
    data = load_dataset("embedded:usps", samples_per_class=2)
    assert (
        explain_read_error(tf.errors.InvalidArgumentError(None, None, "shapes differ"), data)
        is None
    )
