"""`DatasetCache`: decoded, converted examples kept after the first epoch (`cache=` of
`load_dataset`), in memory or in a folder.

A folder cache is `Dataset.cache(filename)`: TensorFlow writes it during the first full pass and
reads it afterwards. Examples are written in one seeded order (a permutation of the split, so a
class-sorted folder is not cached class by class) and shuffled after the cache through a bounded
buffer. The folder holds a manifest naming the dataset it caches; a folder holding another
dataset's cache is refused rather than mixed, and each split and selection (positions, image
shape, resize) gets files of its own.
"""

import hashlib
import json
import os
import warnings

import numpy as np

from kerastransfer.data.epoch_order import shuffle_by_epoch
from kerastransfer.data.records import ArrayRecords, FileRecords

MANIFEST = "kerastransfer-cache.json"
SHUFFLE_BUFFER = 4096


def _digest(*parts):
    h = hashlib.sha1()
    for part in parts:
        h.update(part if isinstance(part, bytes) else repr(part).encode())
    return h.hexdigest()[:16]


def _identity(records):
    """A digest of what a records object holds (not of where it came from)."""
    if isinstance(records, FileRecords):
        return _digest("files", "\n".join(records.paths.tolist()), records.labels.tobytes())
    if isinstance(records, ArrayRecords):
        x = records.images
        return _digest("arrays", x.shape, str(x.dtype), x[:1].tobytes(), x[-1:].tobytes(),
                       records.labels.tobytes(), records.rescale)  # fmt: skip
    return _digest("tfds", records.builder.name, str(records.builder.version), records.split)


class DatasetCache:
    """Where a `TransferData` keeps decoded examples: `"memory"` or a folder path."""

    def __init__(self, cache, data):
        self.data = data
        if cache == "memory":
            self.folder = None
            return
        if not isinstance(cache, (str, os.PathLike)):
            raise ValueError(
                f'`cache` must be None, "memory" or a folder path. Received: {cache!r}'
            )
        self.folder = os.fspath(cache)
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise ValueError(f"`cache` must be a folder; '{self.folder}' is a file.")
        os.makedirs(self.folder, exist_ok=True)
        identity = {
            "dataset": data.info.name,
            "digest": _digest(*(_identity(r) for r, _ in data._splits.values())),
        }
        manifest = os.path.join(self.folder, MANIFEST)
        if os.path.exists(manifest):
            with open(manifest) as f:
                held = json.load(f)
            if held.get("digest") != identity["digest"]:
                raise ValueError(
                    f"The cache folder '{self.folder}' holds the cache of another dataset "
                    f"({held.get('dataset')!r}, not this {data.info.name!r}): caches are not "
                    "mixed. Give each dataset a folder of its own (or delete that folder)."
                )
        elif any(not f.startswith(".") for f in os.listdir(self.folder)):
            raise ValueError(
                f"The cache folder '{self.folder}' is not empty and holds no kerastransfer cache "
                "manifest: it is not a cache of this dataset. Pass an empty or new folder."
            )
        else:
            tmp = manifest + ".tmp"
            with open(tmp, "w") as f:
                json.dump(identity, f)
            os.replace(tmp, manifest)

    def _filename(self, split, positions):
        data = self.data
        name = f"{split}-{_digest(positions.tobytes(), data.image_shape, data.resize, data.seed)}"
        path = os.path.join(self.folder, name)
        for stale in [f for f in os.listdir(self.folder) if f.startswith(name + "_")]:
            if stale.endswith(".lockfile"):  # left by a run killed while writing: ours, by name
                warnings.warn(
                    f"Removing '{stale}' in '{self.folder}': an earlier run was stopped while "
                    "writing this cache, which is written again from the start.",
                    UserWarning,
                    stacklevel=4,
                )
                os.remove(os.path.join(self.folder, stale))
        return path

    def pipeline(self, split, batch_size, *, shuffle=None, drop_remainder=False):
        data = self.data
        records, positions = data._index(split)
        order = np.random.default_rng(data.seed).permutation(positions)
        ds = records.pipeline(order, 256, data.image_shape, data.resize,
                              skipped=data.skipped).unbatch()  # fmt: skip
        ds = ds.cache("" if self.folder is None else self._filename(split, positions))
        if shuffle is not None:
            buffer = min(len(positions), SHUFFLE_BUFFER)
            ds = shuffle_by_epoch(ds, buffer, shuffle)
        return ds.batch(batch_size, drop_remainder=drop_remainder)
