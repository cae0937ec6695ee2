"""The layer-transfer sweep (Gutstein, Fuentes and Freudenthal 2008): codes, retained levels, the
sweep and resuming it from cached runs."""

import json

import numpy as np
import pytest

from kerastransfer.data import load_dataset, to_image_shape
from kerastransfer.methods.layer_transfer import (
    LevelRunner,
    check_retained,
    check_sweep_args,
    code_accuracy,
    decode,
    layer_transfer_sweep,
    load_lenet_data,
    make_codes,
    split_arrays,
    train_source,
    trainable_free_parameters,
    training_steps,
    transfer_lenet,
)
from kerastransfer.models.lenet import TABLE_1, lenet5

DIGITS_LOW, DIGITS_HIGH = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]


@pytest.fixture(scope="module")
def source():
    model, report = train_source("embedded:mnist", classes=DIGITS_LOW, epochs=1)
    return model, report


# -- codes -------------------------------------------------------------------------------------


def test_random_codes_are_distinct_plus_minus_one_and_seeded():
    codes = make_codes("random20", 20, seed=4)
    assert codes.shape == (20, 20) and set(np.unique(codes)) == {-1.0, 1.0}
    assert len(np.unique(codes, axis=0)) == 20
    np.testing.assert_array_equal(codes, make_codes("random20", 20, seed=4))
    assert not np.array_equal(codes, make_codes("random20", 20, seed=5))
    onehot = make_codes("onehot", 4)
    np.testing.assert_array_equal(onehot.argmax(1), np.arange(4))
    assert set(np.unique(onehot)) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="onehot"):
        make_codes("gray", 5)


def test_decode_picks_nearest_code():
    codes = make_codes("random20", 6, seed=0)
    noisy = codes[[3, 1, 5]] * 0.6 + np.random.default_rng(0).normal(0, 0.2, (3, 20))
    assert decode(noisy, codes).tolist() == [3, 1, 5]


# -- retaining levels --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 6, 2.0, True, "3"])
def test_retained_outside_0_to_5_is_rejected(bad):
    with pytest.raises(ValueError, match="0..5"):
        check_retained(bad)
    if not isinstance(bad, str):
        with pytest.raises(ValueError, match="0..5"):
            transfer_lenet(lenet5(), bad)


def test_trainable_free_parameters_match_the_paper_text():
    total = sum(TABLE_1.values())
    # "only the top level not retained: 4.6%"; "top 2 levels ... 96.7%" of the free parameters.
    assert round(100 * trainable_free_parameters(5) / total, 1) == 4.6
    assert round(100 * trainable_free_parameters(4) / total, 1) == 96.7
    assert trainable_free_parameters(0) == 52256


def test_retained_levels_are_copied_and_stay_fixed_while_others_learn(source):
    model, report = source
    data = load_lenet_data("embedded:mnist", classes=DIGITS_HIGH, samples_per_class=10)
    x, y = split_arrays(data, "train")
    x_test, y_test = data.take("test", range(50))
    assert x.shape == (50, 32, 32, 1) and x_test.shape == (50, 32, 32, 1)
    runner = LevelRunner(model, 3, 20, 3e-3)
    for seed in (0, 1):  # the second run reuses the compiled net: it must reset it fully
        runner.reset(seed)
        before = {x.name: [w.copy() for w in x.get_weights()] for x in runner.model.layers}
        for name in ("C1", "S2", "C3"):
            for w, s in zip(before[name], model.get_layer(name).get_weights()):
                np.testing.assert_array_equal(w, s)
        accuracy = runner.run(
            x,
            y,
            make_codes("random20", 5, seed=seed),
            x_test,
            y_test,
            epochs=3,
            min_steps=10,
            batch_size=16,
            seed=seed,
        )
        assert 0.0 <= accuracy <= 1.0
        for layer in runner.model.layers:
            if not layer.weights:
                continue
            moved = any(
                not np.array_equal(a, b) for a, b in zip(before[layer.name], layer.get_weights())
            )
            assert moved == (layer.name in ("S4", "C5", "F6")), layer.name
        for name in ("C1", "S2", "C3"):
            for w, s in zip(
                runner.model.get_layer(name).get_weights(), model.get_layer(name).get_weights()
            ):
                np.testing.assert_array_equal(w, s)
        assert [x.name for x in runner.model.layers if x.weights and not x.trainable] == [
            "C1",
            "S2",
            "C3",
        ]


