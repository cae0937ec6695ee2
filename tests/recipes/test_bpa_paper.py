"""Smoke run of recipes/bpa_paper.py (the paper's Tables 1-3) with tiny settings."""

import keras
import numpy as np
import pytest
import tensorflow as tf


def test_bpa_recipe_tables_and_export(tmp_path, capsys, load_recipe):
    recipe = load_recipe("bpa_paper")
    out = recipe.main(
        [
            "--pairs",
            "mnist:usps",
            "--seeds",
            "2",
            "--samples-per-class",
            "20",
            "--primary-epochs",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--saved-models",
            str(tmp_path),
            "--export",
        ]
    )
    printed = capsys.readouterr().out
    ((name, train_err, test_err),) = out["table1"]
    assert (
        name == "mnist" and 0 <= train_err < 20 and 0 <= test_err < 25
    )  # a working primary network
    methods = [r["method"] for r in out["results"]]
    assert methods == ["standard", "fine-tune", "bpa-paper", "bpa-agreement"]
    for r in out["results"]:
        assert 0 <= r["train"] <= 100 and 0 <= r["test"] < 60, r  # far better than chance (90%)
        assert r["train_sd"] >= 0 and r["test_sd"] >= 0
    # Two seeds really differ: the spread is measured, not zero everywhere.
    assert any(r["test_sd"] > 0 for r in out["results"])
    assert "Gamma normalisation: max; Gamma set: validation; split: conv1" in printed
    assert (
        "29.57" in printed and "Gamma min" in printed
    )  # the paper's numbers beside ours; Gamma logged
    served = tf.saved_model.load(str(tmp_path / "bpa_mnist_to_usps"))
    probabilities = served.serve(tf.zeros((2, 16, 16, 1), tf.uint8))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(-1), 1, atol=1e-5)


TINY = [
    "--seeds",
    "1",
    "--gamma",
    "agreement",
    "--samples-per-class",
    "10",
    "--primary-epochs",
    "1",
    "--epochs",
    "1",
    "--batch-size",
    "32",
]


def test_same_command_prints_the_same_table(tmp_path, load_recipe):
    recipe = load_recipe("bpa_paper")
    # Separate saved_models folders: the primary network is trained (seeded) in both runs.
    first = recipe.main(TINY + ["--pairs", "usps:mnist", "--saved-models", str(tmp_path / "a")])
    second = recipe.main(TINY + ["--pairs", "usps:mnist", "--saved-models", str(tmp_path / "b")])
    assert first["table1"] == second["table1"]
    for a, b in zip(first["results"], second["results"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }


def test_dataset_by_path_and_backup_dir_resume_without_redoing_runs(
    tmp_path, load_recipe, monkeypatch, copy_embedded
):
    path = copy_embedded("usps", tmp_path / "my data" / "usps-copy.npz")
    recipe = load_recipe("bpa_paper")
    argv = TINY + [
        "--pairs",
        f"mnist:{path}",
        "--saved-models",
        str(tmp_path / "models"),
        "--backup-dir",
        str(tmp_path / "backup"),
        "--export",
    ]
    first = recipe.main(argv)
    assert [r["target"] for r in first["results"]] == [str(path)] * 3
    assert (tmp_path / "models" / "bpa_mnist_to_usps-copy").is_dir()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(recipe, "transfer", no_training)
    second = recipe.main(argv)
    assert second["results"] == first["results"]


class Killed(Exception):
    pass


class _KillMidEpoch(keras.callbacks.Callback):
    """Stops the run at the second batch of its second epoch, as a kill would."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            raise Killed


def test_a_run_killed_mid_epoch_and_resumed_prints_the_uninterrupted_table(
    tmp_path, load_recipe, monkeypatch
):
    recipe = load_recipe("bpa_paper")
    argv = TINY + ["--pairs", "usps:mnist", "--epochs", "3", "--saved-models", str(tmp_path)]
    whole = recipe.main(argv)
    argv += ["--backup-dir", str(tmp_path / "backup")]
    fit = recipe.fit

    def killed_in_bpa(model, data, **kwargs):  # the BPA run dies in its second epoch
        if isinstance(model, recipe.BPAModel):
            kwargs["callbacks"] = [*kwargs.get("callbacks", ()), _KillMidEpoch()]
        return fit(model, data, **kwargs)

    monkeypatch.setattr(recipe, "fit", killed_in_bpa)
    with pytest.raises(Killed):
        recipe.main(argv)
    monkeypatch.undo()
    resumed = recipe.main(argv)
    assert resumed["table1"] == whole["table1"]
    for a, b in zip(whole["results"], resumed["results"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }


@pytest.mark.slow  # 80 s; BPA on the nested MobileNetV2 itself: methods/bpa/test_nested_backbone.py
def test_mobilenet_row_bpa_against_fine_tuning(tmp_path, load_recipe, imagenet_weights):
    recipe = load_recipe("bpa_paper")
    out = recipe.main(
        TINY
        + [
            "--pairs",
            "mnist:usps",
            "--samples-per-class",
            "4",
            "--mobilenet",
            "usps",
            "--mobilenet-size",
            "32",
            "--saved-models",
            str(tmp_path),
        ]
    )
    rows = [r for r in out["results"] if r["primary"] == "imagenet"]
    assert [r["method"] for r in rows] == ["fine-tune", "bpa-agreement"]
    for r in rows:
        assert 0 <= r["train"] <= 100 and 0 <= r["test"] <= 100
