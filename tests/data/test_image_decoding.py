"""Image files decoded in the pipeline: every colour model converted, large JPEGs decoded small,
unreadable files named (or skipped and recorded), never a weight update from a partial batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerastransfer.data import load_dataset
from kerastransfer.data.image_decoding import _decode_rgb, read_image


def photo(rng, h=20, w=24):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def folder_of(tmp_path, per_class=6, ext="png", size=(20, 24)):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(photo(rng, *size)).save(tmp_path / "pets" / name / f"{i}.{ext}")
    return tmp_path / "pets"


def test_every_colour_model_in_one_folder_comes_out_rgb(tmp_path):
    ramp = np.linspace(0, 255, 24)[None, :, None] * np.ones((20, 1, 1))
    rgb = np.concatenate([ramp, ramp[:, ::-1], np.full_like(ramp, 90)], -1).astype(np.uint8)
    folder = tmp_path / "mixed"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        Image.fromarray(rgb).save(folder / name / "rgb.png")
        Image.fromarray(rgb).convert("RGBA").save(folder / name / "rgba.png")
        Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(
            folder / name / "palette.png"
        )
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(folder / name / "gray16.png")
        Image.fromarray(rgb[..., 0]).save(folder / name / "gray.jpg", quality=95)
        Image.fromarray(rgb).convert("CMYK").save(folder / name / "cmyk.jpg", quality=95)
    data = load_dataset(str(folder), image_shape=(20, 24, 3), validation_split=0, batch_size=64)
    x = {data.describe("train", i).rsplit("/", 1)[1]: img for i, img in enumerate(data.arrays("train")[0])}  # noqa: E501  # fmt: skip
    x.update({data.describe("test", i).rsplit("/", 1)[1]: img for i, img in enumerate(data.arrays("test")[0])})  # noqa: E501  # fmt: skip
    assert len(x) == 6 and all(img.shape == (20, 24, 3) for img in x.values())
    np.testing.assert_array_equal(x["rgb.png"], rgb)
    np.testing.assert_array_equal(x["rgba.png"], rgb)  # alpha dropped
    assert np.abs(x["palette.png"] - rgb).mean() < 8  # a 256-colour palette
    np.testing.assert_allclose(x["gray16.png"][..., 1], rgb[..., 0], atol=1)  # 16 -> 8 bits
    assert np.abs(x["gray.jpg"][..., 2] - rgb[..., 0]).mean() < 4
    assert np.abs(x["cmyk.jpg"] - rgb).mean() < 8


def test_a_large_jpeg_is_decoded_at_a_fraction_of_its_size(tmp_path):
    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1600, 2400, 3), np.uint8)).save(big)
    contents = tf.io.read_file(str(big))
    assert _decode_rgb(contents, 96, 96).shape == (200, 300, 3)  # 1/8: 64x fewer pixels
    assert _decode_rgb(contents, 500, 500).shape == (800, 1200, 3)  # 1/2 still covers 500
    assert _decode_rgb(contents, 1000, 1000).shape == (1600, 2400, 3)
    assert read_image(big, (96, 96, 3)).shape == (96, 96, 3)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda b: b[: len(b) // 2], "truncated JPEG"),
        (lambda b: b"", "the file is empty"),
        (lambda b: b"<html>not found</html>", "not a JPEG, PNG, GIF or BMP image"),
    ],
)
def test_an_unreadable_file_found_mid_epoch_is_named(tmp_path, damage, reason):
    folder = folder_of(tmp_path, ext="jpg")
    broken = folder / "dog" / "3.jpg"
    data = load_dataset(str(folder), image_shape=(8, 8, 3), validation_split=0, batch_size=2)
    broken.write_bytes(damage(broken.read_bytes()))  # damaged after indexing
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{broken}: {reason}"):
        for _ in data.train:
            pass
    with pytest.raises(ValueError, match=f"Cannot read image file {broken}: {reason}"):
        read_image(broken, (8, 8, 3))


def test_no_weight_moves_from_the_batch_that_holds_an_unreadable_file(tmp_path):
    folder = folder_of(tmp_path, per_class=100, ext="jpg", size=(6, 6))
    data = load_dataset(str(folder), image_shape=(6, 6, 3), validation_split=0, batch_size=4)
    paths = {}
    for i in range(data.size("train")):
        paths.setdefault(read_image(data.describe("train", i), (6, 6, 3)).tobytes(), i)
    train = data.train  # its first epoch: the order fit will see
    epoch_order = [paths[x.tobytes()] for x, _ in train.unbatch().as_numpy_iterator()]
    broken = data.describe("train", epoch_order[141])  # in the 36th batch of 4
    with open(broken, "r+b") as f:
        f.truncate(30)
    model = keras.Sequential(
        [keras.Input((6, 6, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(True))
    seen = []
    saver = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: seen.append([w.copy() for w in model.get_weights()])
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=broken):
        model.fit(data.train, epochs=1, callbacks=[saver], verbose=0)
    assert 0 < len(seen) < 36  # stopped before the batch that holds the file
    for after, now in zip(seen[-1], model.get_weights()):
        np.testing.assert_array_equal(after, now)  # nothing moved after the last full batch


def test_skip_unreadable_records_bad_and_vanished_files_and_trains_on_the_rest(tmp_path):
    folder = folder_of(tmp_path, ext="jpg")
    data = load_dataset(
        str(folder), image_shape=(8, 8, 3), validation_split=0, batch_size=4, skip_unreadable=True
    )
    (folder / "dog" / "1.jpg").write_bytes(b"")
    (folder / "cat" / "2.jpg").unlink()  # vanished between indexing and reading
    seen = sum(len(y) for _, y in data.dataset("train")) + sum(len(y) for _, y in data.test)
    assert seen == 12 - 2
    assert len(data.skipped) == 2
    assert data.skipped.files[str(folder / "dog" / "1.jpg")] == "the file is empty"
    assert "cannot be read" in data.skipped.files[str(folder / "cat" / "2.jpg")]
    assert "2 unreadable files skipped" in repr(data.skipped)


def test_a_vanished_file_is_named_without_skip(tmp_path):
    folder = folder_of(tmp_path, ext="png")
    data = load_dataset(str(folder), image_shape=(8, 8, 3), validation_split=0)
    gone = folder / "cat" / "0.png"
    gone.unlink()
    with pytest.raises(tf.errors.NotFoundError, match=str(gone)):
        for _ in data.train:
            pass
    with pytest.raises(ValueError, match=f"Image file '{gone}' does not exist"):
        read_image(gone, (8, 8, 3))
