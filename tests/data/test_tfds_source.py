"""tensorflow-datasets sources stream through the builder's `as_dataset`: the same examples as
the same arrays in an `.npz`, decoded only when selected. The builder is prepared here, offline."""

import numpy as np
import tensorflow_datasets as tfds

from kerastransfer.data import load_dataset

RNG = np.random.default_rng(0)
IMAGES = {"train": RNG.integers(0, 256, (40, 8, 8, 1), np.uint8),
          "test": RNG.integers(0, 256, (12, 8, 8, 1), np.uint8)}  # fmt: skip
LABELS = {"train": np.arange(40) % 4, "test": np.arange(12) % 4}


class KerastransferTinyDigits(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")
    __module__ = "kerastransfer_tiny_digits"  # a dotted test module sends tfds to an extra package

    def _info(self):
        features = {
            "image": tfds.features.Image(shape=(8, 8, 1)),
            "label": tfds.features.ClassLabel(num_classes=4),
        }
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in ("train", "test")}

    def _generate_examples(self, split):
        for i, (x, y) in enumerate(zip(IMAGES[split], LABELS[split])):
            yield i, {"image": x, "label": int(y)}


def test_a_prepared_tfds_split_streams_the_same_examples_as_its_arrays(tmp_path):
    builder = KerastransferTinyDigits(data_dir=str(tmp_path))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    # the arrays as the earlier whole-split read gave them (tfds stores records shuffled)
    read = {s: tfds.as_numpy(builder.as_dataset(s, batch_size=-1, as_supervised=True))
            for s in ("train", "test")}  # fmt: skip
    np.savez(tmp_path / "same.npz", x_train=read["train"][0], y_train=read["train"][1],
             x_test=read["test"][0], y_test=read["test"][1])  # fmt: skip
    kw = dict(validation_split=0.25, samples_per_class=5, classes=[3, 1, 2], seed=4, batch_size=4)
    streamed = load_dataset("kerastransfer_tiny_digits", data_dir=str(tmp_path), **kw)
    arrays = load_dataset(str(tmp_path / "same.npz"), **kw)
    assert streamed.info.image_shape == (8, 8, 1) and streamed.info.num_classes == 3
    for split in ("validation", "test"):
        for (a, ya), (b, yb) in zip(streamed.dataset(split), arrays.dataset(split)):
            np.testing.assert_array_equal(a, b)  # gray decoded exactly
            np.testing.assert_array_equal(ya, yb)
    train_a = sorted(x.tobytes() for x, _ in streamed.train.unbatch().as_numpy_iterator())
    train_b = sorted(x.tobytes() for x, _ in arrays.train.unbatch().as_numpy_iterator())
    assert train_a == train_b and len(train_a) == 15
    np.testing.assert_array_equal(streamed.take("test", [2, 0])[0], arrays.take("test", [2, 0])[0])
