"""Adapter files: the trained weights alone, loaded only onto the base they were trained on."""

import json
import os

import keras
import numpy as np
import pytest

from kerastransfer.methods.peft import (
    apply_bitfit,
    apply_dora,
    apply_lora,
    load_adapters,
    save_adapters,
)

L = keras.layers


def wide_model(seed=0, filters=64):
    """Large kernels next to small adapters: the adapter file is a small part of the model."""
    init = lambda n: dict(  # noqa: E731
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + n),
        bias_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed + n + 100),
    )
    inputs = keras.Input((8, 8, 16), name="x")
    x = L.Conv2D(filters, 3, padding="same", name="conv_a", **init(1))(inputs)
    x = L.Conv2D(filters, 3, padding="same", name="conv_b", **init(2))(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dense(256, activation="relu", name="fc", **init(3))(x)
    return keras.Model(inputs, L.Dense(4, name="head", **init(4))(x), name="wide")


def adapt(model, seed):
    return apply_dora(model, targets=["conv_*", "fc"], rank=2, seed=seed, train=["head"])


def trained(model, peft_models):
    adapted = adapt(model, seed=0)
    peft_models.randomize(adapted)
    head = adapted.get_layer("head")
    head.set_weights([w + 0.5 for w in head.get_weights()])  # the head is saved too
    return adapted


def test_adapters_load_onto_a_fresh_base_and_give_identical_outputs(peft_models, tmp_path):
    adapted = trained(wide_model(), peft_models)
    save_adapters(adapted, tmp_path / "wide.npz")
    fresh = adapt(wide_model(), seed=7)  # same base, other initial adapters
    x = peft_models.data(adapted)
    assert not np.allclose(fresh.predict(x, verbose=0), adapted.predict(x, verbose=0))
    load_adapters(fresh, tmp_path / "wide.npz")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), adapted.predict(x, verbose=0))

    adapted.save(tmp_path / "wide.keras")
    size, model_size = (os.path.getsize(tmp_path / n) for n in ("wide.npz", "wide.keras"))
    assert size < 0.1 * model_size, (size, model_size)
    assert sorted(os.listdir(tmp_path)) == ["wide.keras", "wide.npz"]  # no temporary file left


def test_loading_onto_other_base_weights_names_the_layer(peft_models, tmp_path):
    save_adapters(trained(wide_model(), peft_models), tmp_path / "wide.npz")
    other = adapt(wide_model(seed=50), seed=0)
    before = [v.numpy().copy() for v in other.weights]
    with pytest.raises(
        ValueError, match=r"layer 'conv_a' \(Conv2D \(dora.*frozen \(base\) weights"
    ):
        load_adapters(other, tmp_path / "wide.npz")
    for v, old in zip(other.weights, before):  # nothing assigned
        np.testing.assert_array_equal(v.numpy(), old)


def test_loading_onto_another_architecture_or_adaptation_names_the_difference(
    peft_models, tmp_path
):
    save_adapters(trained(wide_model(), peft_models), tmp_path / "wide.npz")
    with pytest.raises(ValueError, match=r"layer 'conv_a': weight shapes"):
        load_adapters(adapt(wide_model(filters=32), seed=0), tmp_path / "wide.npz")
    lora = apply_lora(wide_model(), targets=["conv_*", "fc"], rank=2, train=["head"])
    with pytest.raises(ValueError, match=r"'conv_a' is Conv2D \(dora, rank 2.*Conv2D \(lora"):
        load_adapters(lora, tmp_path / "wide.npz")
    no_head = apply_dora(wide_model(), targets=["conv_*", "fc"], rank=2)
    with pytest.raises(ValueError, match=r"layer 'head': the file holds its weights \[0, 1\]"):
        load_adapters(no_head, tmp_path / "wide.npz")


def test_a_file_that_is_not_an_adapters_file_is_refused(peft_models, tmp_path):
    model = adapt(wide_model(), seed=0)
    (tmp_path / "notes.txt").write_text("not an archive")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    model.save(tmp_path / "model.keras")
    cases = {"notes.txt": "cannot read it", "plain.npz": "no __adapters__", "model.keras": ""}
    for name, why in cases.items():
        with pytest.raises(ValueError, match=f"is not an adapters file.*{why}"):
            load_adapters(model, tmp_path / name)
    record = json.dumps({"format": "kerastransfer-adapters", "version": 99, "layers": []})
    np.savez(tmp_path / "newer.npz", __adapters__=np.frombuffer(record.encode(), np.uint8))
    with pytest.raises(ValueError, match="format version 99"):
        load_adapters(model, tmp_path / "newer.npz")


def test_a_failed_save_leaves_the_old_file_whole(peft_models, tmp_path, monkeypatch):
    adapted = trained(wide_model(), peft_models)
    save_adapters(adapted, tmp_path / "wide.npz")
    old = (tmp_path / "wide.npz").read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_adapters(adapted, tmp_path / "wide.npz")
    assert (tmp_path / "wide.npz").read_bytes() == old
    assert os.listdir(tmp_path) == ["wide.npz"]


def test_bitfit_biases_save_and_load(peft_models, tmp_path):
    tuned = apply_bitfit(wide_model(), normalization=True)
    for v in tuned.trainable_weights:
        v.assign(v.numpy() + 1.0)
    save_adapters(tuned, tmp_path / "biases.npz")
    fresh = apply_bitfit(wide_model(), normalization=True)
    load_adapters(fresh, tmp_path / "biases.npz")
    x = peft_models.data(tuned)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), tuned.predict(x, verbose=0))
    with np.load(tmp_path / "biases.npz") as data:
        assert sum(data[k].size for k in data.files if k.startswith("w")) == 64 + 64 + 256 + 4
