"""Seeded training-time augmentation of image batches (float32 in [0, 255], NHWC) in `tf.data`.

The random Keras preprocessing layers draw from a `SeedGenerator` whose state is a variable that
every call reads and advances. A map that calls them must therefore run one batch at a time
(`num_parallel_calls=None`, what `augment_dataset` does): parallel calls race on that state and
the batches differ from run to run, even with `deterministic=True`. With
`tf.config.experimental.enable_op_determinism()` TensorFlow itself runs such a map serially
(and, as its documentation says, may then also run the pipeline's other parallel maps serially
and skip prefetching, the seed variables being stateful ops other than random ones).
"""

import difflib
import numbers

import keras
import tensorflow as tf

from kerastransfer.data.epoch_order import seed_augmentation_by_epoch

AUGMENTATIONS = ("flip", "crop", "translation", "rotation", "zoom", "contrast")

# Digits and characters change class when mirrored (a flipped 2, 5 or 7 is no digit, or another
# one); photos of objects and clothes do not, and contrast varies with their lighting.
AUGMENTATION_PRESETS = {
    "digits": ("translation", "rotation", "zoom"),
    "photos": ("flip", "translation", "rotation", "zoom", "contrast"),
}

_DIGIT_DATASETS = ("mnist", "usps", "svhn")  # emnist, kmnist, svhn_cropped, embedded:usps...

# "crop" is pad-with-zeros-and-random-crop back to the input size, done per image: a shift by a
# whole number of pixels (nearest interpolation) of up to 1/8 of the size, zeros filling in.
# (`keras.layers.RandomCrop` needs the size when built and crops a whole batch at one place.)
_LAYERS = {
    "flip": lambda seed: keras.layers.RandomFlip("horizontal", seed=seed, name="flip"),
    "crop": lambda seed: keras.layers.RandomTranslation(
        0.125, 0.125, fill_mode="constant", interpolation="nearest", seed=seed, name="crop"
    ),
    "translation": lambda seed: keras.layers.RandomTranslation(
        0.1, 0.1, seed=seed, name="translation"
    ),
    "rotation": lambda seed: keras.layers.RandomRotation(0.05, seed=seed, name="rotation"),
    "zoom": lambda seed: keras.layers.RandomZoom(0.1, seed=seed, name="zoom"),
    "contrast": lambda seed: keras.layers.RandomContrast(
        0.2, value_range=(0, 255), seed=seed, name="contrast"
    ),
}


def augmentation_preset(dataset_name):
    """The preset for a dataset: "digits" for digits and characters (MNIST, EMNIST, KMNIST, USPS,
    SVHN, by name or file path, any case), "photos" for everything else, Fashion-MNIST included.

    >>> augmentation_preset("embedded:usps"), augmentation_preset("fashion_mnist")
    ('digits', 'photos')
    """
    name = str(dataset_name).lower()
    if "fashion" not in name and any(digits in name for digits in _DIGIT_DATASETS):
        return "digits"
    return "photos"


