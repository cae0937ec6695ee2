import numpy as np
import pytest

from kerastransfer import data as data_module
from kerastransfer.data import load_dataset, sources


def write_npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.integers(0, 256, (60, 8, 8), dtype=np.uint8),
        y_train=np.repeat(np.arange(3), 20),
        x_test=rng.integers(0, 256, (15, 8, 8), dtype=np.uint8),
        y_test=np.repeat(np.arange(3), 5),
    )
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


def test_embedded_sample_loads_with_stratified_seeded_validation():
    d = load_dataset("embedded:mnist", validation_split=0.1)
    x_val, y_val = d.take("validation", range(d.size("validation")))
    assert d.info.num_classes == 10 and d.info.image_shape == (28, 28, 1)
    assert d.size("train") == 4500 and d.size("validation") == 500
    assert x_val.dtype == np.float32 and x_val.shape == (500, 28, 28, 1)
    np.testing.assert_array_equal(d.labels("validation"), y_val)
    assert np.bincount(y_val).tolist() == [50] * 10
    again = load_dataset("embedded:mnist", validation_split=0.1)
    np.testing.assert_array_equal(again.labels("validation"), y_val)
    np.testing.assert_array_equal(again.take("validation", range(500))[0], x_val)
    other = load_dataset("embedded:mnist", validation_split=0.1, seed=1)
    assert not np.array_equal(other.take("validation", range(500))[0], x_val)
    images, labels = next(iter(d.test))
    assert (
        images.dtype.name == "float32"
        and labels.dtype.name == "int64"
        and images.shape == (64, 28, 28, 1)
    )


def test_samples_per_class_and_class_subsets():
    d = load_dataset("embedded:usps", samples_per_class=5, classes=[7, 3])
    assert np.bincount(d.labels("train")).tolist() == [5, 5]
    assert d.info.class_names == ("7", "3")
    full = load_dataset("embedded:usps", validation_split=0)
    x_test, y_test = d.take("test", range(d.size("test")))
    sevens = np.flatnonzero(full.labels("test") == 7)
    np.testing.assert_array_equal(x_test[y_test == 0], full.take("test", sevens)[0])
    assert (
        d.validation is not None
        and load_dataset("embedded:usps", validation_split=0).validation is None
    )
    with pytest.raises(ValueError, match="fewer than samples_per_class=400"):
        load_dataset("embedded:usps", samples_per_class=400)


def test_conversion_to_model_input_spec():
    pad = load_dataset("embedded:mnist", image_shape=(32, 32, 3), resize="pad", batch_size=8)
    x, _ = next(iter(pad.test))
    x = x.numpy()
    assert x.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # gray repeated three times
    assert np.all(x[:, :2] == 0) and np.all(x[:, :, -2:] == 0)  # centred padding
    native = load_dataset("embedded:mnist").take("test", range(8))[0]
    np.testing.assert_array_equal(x[:, 2:30, 2:30, 0], native[..., 0])
    resized = load_dataset("embedded:usps", image_shape=(28, 28, 1), batch_size=4)
    assert next(iter(resized.train))[0].shape == (4, 28, 28, 1)
    rgb = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype("float32")
    gray = data_module.convert_channels(rgb, 1).numpy()
    np.testing.assert_allclose(gray[..., 0], rgb @ np.array([0.2989, 0.587, 0.114]), rtol=1e-3)


