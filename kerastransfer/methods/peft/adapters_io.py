"""`save_adapters` and `load_adapters`: the weights that parameter-efficient training changed,
in one small file, checked on loading against the base they were trained on.

What is saved, per layer that has weights: of an `AdaptedLayer`, its adapter weights (A, B and,
for DoRA, m); of any other layer, its weights that `fit` trains (`model.trainable_weights`: a
head named in `train`, the BitFit biases), plus the moving statistics of a trainable
`BatchNormalization` (which `fit` updates). Every layer with weights also gets a fingerprint:
its path, its type (for an adapted layer the base type, method, rank and alpha), the shapes of
its weights, which of them are saved, and the SHA-256 digest of the others (the frozen base: for
an adapted layer its kernel and bias). `load_adapters` loads onto a model made by the same
`apply_*` call on the same base, and refuses, naming the first layer that differs, when the
architecture, the adaptation or the frozen weights are not those of the file; nothing is
assigned unless everything matches.

The file is a NumPy `.npz` archive (uncompressed; read with `allow_pickle=False`) holding the
saved arrays and, under `__adapters__`, the fingerprints as JSON (UTF-8 bytes). It is written to a
temporary file in the same folder, flushed to disk and renamed over `path`, so a crash never
leaves a partial file at `path`.

Example:

>>> import os, tempfile
>>> inputs = keras.Input((4,))
>>> base = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
>>> path = os.path.join(tempfile.mkdtemp(), "dense.adapters.npz")
>>> save_adapters(apply_lora(base, rank=1), path)
>>> load_adapters(apply_lora(base, rank=1), path)
"""

import hashlib
import json
import os
import tempfile
import zipfile

import keras
import numpy as np
from keras import ops

from kerastransfer.methods.peft.adapted_layer import AdaptedLayer
from kerastransfer.methods.peft.lora import apply_lora  # noqa: F401  (the docstring example)
from kerastransfer.methods.peft.selection import check_model, leaf_layers

FORMAT = "kerastransfer-adapters"
VERSION = 1
RECORD = "__adapters__"


def _describe(layer):
    if isinstance(layer, AdaptedLayer):
        base = type(layer.layer).__name__
        return f"{base} ({layer.method}, rank {layer.rank}, alpha {layer.alpha:g})"
    return type(layer).__name__


def _digest(variables):
    digest = hashlib.sha256()
    for v in variables:
        value = np.ascontiguousarray(ops.convert_to_numpy(v))
        digest.update(f"{v.name}:{value.dtype.str}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _fingerprints(model):
    """[(record entry without keys, saved variables)] for each leaf layer that has weights."""
    trained = {id(v) for v in model.trainable_weights}
    found = []
    for path, layer in leaf_layers(model):
        weights = layer.weights
        if not weights:
            continue
        if isinstance(layer, AdaptedLayer):
            saved = layer.adapter_weights
        else:
            saved = [v for v in weights if id(v) in trained]
            if saved and isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
                saved = weights  # its moving statistics change in training too
        ids = {id(v) for v in saved}
        entry = {
            "path": path,
            "type": _describe(layer),
            "shapes": [list(v.shape) for v in weights],
            "saved": [i for i, v in enumerate(weights) if id(v) in ids],
            "digest": _digest([v for v in weights if id(v) not in ids]),
        }
        found.append((entry, [v for v in weights if id(v) in ids]))
    return found


def save_adapters(model, path):
    """Writes the adapter (and other trained) weights of `model` with the fingerprints of its
    layers to the file `path` (one `.npz` archive, written atomically; see the module)."""
    check_model(model)
    arrays, layers = {}, []
    for entry, saved in _fingerprints(model):
        entry["keys"] = []
        for v in saved:
            entry["keys"].append(f"w{len(arrays)}")
            arrays[entry["keys"][-1]] = ops.convert_to_numpy(v)
        layers.append(entry)
    if not arrays:
        raise ValueError(
            f"Model '{model.name}' has no adapter and no trainable weight: nothing to save."
        )
    record = {"format": FORMAT, "version": VERSION, "model": model.name, "layers": layers}
    arrays[RECORD] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    _write_atomically(os.fspath(path), arrays)


def _write_atomically(path, arrays):
    folder = os.path.dirname(os.path.abspath(path))
    handle, partial = tempfile.mkstemp(prefix=".adapters-", suffix=".partial", dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable where the OS allows
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _read(path):
    """(record, {key: array}) of an adapters file; ValueError when `path` is not one."""

    def refuse(why):
        return ValueError(f"{path} is not an adapters file written by `save_adapters`: {why}.")

    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise refuse("NumPy cannot read it as an .npz archive") from err
    if not hasattr(data, "files"):
        raise refuse("it is a single .npy array")
    with data:
        if RECORD not in data.files:
            raise refuse(f"the archive has no {RECORD} record")
        try:
            record = json.loads(data[RECORD].tobytes().decode())
        except (ValueError, TypeError, UnicodeDecodeError) as err:
            raise refuse(f"its {RECORD} record is not JSON") from err
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise refuse(f"its record is not of the {FORMAT} format")
        if record.get("version") != VERSION:
            raise refuse(f"format version {record.get('version')}, this reader knows {VERSION}")
        return record, {key: data[key] for key in data.files if key != RECORD}


def _first_difference(stored, current):
    """Why the layers recorded in the file (`stored`) are not those of the model, or None."""
    for old, new in zip(stored, current):
        where = f"layer '{new['path']}'"
        if old["path"] != new["path"]:
            return (
                f"the file has layer '{old['path']}' ({old['type']}) where the model has "
                f"'{new['path']}' ({new['type']}): a different architecture"
            )
        if old["type"] != new["type"]:
            return f"{where} is {old['type']} in the file and {new['type']} in the model"
        if old["shapes"] != new["shapes"]:
            return f"{where}: weight shapes {old['shapes']} in the file, {new['shapes']} here"
        if old["saved"] != new["saved"]:
            return (
                f"{where}: the file holds its weights {old['saved']}, the model trains "
                f"{new['saved']} (a different `apply_*` call or `train`)"
            )
    if len(stored) != len(current):
        more, where = ("file", stored) if len(stored) > len(current) else ("model", current)
        extra = where[min(len(stored), len(current))]
        return f"only the {more} has layer '{extra['path']}' ({extra['type']}) with weights"
    for old, new in zip(stored, current):
        if old["digest"] != new["digest"]:
            return (
                f"layer '{new['path']}' ({new['type']}): its frozen (base) weights differ from "
                f"those the adapters were trained on (SHA-256 {old['digest'][:12]}... in the "
                f"file, {new['digest'][:12]}... here)"
            )
    return None


def load_adapters(model, path):
    """Assigns the weights saved by `save_adapters` to `model`, which must be the same base
    with the same `apply_*` call (see the module).

    Raises:
        ValueError: `path` is not an adapters file; the model's architecture, adaptation or
            frozen weights differ from the file's (the message names the first such layer).
    """
    check_model(model)
    record, arrays = _read(os.fspath(path))
    current = _fingerprints(model)
    problem = _first_difference(record["layers"], [entry for entry, _ in current])
    if problem:
        raise ValueError(f"Cannot load the adapters of {path} onto '{model.name}': {problem}.")
    for entry, (_, saved) in zip(record["layers"], current):
        for key, variable in zip(entry["keys"], saved):
            variable.assign(arrays[key])
