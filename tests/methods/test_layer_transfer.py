"""Seed 002's layer-transfer sweep: codes, retained levels, the sweep, the recipe and its export."""

import os
import pathlib

import numpy as np
import pytest

from kerastransfer.data import load_dataset, to_image_shape
from kerastransfer.methods.layer_transfer import (
    _LevelRunner,
    best_model,
    check_retained,
    check_sweep_args,
    decode,
    format_table,
    layer_transfer_sweep,
    make_codes,
    plot_learning_curves,
    summarize,
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


def test_trainable_free_parameters_match_seed_002_text():
    total = sum(TABLE_1.values())
    # "only the top level not retained: 4.6%"; "top 2 levels ... 96.7%" of the free parameters.
    assert round(100 * trainable_free_parameters(5) / total, 1) == 4.6
    assert round(100 * trainable_free_parameters(4) / total, 1) == 96.7
    assert trainable_free_parameters(0) == 52256


def test_retained_levels_are_copied_and_stay_fixed_while_others_learn(source):
    model, report = source
    data = load_dataset("embedded:mnist", classes=DIGITS_HIGH, samples_per_class=10,
                        validation_split=0)
    x = np.asarray(to_image_shape(data.arrays("train")[0], (32, 32, 1), "pad"))
    y = data.arrays("train")[1]
    x_test = np.asarray(to_image_shape(data.arrays("test")[0][:50], (32, 32, 1), "pad"))
    y_test = data.arrays("test")[1][:50]
    runner = _LevelRunner(model, 3, 20, 3e-3)
    for seed in (0, 1):  # the second run reuses the compiled net: it must reset it fully
        runner.reset(seed)
        before = {l.name: [w.copy() for w in l.get_weights()] for l in runner.model.layers}
        for name in ("C1", "S2", "C3"):
            for w, s in zip(before[name], model.get_layer(name).get_weights()):
                np.testing.assert_array_equal(w, s)
        accuracy = runner.run(x, y, make_codes("random20", 5, seed=seed), x_test, y_test,
                              epochs=3, min_steps=10, batch_size=16, seed=seed)
        assert 0.0 <= accuracy <= 1.0
        for layer in runner.model.layers:
            if not layer.weights:
                continue
            moved = any(not np.array_equal(a, b) for a, b in zip(before[layer.name],
                                                                 layer.get_weights()))
            assert moved == (layer.name in ("S4", "C5", "F6")), layer.name
        for name in ("C1", "S2", "C3"):
            for w, s in zip(runner.model.get_layer(name).get_weights(),
                            model.get_layer(name).get_weights()):
                np.testing.assert_array_equal(w, s)
        assert [l.name for l in runner.model.layers if l.weights and not l.trainable] == [
            "C1", "S2", "C3"]


# -- sweep arguments and reporting -------------------------------------------------------------


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


def test_summary_table_and_plot(tmp_path):
    rows = [
        {"retained": n, "samples_per_class": k, "trial": t, "accuracy": 0.2 + 0.1 * n + 0.01 * t}
        for n in (0, 4, 5) for k in (1, 10, 40) for t in range(3)
    ]
    summary = summarize(rows)
    assert len(summary) == 9
    cell = next(s for s in summary if s["retained"] == 4 and s["samples_per_class"] == 10)
    assert cell["min"] == pytest.approx(0.6) and cell["max"] == pytest.approx(0.62)
    assert cell["mean"] == pytest.approx(0.61) and cell["trials"] == 3
    text = format_table(summary)
    assert "5 (C1-C5)" in text and "2,420" in text and "0.60/0.61/0.62" in text
    assert len(text.splitlines()) == 2 + 3
    png = plot_learning_curves(summary, tmp_path / "curves.png")
    assert pathlib.Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(png) > 10_000
    with pytest.raises(ValueError, match="empty"):
        plot_learning_curves([], tmp_path / "none.png")


# -- the sweep, end to end ---------------------------------------------------------------------


def test_sweep_learns_target_classes(source):
    model, report = source
    assert report.test_accuracy > 0.7  # 5 source digits after one epoch
    rows = layer_transfer_sweep(
        model, "embedded:mnist", target_classes=DIGITS_HIGH, levels=[0, 4],
        samples_per_class=[20], trials=1, epochs=2, min_steps=40, codes="onehot",
    )
    assert [(r["retained"], r["samples_per_class"], r["trial"]) for r in rows] == [
        (0, 20, 0), (4, 20, 0)]
    for row in rows:
        assert row["accuracy"] > 0.4  # chance is 0.2
    assert rows[1]["trainable_parameters"] == 48120 + 5 * 121


def test_recipe_runs_exports_and_the_export_matches(tmp_path, capsys, serve_in_fresh_process, load_recipe):
    recipe = load_recipe("layer_transfer")
    export_dir = tmp_path / "served"
    png = tmp_path / "curves.png"
    result = recipe.main([
        "--trials", "1", "--samples-per-class", "5,20", "--levels", "0,4",
        "--source-epochs", "1", "--epochs", "2", "--min-steps", "30",
        "--out", str(png), "--export", str(export_dir), "--quiet",
    ])
    printed = capsys.readouterr().out
    assert "Table 1" in printed and "48,120" in printed and "52,256" in printed
    assert "Seed 002 found" in printed and "4 (C1-S4)" in printed
    assert result["free_parameters"] == TABLE_1
    summary = result["summary"]
    assert [(s["retained"], s["samples_per_class"]) for s in summary] == [
        (0, 5), (0, 20), (4, 5), (4, 20)]
    for s in summary:
        assert 0.0 <= s["min"] <= s["mean"] <= s["max"] <= 1.0
    assert max(s["mean"] for s in summary if s["samples_per_class"] == 20) > 0.4
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000

    # The export, loaded in a fresh process, agrees with the Keras classifier on raw uint8 digits.
    classifier, best = best_model(result["rows"])
    assert result["export"] == str(export_dir)
    images = load_dataset("embedded:mnist", classes=DIGITS_HIGH).arrays("test")[0][::25]
    served = serve_in_fresh_process(export_dir, images)
    expected = classifier.predict(
        np.asarray(to_image_shape(images, (32, 32, 1), "pad")), verbose=0
    )
    np.testing.assert_allclose(served["probabilities"], expected, rtol=1e-4, atol=1e-5)
    assert served["label"].tolist() == expected.argmax(-1).tolist()


def test_recipe_rejects_bad_settings_before_training(load_recipe):
    recipe = load_recipe("layer_transfer")
    with pytest.raises(ValueError, match="0..5"):
        recipe.main(["--levels", "0,6"])
    with pytest.raises(ValueError, match="samples_per_class=1000"):
        recipe.main(["--samples-per-class", "1,1000"])
    with pytest.raises(SystemExit):
        recipe.main(["--codes", "gray"])