def test_npz_files_and_their_errors(tmp_path):
    d = load_dataset(write_npz(tmp_path / "ok.npz"), validation_split=0.25)
    assert d.info.num_classes == 3 and d.info.image_shape == (8, 8, 1)
    assert np.bincount(d.labels("validation")).tolist() == [5, 5, 5]
    with pytest.raises(ValueError, match=r"lacks the arrays \['y_test'\]"):
        load_dataset(write_npz(tmp_path / "a.npz", y_test=None))
    with pytest.raises(ValueError, match="labels out of range: \\[-1\\]"):
        load_dataset(write_npz(tmp_path / "b.npz", y_train=np.repeat([-1, 1, 2], 20)))
    with pytest.raises(ValueError, match="must hold integer class ids"):
        load_dataset(write_npz(tmp_path / "c.npz", y_test=np.full(15, 0.5)))
    with pytest.raises(ValueError, match="Classes \\[2\\] have no test images"):
        load_dataset(write_npz(tmp_path / "d.npz", y_test=np.repeat([0, 1, 1], 5)), classes=[1, 2])
    with pytest.raises(ValueError, match="out of range"):
        load_dataset(write_npz(tmp_path / "e.npz"), classes=[0, 5])
    with pytest.raises(ValueError, match="images shaped"):
        load_dataset(write_npz(tmp_path / "f.npz", x_test=np.zeros((15, 8), np.uint8)))
    with pytest.raises(FileNotFoundError):
        load_dataset(str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="Unknown embedded dataset 'svhn'"):
        load_dataset("embedded:svhn")