# -- sweep arguments ----------------------------------------------------------------------------


def test_sweep_arguments_are_checked_before_training():
    available = np.array([450, 451, 449, 452, 450])
    check_sweep_args([0, 5], [1, 449], 1, available)
    with pytest.raises(ValueError, match="at most 449"):
        check_sweep_args([0], [1, 450], 1, available)
    with pytest.raises(ValueError, match="0..5"):
        check_sweep_args([0, 6], [1], 1, available)
    with pytest.raises(ValueError, match="empty"):
        check_sweep_args([], [1], 1, available)
    with pytest.raises(ValueError, match="positive"):
        check_sweep_args([0], [0], 1, available)
    with pytest.raises(ValueError, match="trials"):
        check_sweep_args([0], [1], 0, available)
    assert training_steps(5, epochs=30, min_steps=100) == 100
    assert training_steps(200, epochs=30, min_steps=100, batch_size=32) == 210


# -- the sweep, end to end ---------------------------------------------------------------------


def test_sweep_learns_target_classes(source):
    model, report = source
    assert report.test_accuracy > 0.7  # 5 source digits after one epoch
    rows = layer_transfer_sweep(
        model,
        "embedded:mnist",
        target_classes=DIGITS_HIGH,
        levels=[0, 4],
        samples_per_class=[20],
        trials=1,
        epochs=2,
        min_steps=40,
        codes="onehot",
    )
    assert [(r["retained"], r["samples_per_class"], r["trial"]) for r in rows] == [
        (0, 20, 0),
        (4, 20, 0),
    ]
    for row in rows:
        assert row["accuracy"] > 0.4  # chance is 0.2
    assert rows[1]["trainable_parameters"] == 48120 + 5 * 121


class JsonCache:
    """A run store as a recipe keeps one: rows go through JSON and come back as they went in."""

    def __init__(self):
        self.runs = {}

    def get(self, key, compute):
        if key not in self.runs:
            self.runs[key] = json.loads(json.dumps(compute()))
        return self.runs[key]


def test_sweep_resumes_from_cached_runs_and_recovers_the_best_weights(source, monkeypatch):
    model, _ = source
    settings = dict(
        target_classes=DIGITS_HIGH, samples_per_class=[5], epochs=2, min_steps=20, codes="onehot"
    )
    cache = JsonCache()
    first = layer_transfer_sweep(
        model, "embedded:mnist", levels=[0, 4], trials=2, cache=cache, **settings
    )
    assert sorted(cache.runs) == [
        "retain0_k5_seed0",
        "retain0_k5_seed1",
        "retain4_k5_seed0",
        "retain4_k5_seed1",
    ]
    # A run depends on its own (n, k, seed) only, not on the runs before it.
    alone = layer_transfer_sweep(model, "embedded:mnist", levels=[4], trials=1, **settings)
    assert alone[0]["accuracy"] == first[2]["accuracy"]

    trained = []
    run = LevelRunner.run
    monkeypatch.setattr(
        LevelRunner,
        "run",
        lambda self, *a, **k: trained.append(self.retained) or run(self, *a, **k),
    )
    again = layer_transfer_sweep(
        model, "embedded:mnist", levels=[0, 4], trials=2, cache=cache, keep_best=True, **settings
    )
    # Every run came from the cache; only the best is trained again, for its weights.
    best = [r for r in again if "weights" in r]
    assert len(best) == 1 and len(trained) == 1
    best = best[0]
    assert best["accuracy"] == max(r["accuracy"] for r in first)
    assert [{k: v for k, v in r.items() if k not in ("weights", "codes")} for r in again] == first
    net = lenet5(best["codes"].shape[1])
    net.set_weights(best["weights"])
    data = load_dataset("embedded:mnist", classes=DIGITS_HIGH, validation_split=0)
    test = data.dataset("test", batch_size=500, image_shape=(32, 32, 1), resize="pad")
    assert code_accuracy(net, test, None, best["codes"]) == best["accuracy"]
    # Arrays in batches of 500, as the dataset's: the same outputs, the same accuracy.
    x_test = np.asarray(
        to_image_shape(data.take("test", range(data.size("test")))[0], (32, 32, 1), "pad")
    )
    assert code_accuracy(net, x_test, data.labels("test"), best["codes"]) == best["accuracy"]
