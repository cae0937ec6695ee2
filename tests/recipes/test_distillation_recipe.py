"""recipes/distillation.py: a tiny run and its servable export, seeds with mean +- sd, a dataset
given by path, and resuming from --backup-dir without redoing finished runs."""

import json

import keras
import numpy as np
import pytest

TINY = [
    "--samples-per-class",
    "10",
    "--image-size",
    "16",
    "--teacher-epochs",
    "2",
    "--epochs",
    "1",
    "--teacher-filters",
    "4",
    "8",
    "--teacher-dense",
    "16",
    "--student-filters",
    "2",
    "2",
    "--student-dense",
    "8",
]


@pytest.fixture(scope="module")
def recipe(load_recipe):
    return load_recipe("distillation")


def test_recipe_runs_tiny_and_exports_a_servable_student(
    tmp_path, capsys, serve_in_fresh_process, recipe
):
    result = recipe.main(TINY + ["--export", "--saved-models", str(tmp_path)])
    rows = result["rows"]
    assert [r["method"].split(" (")[0] for r in rows] == [
        "teacher",
        "student from scratch",
        "distilled student",
    ]
    assert rows[0]["params"] > rows[1]["params"] == rows[2]["params"]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
    assert result["history"]["distillation_loss"][0] > 0
    printed = capsys.readouterr().out
    assert "| teacher" in printed and "over 1 seed(s)" in printed and "146 errors" in printed

    # The export serves raw 28x28 uint8 digits in a fresh process, as the Keras student predicts.
    student = result["models"]["student"]
    assert result["export_path"] == str(tmp_path / "distillation_student")
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (3, 28, 28, 1)).astype("uint8")
    expected = student.predict(keras.ops.image.resize(raw.astype("float32"), (16, 16)), verbose=0)
    served = serve_in_fresh_process(result["export_path"], raw)["probabilities"]
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-5)


def without_times(rows):
    return [{k: v for k, v in r.items() if k != "train_s"} for r in rows]


def test_dataset_by_path_seeds_and_backup_dir_resume_without_redoing_runs(
    tmp_path, recipe, monkeypatch, capsys, copy_embedded
):
    path = copy_embedded("usps", tmp_path / "my data" / "usps-copy.npz")
    backup = tmp_path / "backup"
    argv = TINY + ["--dataset", str(path), "--seeds", "2", "--backup-dir", str(backup)]
    first = recipe.main(argv)
    assert all(len(r["runs"]) == 2 for r in first["rows"])
    # Two seeds draw different images and weights: the spread is measured.
    assert any(r["test_sd"] > 0 for r in first["rows"])
    assert "over 2 seed(s)" in capsys.readouterr().out

    # As if killed before the last run finished: only that run trains again, with the teacher
    # from --backup-dir, and it gives the same numbers.
    (runs_file,) = (backup / "distillation").glob("runs_*.json")
    runs = json.loads(runs_file.read_text())
    del runs["distilled:1"]
    runs_file.write_text(json.dumps(runs))
    built = []
    small_cnn = recipe.small_cnn
    monkeypatch.setattr(
        recipe, "small_cnn", lambda *a, **k: built.append(k["name"]) or small_cnn(*a, **k)
    )
    second = recipe.main(argv)
    assert built == ["student"]
    assert without_times(second["rows"]) == without_times(first["rows"])
    # Everything finished: a third run trains nothing, and exports the cached student.
    built.clear()
    third = recipe.main(argv + ["--export", "--saved-models", str(tmp_path / "models")])
    assert built == [] and third["rows"] == second["rows"]
    assert (tmp_path / "models" / "distillation_student" / "saved_model.pb").exists()