def test_image_folders(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for name in ("cat", "dog"):
            folder = tmp_path / "pets" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                keras.utils.save_img(
                    folder / f"{i}.png", rng.integers(0, 256, (10, 12, 3)).astype("uint8")
                )
    d = load_dataset(str(tmp_path / "pets"), validation_split=0.5, image_shape=(16, 16, 3))
    assert d.info.class_names == ("cat", "dog") and d.info.num_classes == 2
    assert d.size("train") == 6 and d.size("test") == 4
    assert next(iter(d.train))[0].shape[1:] == (16, 16, 3)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir(parents=True)
    with pytest.raises(ValueError, match="hold no images"):
        load_dataset(str(tmp_path / "empty"))


def test_tfds_names_fail_fast_and_clearly_offline(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="Did you mean svhn_cropped"):
        load_dataset("svhn_croped")
    monkeypatch.setattr(sources, "_network_available", lambda: False)
    with pytest.raises(RuntimeError, match="pass data_dir=DIR"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_shared_full_datasets_load(shared_data):
    d = load_dataset(str(shared_data / "mnist_small.npz"), samples_per_class=40)
    assert np.bincount(d.labels("train")).tolist() == [40] * 10
    assert d.size("test") == 2000


def test_images_and_labels_must_pair_up(tmp_path):
    with pytest.raises(ValueError, match="one label per image. Received 60 images and 50 labels"):
        load_dataset(write_npz(tmp_path / "a.npz", y_train=np.repeat(np.arange(3), 20)[:50]))
    with pytest.raises(ValueError, match="x_test and y_test .* 15 images and 16 labels"):
        load_dataset(write_npz(tmp_path / "b.npz", y_test=np.repeat(np.arange(4), 4)))
    with pytest.raises(ValueError, match=r"One-hot labels\? Pass y.argmax\(-1\)"):
        load_dataset(write_npz(tmp_path / "c.npz", y_test=np.eye(3)[np.repeat(np.arange(3), 5)]))


def test_float_images_in_unit_range_warn_and_rescale_fixes_them(tmp_path):
    rng = np.random.default_rng(0)
    unit = dict(
        x_train=rng.uniform(0, 1, (60, 8, 8)).astype("float32"),
        x_test=rng.uniform(0, 1, (15, 8, 8)).astype("float32"),
    )
    path = write_npz(tmp_path / "unit.npz", **unit)
    with pytest.warns(UserWarning, match="Pass `rescale=255`"):
        load_dataset(path, validation_split=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = load_dataset(path, validation_split=0, rescale=255)
        kept = load_dataset(path, validation_split=0, rescale=1)  # [0, 1] on purpose: no warning
    x_test = d.take("test", range(d.size("test")))[0]
    np.testing.assert_allclose(x_test[..., 0], unit["x_test"] * 255, rtol=1e-6)
    assert float(kept.take("train", range(kept.size("train")))[0].max()) <= 1.0
    with pytest.raises(ValueError, match="`rescale` must be a positive number"):
        load_dataset(path, rescale=-1)


def test_non_finite_pixels_are_refused(tmp_path):
    x = np.random.default_rng(0).uniform(0, 255, (60, 8, 8)).astype("float32")
    x[7, 1, 2] = np.nan
    x[9, 0, 0] = np.inf
    with pytest.raises(
        ValueError, match=r"NaN or infinite pixels in 2 images \(first indices: \[7, 9\]\)"
    ):
        load_dataset(write_npz(tmp_path / "nan.npz", x_train=x))


def test_arguments_are_checked_before_any_work(tmp_path):
    path = write_npz(tmp_path / "ok.npz")
    for shape in [(28, 28), (28, 28, 1, 1), (0, 28, 1), "28x28"]:
        with pytest.raises(ValueError, match="`image_shape` must be \\(height, width, channels\\)"):
            load_dataset(path, image_shape=shape)
    with pytest.raises(ValueError, match="1 \\(gray\\) or 3 \\(RGB\\) channels"):
        load_dataset(path, image_shape=(8, 8, 4))
    for size in (0, -8, 2.5, True):
        with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
            load_dataset(path, batch_size=size)
    with pytest.raises(ValueError, match="`classes` must be a list of class ids"):
        load_dataset(path, classes=2)
    with pytest.raises(ValueError, match="`samples_per_class` must be a positive integer"):
        load_dataset(path, samples_per_class=2.5)
    with pytest.raises(ValueError, match="`validation_split` must be a number in \\[0, 1\\)"):
        load_dataset(path, validation_split="0.1")


def test_empty_or_single_class_sets_are_refused(tmp_path):
    with pytest.raises(ValueError, match="x_test of 'a.npz' is empty"):
        load_dataset(
            write_npz(tmp_path / "a.npz", x_test=np.zeros((0, 8, 8), np.uint8), y_test=np.zeros(0))
        )
    with pytest.raises(ValueError, match="hold a single class \\(\\[0\\]\\)"):
        load_dataset(
            write_npz(tmp_path / "b.npz", y_train=np.zeros(60, int), y_test=np.zeros(15, int))
        )
    with pytest.raises(ValueError, match="Classes \\[2\\] have no train images"):
        load_dataset(
            write_npz(tmp_path / "c.npz", y_train=np.repeat([0, 1, 1], 20)), classes=[0, 2]
        )


def test_pixels_outside_0_255_and_channels_first_are_flagged(tmp_path):
    x16 = np.random.default_rng(0).integers(0, 4096, (60, 8, 8)).astype(np.uint16)
    with pytest.warns(UserWarning, match="pixel values up to 409[0-9], above 255"):
        load_dataset(write_npz(tmp_path / "a.npz", x_train=x16))
    nchw = np.zeros((60, 1, 8, 8), np.uint8)
    with pytest.raises(ValueError, match=r"Channels first\? .* x.transpose\(0, 2, 3, 1\)"):
        load_dataset(write_npz(tmp_path / "b.npz", x_train=nchw))


@pytest.mark.parametrize(
    "source, kwargs, digests",
    [
        ("embedded:mnist", dict(samples_per_class=5, seed=3),
         ["d4526e0cb1d3", "99d5b47d836a", "83d1c1aa8951"]),
        ("embedded:usps", dict(classes=[7, 2, 9], validation_split=0.2, seed=1),
         ["9df3a589e6b5", "96417aea8a17", "1835992c0e53"]),
    ],
)  # fmt: skip
def test_the_same_seed_draws_the_examples_the_array_loader_drew(source, kwargs, digests):
    """Digests of each split's images and labels as the loader that held whole arrays drew them
    (recorded from it): the index-based loader must draw exactly those, in that order."""
    import hashlib

    d = load_dataset(source, **kwargs)
    for split, digest in zip(("train", "validation", "test"), digests):
        x, y = d.take(split, np.arange(d.size(split)))
        data = x.astype(np.uint8).tobytes() + y.astype(np.int64).tobytes()
        assert hashlib.sha1(data).hexdigest()[:12] == digest, split
