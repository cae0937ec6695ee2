"""Seeded augmentation: shape, dtype and range kept, reproducible per seed, no flips for digits."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.data.augmentation import (
    AUGMENTATION_PRESETS,
    AUGMENTATIONS,
    augment_batch,
    augment_dataset,
    augmentation_preset,
    build_augmentation,
)


def images(n=32, size=16, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8).astype(np.float32)


def epochs(augment, seed, x, count=2):
    """`count` epochs of a fresh pipeline, each the concatenation of its augmented batches."""
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(len(x))))
    ds = augment_dataset(ds.batch(8), build_augmentation(augment, seed=seed))
    return [np.concatenate([b.numpy() for b, _ in ds]) for _ in range(count)]


def left_brighter(x):
    """Per image: is the left half brighter than the right half?"""
    half = x.shape[2] // 2
    return x[:, :, :half].mean(axis=(1, 2, 3)) > x[:, :, half:].mean(axis=(1, 2, 3))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("augment", [*AUGMENTATIONS, *AUGMENTATION_PRESETS])
def test_shape_dtype_and_range_are_kept_and_images_change(augment, channels):
    x = images(channels=channels)
    out, labels = augment_batch(build_augmentation(augment, seed=1))(tf.constant(x), np.arange(32))
    assert out.shape == x.shape and out.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 255.0
    assert not np.array_equal(out.numpy(), x)
    np.testing.assert_array_equal(labels, np.arange(32))


def test_contrast_stays_in_0_255_where_unclipped_it_would_not():
    x = images(channels=1)
    x[:, :4] = 255.0  # a bright band: stretching contrast pushes it over 255
    out = augment_batch(build_augmentation("contrast", seed=0))(x, None)[0].numpy()
    assert out.max() == 255.0 and out.min() == 0.0
    assert np.abs(out - x).max() > 1.0


def test_same_seed_gives_identical_batches_over_two_epochs_other_seed_differs():
    x = images()
    first, again, other = epochs("photos", 3, x), epochs("photos", 3, x), epochs("photos", 4, x)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1]), "each epoch must draw new augmentations"
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0], x)


def test_seed_is_per_name_not_per_position_in_the_request():
    x = images(n=8)
    a = augment_batch(build_augmentation("rotation,zoom", seed=5))(x, None)[0]
    b = augment_batch(build_augmentation(["zoom", "rotation", "zoom"], seed=5))(x, None)[0]
    np.testing.assert_array_equal(a.numpy(), b.numpy())


_OP_DETERMINISM = """
import json, sys
import numpy as np, tensorflow as tf
tf.config.experimental.enable_op_determinism()
from kerastransfer.data.augmentation import augment_batch, build_augmentation
x = np.random.default_rng(0).integers(0, 256, (32, 12, 12, 1), dtype=np.uint8).astype("float32")
def run(seed):
    augment = augment_batch(build_augmentation("photos", seed=seed))
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(32))).batch(8)
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return [np.concatenate([b.numpy() for b, _ in ds]) for _ in range(2)]
a, b, c = run(7), run(7), run(8)
print(json.dumps({
    "same": all(np.array_equal(p, q) for p, q in zip(a, b)),
    "epochs_differ": not np.array_equal(a[0], a[1]),
    "seeds_differ": not np.array_equal(a[0], c[0]),
    "changed": not np.array_equal(a[0], x),
    "in_range": bool(a[0].min() >= 0 and a[0].max() <= 255),
}))
"""


def test_works_and_is_reproducible_under_op_determinism_even_with_parallel_map(run_python):
    # Op determinism is process-global: a fresh process. TensorFlow runs a map with stateful ops
    # (the layers' seed variables) serially then, so AUTOTUNE is safe there.
    result = json.loads(run_python(_OP_DETERMINISM).stdout.strip().splitlines()[-1])
    assert result == dict.fromkeys(result, True) and len(result) == 5, result


def test_digits_never_flip_photos_sometimes_do():
    digits = build_augmentation("digits", seed=0)
    assert not any(isinstance(layer, keras.layers.RandomFlip) for layer in digits.layers)
    auto = build_augmentation("auto", seed=0, dataset_name="/data/MNIST_small.npz")
    assert [layer.name for layer in auto.layers] == list(AUGMENTATION_PRESETS["digits"])
    x = images(n=64, channels=1)
    x[:, :, :8] = np.minimum(x[:, :, :8] + 200.0, 255.0)  # left half clearly brighter
    x[:, :, 8:] *= 0.2
    assert left_brighter(x).all()
    assert left_brighter(augment_batch(digits)(x, None)[0].numpy()).all()
    photos = left_brighter(augment_batch(build_augmentation("photos", seed=0))(x, None)[0].numpy())
    assert 10 < photos.sum() < 54, "about half the photos should come out mirrored"


def test_crop_is_pad_and_random_crop_per_image():
    x = np.maximum(images(n=16, size=16), 1.0)  # no zeros in the images: zeros are the padding
    out = augment_batch(build_augmentation("crop", seed=0))(x, None)[0].numpy()
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    shifts = []
    for image, source in zip(out, padded):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if np.array_equal(image, source[dy : dy + 16, dx : dx + 16])
        ]
        assert found, "every crop must be a 16x16 window of the zero-padded image"
        shifts.append(found[0])
    assert len(set(shifts)) > 3, f"images must be cropped at different places: {shifts}"


@pytest.mark.parametrize(
    "name, preset",
    [
        ("mnist", "digits"),
        ("embedded:mnist", "digits"),
        ("Embedded:USPS", "digits"),
        ("svhn_cropped", "digits"),
        ("emnist/letters", "digits"),
        ("kmnist", "digits"),
        ("../shared/data/usps_small.npz", "digits"),
        ("fashion_mnist", "photos"),
        ("embedded:fashion_mnist", "photos"),
        ("cifar10", "photos"),
    ],
)
def test_augmentation_preset(name, preset):
    assert augmentation_preset(name) == preset


def test_no_augmentation():
    for augment in (None, False, "none"):
        assert build_augmentation(augment, seed=0) is None
    ds = tf.data.Dataset.range(3)
    assert augment_dataset(ds, None) is ds


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"Unknown: 'flipp' \(did you mean 'flip'\?\)"):
        build_augmentation("flipp,rotation", seed=0)
    with pytest.raises(ValueError, match=r"`augment` must name at least one of .*Received: \[\]"):
        build_augmentation([], seed=0)
    with pytest.raises(ValueError, match=r"`augment` must be None, a bool.*Received: 3"):
        build_augmentation(3, seed=0)
    with pytest.raises(ValueError, match="`augment` must be None, a bool"):
        build_augmentation(["flip", None], seed=0)
    with pytest.raises(ValueError, match="`dataset_name` must be given"):
        build_augmentation(True, seed=0)
    with pytest.raises(ValueError, match="`seed` must be an integer"):
        build_augmentation("flip", seed=None)
    with pytest.raises(ValueError, match="`augmentation` must be a Keras layer"):
        augment_batch("flip")
