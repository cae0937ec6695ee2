"""`cache=`: decoded examples kept after the first epoch; another dataset's cache is refused."""

import numpy as np
import pytest
from PIL import Image

from kerastransfer.data import load_dataset


def folder(root, seed=0, n=6):
    rng = np.random.default_rng(seed)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (9, 9, 3), np.uint8)).save(
                root / name / f"{i}.png"
            )
    return str(root)


def epoch(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("where", ["memory", "folder"])
def test_a_cached_split_serves_what_it_decoded_and_no_longer_reads_the_files(tmp_path, where):
    source = folder(tmp_path / "photos")
    cache = "memory" if where == "memory" else str(tmp_path / "cache")
    kw = dict(image_shape=(8, 8, 3), validation_split=0, batch_size=4)
    plain = load_dataset(source, **kw)
    data = load_dataset(source, cache=cache, **kw)
    test = data.test
    first = epoch(test)
    x, y = epoch(plain.test)
    order = np.lexsort(x.reshape(len(x), -1).T)
    got = np.lexsort(first[0].reshape(len(x), -1).T)
    np.testing.assert_array_equal(first[0][got], x[order])  # the same examples, decoded alike
    np.testing.assert_array_equal(first[1][got], y[order])
    train = data.train
    a, b = epoch(train), epoch(train)
    assert sorted(a[1]) == sorted(b[1]) and not np.array_equal(a[1], b[1])  # still reshuffled
    for path in (tmp_path / "photos").rglob("*.png"):
        path.write_bytes(b"")  # the files are gone bad: only the cache can serve now
    second = epoch(test)
    np.testing.assert_array_equal(second[0], first[0])
    if where == "folder":  # a new process (a new TransferData) reads the cache on disk
        again = epoch(load_dataset(source, cache=cache, **kw).test)
        np.testing.assert_array_equal(again[0], first[0])
    c = epoch(train)
    assert sorted(c[1]) == sorted(a[1])


def test_a_folder_holding_another_datasets_cache_is_refused(tmp_path):
    cache = str(tmp_path / "cache")
    kw = dict(image_shape=(8, 8, 3), validation_split=0, cache=cache)
    first = load_dataset(folder(tmp_path / "one"), **kw)
    epoch(first.test)
    with pytest.raises(ValueError, match="holds the cache of another dataset .*'one'"):
        load_dataset(folder(tmp_path / "two", seed=1), **kw)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and holds no kerastransfer cache"):
        load_dataset(folder(tmp_path / "three"), **{**kw, "cache": str(other)})
    assert (other / "todo.txt").read_text() == "mine"
    with pytest.raises(ValueError, match='`cache` must be None, "memory" or a folder'):
        load_dataset(folder(tmp_path / "four"), image_shape=(8, 8, 3), cache=3)
