"""recipes/layer_transfer.py: its table and plot, a tiny run and its export, bad settings, a
dataset given by path, and resuming from --backup-dir without redoing finished runs."""

import os
import pathlib

import numpy as np
import pytest

from kerastransfer.data import load_dataset, to_image_shape
from kerastransfer.models.lenet import TABLE_1

DIGITS_HIGH = [5, 6, 7, 8, 9]


@pytest.fixture(scope="module")
def recipe(load_recipe):
    return load_recipe("layer_transfer")


def test_summary_table_and_plot(tmp_path, recipe):
    rows = [
        {"retained": n, "samples_per_class": k, "trial": t, "accuracy": 0.2 + 0.1 * n + 0.01 * t}
        for n in (0, 4, 5)
        for k in (1, 10, 40)
        for t in range(3)
    ]
    summary = recipe.summarize(rows)
    assert len(summary) == 9
    cell = next(s for s in summary if s["retained"] == 4 and s["samples_per_class"] == 10)
    assert cell["min"] == pytest.approx(0.6) and cell["max"] == pytest.approx(0.62)
    assert cell["mean"] == pytest.approx(0.61) and cell["trials"] == 3
    assert cell["sd"] == pytest.approx(np.std([0.6, 0.61, 0.62]))
    text = recipe.format_table(summary)
    assert "5 (C1-C5)" in text and "2,420" in text and "0.60/0.61/0.62" in text
    assert "0.60/0.61/0.62 +-0.01" in text
    assert len(text.splitlines()) == 2 + 3
    png = recipe.plot_learning_curves(summary, tmp_path / "curves.png")
    assert pathlib.Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(png) > 10_000
    with pytest.raises(ValueError, match="empty"):
        recipe.plot_learning_curves([], tmp_path / "none.png")


def test_recipe_runs_exports_and_the_export_matches(
    tmp_path, capsys, serve_in_fresh_process, recipe
):
    export_dir = tmp_path / "layer_transfer"
    png = tmp_path / "curves.png"
    result = recipe.main(
        [
            "--seeds",
            "1",
            "--samples-per-class",
            "5,20",
            "--levels",
            "0,4",
            "--source-epochs",
            "1",
            "--epochs",
            "2",
            "--min-steps",
            "30",
            "--out",
            str(png),
            "--export",
            "--saved-models",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    assert "Table 1" in printed and "48,120" in printed and "52,256" in printed
    assert "Gutstein et al. (2008) found" in printed and "4 (C1-S4)" in printed
    assert result["free_parameters"] == TABLE_1
    summary = result["summary"]
    assert [(s["retained"], s["samples_per_class"]) for s in summary] == [
        (0, 5),
        (0, 20),
        (4, 5),
        (4, 20),
    ]
    for s in summary:
        assert 0.0 <= s["min"] <= s["mean"] <= s["max"] <= 1.0
    assert max(s["mean"] for s in summary if s["samples_per_class"] == 20) > 0.4
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000

    # The export, loaded in a fresh process, agrees with the Keras classifier on raw uint8 digits.
    classifier, best = recipe.best_model(result["rows"])
    assert result["export"] == str(export_dir)
    mnist = load_dataset("embedded:mnist", classes=DIGITS_HIGH)
    images = mnist.take("test", range(0, mnist.size("test"), 25))[0].astype("uint8")
    served = serve_in_fresh_process(export_dir, images)
    expected = classifier.predict(np.asarray(to_image_shape(images, (32, 32, 1), "pad")), verbose=0)
    np.testing.assert_allclose(served["probabilities"], expected, rtol=1e-4, atol=1e-5)
    assert served["label"].tolist() == expected.argmax(-1).tolist()


def test_recipe_rejects_bad_settings_before_training(recipe):
    with pytest.raises(ValueError, match="0..5"):
        recipe.main(["--levels", "0,6"])
    with pytest.raises(ValueError, match="samples_per_class=1000"):
        recipe.main(["--samples-per-class", "1,1000"])
    with pytest.raises(SystemExit):
        recipe.main(["--codes", "gray"])
    with pytest.raises(SystemExit):
        recipe.main(["--seeds", "0"])


def strip(rows):
    return [{k: v for k, v in r.items() if k not in ("weights", "codes")} for r in rows]


def test_dataset_by_path_and_backup_dir_resume_without_redoing_runs(
    tmp_path, recipe, monkeypatch, capsys, copy_embedded
):
    path = copy_embedded("usps", tmp_path / "my data" / "usps-copy.npz")
    argv = [
        "--target",
        str(path),
        "--seeds",
        "2",
        "--samples-per-class",
        "5",
        "--levels",
        "0,5",
        "--source-epochs",
        "1",
        "--epochs",
        "1",
        "--min-steps",
        "10",
        "--saved-models",
        str(tmp_path / "models"),
        "--backup-dir",
        str(tmp_path / "backup"),
        "--export",
    ]
    first = recipe.main(argv)
    assert [r["trial"] for r in first["rows"]] == [0, 1, 0, 1]
    assert (tmp_path / "models" / "layer_transfer" / "saved_model.pb").exists()
    assert "usps-copy.npz" in capsys.readouterr().out

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    # The source net and every run come from --backup-dir; only the best run (for its weights,
    # to export) trains again, and it must reproduce its accuracy.
    monkeypatch.setattr(recipe, "train_source", no_training)
    second = recipe.main(argv)
    assert strip(second["rows"]) == strip(first["rows"])
    assert second["summary"] == first["summary"]
    best = [r for r in second["rows"] if "weights" in r]
    assert len(best) == 1
