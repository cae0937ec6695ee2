"""Unreadable sources fail early, naming the file and the fix."""

import numpy as np
import pytest

from kerastransfer.data import load_dataset


def save_images(folder, n, rng, ext="png"):
    import keras

    folder.mkdir(parents=True)
    for i in range(n):
        keras.utils.save_img(
            folder / f"{i}.{ext}", rng.integers(0, 256, (10, 12, 3)).astype("uint8")
        )


def test_corrupt_jpeg_in_an_image_folder_is_named(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        save_images(tmp_path / "pets" / name, 5, rng, ext="jpg")
    broken = tmp_path / "pets" / "dog" / "3.jpg"
    broken.write_bytes(broken.read_bytes()[:40])  # cut short, as by an interrupted copy
    data = load_dataset(str(tmp_path / "pets"), validation_split=0)  # indexes, reads nothing
    with pytest.raises(ValueError, match=f"Cannot read image file {broken}: truncated JPEG"):
        data.take("train", range(data.size("train")))
    broken.unlink()
    d = load_dataset(str(tmp_path / "pets"), validation_split=0)
    assert d.size("train") + d.size("test") == 9


def test_corrupt_or_wrong_npz_files_say_what_they_are(tmp_path):
    path = tmp_path / "truncated.npz"
    good = tmp_path / "good.npz"
    np.savez(
        good,
        x_train=np.zeros((4, 2, 2)),
        y_train=np.arange(4),
        x_test=np.zeros((2, 2, 2)),
        y_test=[0, 1],
    )
    path.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match="is not a readable .npz file"):
        load_dataset(str(path))
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="holds a single array"):
        load_dataset(str(single))


def test_split_folders_are_never_read_as_classes(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "validation"):
        for name in ("cat", "dog"):
            save_images(tmp_path / "pets" / split / name, 5, rng)
    with pytest.raises(
        ValueError, match=r"has the folders \['train', 'validation'\]: read as class folders"
    ):
        load_dataset(str(tmp_path / "pets"))
    for name in ("cat", "dog"):
        save_images(tmp_path / "pets" / "test" / name, 2, rng)
    with pytest.warns(UserWarning, match=r"has \['validation'\] folders, which are not read"):
        d = load_dataset(str(tmp_path / "pets"), validation_split=0)
    assert d.info.class_names == ("cat", "dog") and d.size("test") == 4


def test_files_keras_cannot_read_are_reported_and_classes_can_be_named(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "fox"):
        save_images(tmp_path / "pets" / name, 5, rng)
    (tmp_path / "pets" / "dog" / "scan.tif").write_bytes(b"II*\x00")
    with pytest.warns(UserWarning, match=r"Skipping 1 files .* e.g. \['.*scan.tif'\]"):
        d = load_dataset(str(tmp_path / "pets"), classes=["fox", "cat"], validation_split=0)
    assert d.info.class_names == ("fox", "cat")
    assert np.bincount(d.labels("train")).tolist() == [4, 4]
    (tmp_path / "pets" / "dog" / "scan.tif").unlink()
    with pytest.raises(
        ValueError,
        match=r"\['dgo'\] are not classes of the dataset; for 'dgo' did you mean \['dog'\]",
    ):
        load_dataset(str(tmp_path / "pets"), classes=["dgo", "cat"])
