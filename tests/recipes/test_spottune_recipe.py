"""The SpotTune recipe: both scenarios at tiny scale (rows, export), .npz sequences, bad input."""

import numpy as np
import pytest
import tensorflow as tf

TINY = [
    "--source-samples",
    "20",
    "--source-epochs",
    "1",
    "--target-samples",
    "5",
    "--test-samples",
    "60",
    "--epochs",
    "1",
    "--seeds",
    "1",
    "--units",
    "4",
]


@pytest.fixture(scope="module")
def recipe(load_recipe):
    return load_recipe("spottune")


def test_recurrent_scenario_rows_and_export(recipe, tmp_path, capsys):
    result = recipe.main(TINY + ["--export", "--saved-models", str(tmp_path)])
    printed = capsys.readouterr().out
    runs = result["runs"]
    assert list(runs) == ["spottune", "fine-tune", "scratch"]
    assert all(len(v) == 1 for v in runs.values())
    for results in runs.values():
        for r in results:
            assert 0 <= r["test_accuracy"] <= 1 and np.isfinite(r["test_loss"])
    assert set(runs["spottune"][0]["block_usage"]) == {"lstm_1", "lstm_2", "lstm_3"}
    assert "report (10 epochs)" in printed and "0.320" in printed and "0.348" in printed
    assert "SpotTune / from scratch" in printed and "folded" in printed
    served = tf.saved_model.load(result["export_path"])
    x = np.zeros((2, 28, 28), "float32")
    assert served.serve(tf.constant(x)).shape == (2, 10)


def test_npz_sequences_and_bad_input(recipe, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "har.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(60, 12, 3)).astype("float32"),
        y_train=np.arange(60) % 3,
        x_test=rng.normal(size=(20, 12, 3)).astype("float32"),
        y_test=np.arange(20) % 3,
    )
    args = [
        "--target-samples",
        "0",
        "--source-samples",
        "0",
        "--source-epochs",
        "1",
        "--epochs",
        "1",
        "--seeds",
        "1",
        "--units",
        "4",
    ]
    source, target, num_classes = recipe.sequence_data(
        recipe.parse_args(
            args
            + ["--sequences", str(path), "--source-sequences", str(path), "--test-samples", "8"]
        )
    )
    assert num_classes == 3 and target["train"][0].shape == (54, 12, 3)
    assert target["validation"][0].shape == (6, 12, 3) and target["test"][0].shape == (8, 12, 3)
    assert source["train"][0].dtype == np.float32 and target["test"][1].dtype == np.int64
    with pytest.raises(ValueError, match="pass --source-sequences"):
        recipe.main(args + ["--sequences", str(path)])  # default source: 28x28 MNIST rows
    bad = tmp_path / "bad.npz"
    np.savez(
        bad,
        x_train=np.zeros((4, 12)),
        y_train=np.zeros(4),
        x_test=np.zeros((2, 12)),
        y_test=np.zeros(2),
    )
    with pytest.raises(ValueError, match=r"\(N, timesteps, features\)"):
        recipe.main(args + ["--sequences", str(bad)])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        recipe.main(args + ["--sequences", str(tmp_path / "missing.npz")])
    with pytest.raises(SystemExit):
        recipe.main(["--temperature", "0"])
    with pytest.raises(SystemExit):
        recipe.main(["--scenario", "transformer"])


@pytest.mark.slow
def test_conv_scenario_rows_and_export(recipe, imagenet_weights, tmp_path, serve_in_fresh_process):
    result = recipe.main(
        [
            "--scenario",
            "conv",
            "--image-size",
            "32",
            "--target-samples",
            "2",
            "--test-samples",
            "40",
            "--epochs",
            "1",
            "--head-epochs",
            "2",
            "--seeds",
            "1",
            "--export",
            "--saved-models",
            str(tmp_path),
        ]
    )
    assert list(result["runs"]) == ["linear", "spottune", "fine-tune"]
    assert len(result["runs"]["spottune"][0]["block_usage"]) == 10
    raw = np.zeros((2, 28, 28, 1), "uint8")
    served = serve_in_fresh_process(result["export_path"], raw)
    assert served["probabilities"].shape == (2, 10)
