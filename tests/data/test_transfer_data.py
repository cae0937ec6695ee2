"""`TransferData` and `to_image_shape` check their arguments when built, not when iterated."""

import numpy as np
import pytest

from kerastransfer.data import DatasetInfo, TransferData, load_dataset, to_image_shape


def splits(n=6):
    x = np.zeros((n, 4, 4, 1), np.uint8)
    return {"train": (x, np.arange(n) % 2), "test": (x, np.arange(n) % 2)}


def test_transfer_data_checks_shape_batch_size_and_empty_splits():
    info = DatasetInfo("toy", 2, ("a", "b"), (4, 4, 1))
    with pytest.raises(ValueError, match="`image_shape` must be \\(height, width, channels\\)"):
        TransferData(info, splits(), image_shape=(4, 4))
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        TransferData(info, splits(), image_shape=(4, 4, 1), batch_size=0)
    with pytest.raises(ValueError, match="`resize` must be 'resize'"):
        TransferData(info, splits(), image_shape=(4, 4, 1), resize="crop")
    empty = splits()
    empty["test"] = (np.zeros((0, 4, 4, 1), np.uint8), np.zeros(0, int))
    with pytest.raises(ValueError, match=r"Splits \['test'\] of 'toy' are empty"):
        TransferData(info, empty, image_shape=(4, 4, 1))


def test_explicit_batch_size_zero_is_refused_not_replaced():
    d = load_dataset("embedded:usps", samples_per_class=2, batch_size=8)
    assert next(iter(d.dataset("test", batch_size=3)))[0].shape[0] == 3
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer. Received: 0"):
        d.dataset("test", batch_size=0)


def test_to_image_shape_checks_its_shape():
    with pytest.raises(ValueError, match="`image_shape` must be \\(height, width, channels\\)"):
        to_image_shape(np.zeros((1, 4, 4, 1)), (4, 4))
    with pytest.raises(ValueError, match="1 \\(gray\\) or 3 \\(RGB\\) channels"):
        to_image_shape(np.zeros((1, 4, 4, 1)), (4, 4, 2))


def png_folder(root, per_class=(7, 5, 6), size=(12, 10)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, n in enumerate(per_class):
        for i in range(n):
            sub = root / f"class_{c}" / ("nested" if i % 3 == 0 else "")
            sub.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(sub / f"img_{i:02d}.png")
    return root


def test_a_folder_is_indexed_as_keras_indexes_it_and_decoded_alike(tmp_path):
    import keras

    folder = png_folder(tmp_path / "photos")
    reference = keras.utils.image_dataset_from_directory(
        folder, image_size=(12, 10), batch_size=None, shuffle=False, verbose=False
    )
    data = load_dataset(str(folder), image_shape=(12, 10, 3), validation_split=0.25, seed=3)
    order = list(reference.file_paths)
    pixels = {p: x.numpy() for p, (x, _) in zip(order, reference)}
    for split in ("train", "validation", "test"):
        paths = [data.describe(split, i) for i in range(data.size(split))]
        assert [order.index(p) for p in paths] == sorted(order.index(p) for p in paths)
        x, y = data.arrays(split)
        for path, image, label in zip(paths, x, y):
            np.testing.assert_array_equal(image, pixels[path])
            assert label == int(path.split("class_")[1][0])
    again = load_dataset(str(folder), image_shape=(12, 10, 3), validation_split=0.25, seed=3)
    assert [again.describe("validation", i) for i in range(again.size("validation"))] == [
        data.describe("validation", i) for i in range(data.size("validation"))
    ]


def held_bytes(obj, seen=None):
    """Bytes of the NumPy arrays and tensors reachable from `obj` through attributes and
    containers: what a Python object holds, whatever the allocator does."""
    import tensorflow as tf

    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type)) or obj is None:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, tf.Tensor):
        return obj.numpy().nbytes
    if isinstance(obj, dict):
        items = list(obj.keys()) + list(obj.values())
    elif isinstance(obj, (list, tuple, set)):
        items = list(obj)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("kerastransfer"):
        items = list(vars(obj).values())
    else:
        return 0
    return sum(held_bytes(item, seen) for item in items)


def test_a_folder_pipeline_never_holds_a_split(tmp_path):
    folder = png_folder(tmp_path / "photos", per_class=(40, 40), size=(32, 32))
    data = load_dataset(str(folder), image_shape=(64, 64, 3), validation_split=0.2, batch_size=8)
    decoded = 80 * 64 * 64 * 3 * 4  # the whole folder at the model's size, float32
    before = held_bytes(data)
    assert before < decoded / 50  # an index: paths and labels
    train = data.train
    epochs = [[y.numpy() for _, y in train] for _ in range(2)]
    assert all(sum(map(len, e)) == data.size("train") for e in epochs)
    assert held_bytes(data) == before  # iterating keeps nothing
    assert not np.array_equal(np.concatenate(epochs[0]), np.concatenate(epochs[1]))  # reshuffled


def test_augmentation_changes_training_batches_only():
    kw = dict(samples_per_class=8, image_shape=(28, 28, 1), batch_size=16, seed=1)
    plain, augmented = (
        load_dataset("embedded:mnist", **kw),
        load_dataset("embedded:mnist", augment="auto", **kw),
    )
    for split in ("validation", "test"):
        for (a, ya), (b, yb) in zip(plain.dataset(split), augmented.dataset(split)):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(ya, yb)
    (a, ya), (b, yb) = next(iter(plain.train)), next(iter(augmented.train))
    np.testing.assert_array_equal(ya, yb)  # the same examples, in the same order
    assert a.shape == b.shape and np.abs(a.numpy() - b.numpy()).mean() > 1.0
    again = load_dataset("embedded:mnist", augment="auto", **kw)
    np.testing.assert_array_equal(next(iter(again.train))[0], b)  # seeded