def build_augmentation(augment, *, seed, dataset_name=None):
    """A `keras.Sequential` of random preprocessing layers, or None when `augment` is None/False.

    Args:
        augment: None, False or "none": no augmentation. True or "auto": the preset of
            `dataset_name` (see `augmentation_preset`). A preset ("digits": no flips, "photos"),
            names from `AUGMENTATIONS` as a list or a comma-separated string. The layers run in
            the order of `AUGMENTATIONS`, whatever the order asked.
        seed: an integer; the layer of `AUGMENTATIONS[i]` gets `seed + i`. Two augmentations
            built with the same seed give the same batches; one augmentation keeps drawing new
            ones epoch after epoch.
        dataset_name: the dataset's name or path, for `augment=True` or "auto".

    >>> augmentation = build_augmentation("flip,rotation", seed=0)
    >>> [layer.name for layer in augmentation.layers]
    ['flip', 'rotation']
    >>> [layer.name for layer in build_augmentation(True, seed=0, dataset_name="mnist").layers]
    ['translation', 'rotation', 'zoom']
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"`seed` must be an integer, e.g. 0. Received: {seed!r}")
    names = _augmentation_names(augment, dataset_name)
    if names is None:
        return None
    layers = [_LAYERS[name](int(seed) + AUGMENTATIONS.index(name)) for name in names]
    return keras.Sequential(layers, name="augmentation")


def augment_batch(augmentation):
    """The `(images, labels) -> (augmented images, labels)` function for `Dataset.map`.

    Map it with `num_parallel_calls=None` (see the module docstring), or use `augment_dataset`.
    Images come out float32, clipped to [0, 255], in the shape they came in.

    >>> images, labels = augment_batch(build_augmentation("zoom", seed=0))(
    ...     tf.fill((2, 8, 8, 1), 255.0), tf.constant([3, 7]))
    >>> images.shape, images.dtype, float(tf.reduce_max(images)), labels.numpy().tolist()
    (TensorShape([2, 8, 8, 1]), tf.float32, 255.0, [3, 7])
    """
    if not callable(augmentation):
        raise ValueError(
            "`augmentation` must be a Keras layer or model, e.g. from `build_augmentation`. "
            f"Received: {augmentation!r}"
        )
    return _Augmenter(augmentation)


def augment_dataset(dataset, augmentation):
    """`dataset` of `(images, labels)` batches, its images augmented one batch at a time.

    Returns `dataset` itself when `augmentation` is None. Build the augmentation afresh for each
    run: one that was used before goes on from where its random state stopped.

    >>> ds = tf.data.Dataset.from_tensor_slices((tf.zeros((4, 8, 8, 3)), tf.range(4))).batch(2)
    >>> ds = augment_dataset(ds, build_augmentation("photos", seed=0))
    >>> [images.shape for images, _ in ds]
    [TensorShape([2, 8, 8, 3]), TensorShape([2, 8, 8, 3])]
    """
    if augmentation is None:
        return dataset
    dataset = dataset.map(augment_batch(augmentation), num_parallel_calls=None)
    seed_augmentation_by_epoch(augmentation)  # built by the map's trace
    return dataset


class _Augmenter:
    def __init__(self, augmentation):
        self.augmentation = augmentation

    def __call__(self, images, labels):
        images = self.augmentation(tf.cast(images, tf.float32), training=True)
        return tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 255.0), labels


def _augmentation_names(augment, dataset_name):
    if augment is None or augment is False:
        return None
    if augment is True or (isinstance(augment, str) and augment.strip().lower() == "auto"):
        if dataset_name is None:
            raise ValueError(
                "`dataset_name` must be given when `augment` is True or 'auto': it picks the "
                f"preset ({sorted(AUGMENTATION_PRESETS)}). Received: augment={augment!r}, "
                "dataset_name=None. Pass the dataset's name, or a preset or names as `augment`."
            )
        return AUGMENTATION_PRESETS[augmentation_preset(dataset_name)]
    if isinstance(augment, str):
        if augment.strip().lower() == "none":
            return None
        asked = augment.split(",")
    elif isinstance(augment, list | tuple) and all(isinstance(n, str) for n in augment):
        asked = list(augment)
    else:
        raise ValueError(
            "`augment` must be None, a bool, 'auto', a preset, a comma-separated string or a list "
            f"of names from {AUGMENTATIONS}, e.g. 'flip,rotation'. Received: {augment!r}"
        )
    asked = [name.strip().lower() for name in asked if name.strip()]
    known = AUGMENTATIONS + tuple(AUGMENTATION_PRESETS)
    unknown = [name for name in asked if name not in known]
    if not asked or unknown:
        hints = [_hint(name, known + ("auto",)) for name in unknown]
        raise ValueError(
            f"`augment` must name at least one of {AUGMENTATIONS} or a preset from "
            f"{sorted(AUGMENTATION_PRESETS)}, or be 'auto'. "
            + (f"Unknown: {', '.join(hints)}. " if unknown else "")
            + f"Received: {augment!r}"
        )
    chosen = set()
    for name in asked:
        chosen.update(AUGMENTATION_PRESETS.get(name, (name,)))
    return tuple(name for name in AUGMENTATIONS if name in chosen)


def _hint(name, known):
    close = difflib.get_close_matches(name, known)
    return f"{name!r} (did you mean {' or '.join(map(repr, close))}?)" if close else repr(name)
