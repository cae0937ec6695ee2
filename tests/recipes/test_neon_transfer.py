"""Smoke run of recipes/neon_transfer.py (the README's main job) with tiny settings."""

import tensorflow as tf

from kerastransfer import cli


def test_neon_recipe_table_and_export(tmp_path, capsys, load_recipe):
    recipe = load_recipe("neon_transfer")
    argv = [
        "--seeds",
        "1",
        "--primary-epochs",
        "1",
        "--epochs",
        "3",
        "--samples-per-class",
        "30",
        "--batch-size",
        "16",
        "--verbose",
        "0",
        "--saved-models",
        str(tmp_path),
        "--export",
    ]
    rows = recipe.main(argv)
    out = capsys.readouterr().out
    assert [r["id"] for r in rows] == ["direct", "TL-1", "TL-2", "TL-3", "FE"]
    by_id = {r["id"]: r for r in rows}
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    # A primary network trained on MNIST transfers to USPS far above chance (10%).
    assert by_id["TL-1"]["accuracy"] > 0.4 and by_id["FE"]["accuracy"] > 0.4
    assert by_id["TL-1"]["seconds"] > 0
    for r in rows:
        assert f"{100 * r['accuracy']:.1f}" in out
    assert "Network id" in out and "85.6" in out  # the neon course's published TL-1 next to ours
    served = tf.saved_model.load(str(tmp_path / "neon_transfer"))
    result = served.serve(tf.zeros((3, 16, 16, 1), tf.uint8))
    assert result["probabilities"].shape == (3, 10)
    # The primary network was cached and is reused by a second run.
    assert list((tmp_path / "primary").glob("*.keras"))
    recipe.main(argv[:-1] + ["--epochs", "1"])
    assert "(cached" in capsys.readouterr().out


def test_cli_describes_data_and_reports_errors(capsys, tmp_path):
    assert cli.main(["data", "embedded:usps"]) == 0
    assert "10 classes" in capsys.readouterr().out
    assert cli.main(["data", "embedded:nope"]) == 2
    assert "Unknown embedded dataset" in capsys.readouterr().err
    from kerastransfer.models import small_cnn

    path = tmp_path / "m.keras"
    small_cnn().save(path)
    assert cli.main(["inspect", str(path)]) == 0
    assert "level   1: conv1 (Conv2D), bn1 (BatchNormalization): 600" in capsys.readouterr().out
    assert cli.main(["import", str(path), str(path)]) == 0
    assert "imported 6 layers" in capsys.readouterr().out
    assert cli.main(["nonsense"]) == 2  # one line on stderr, no SystemExit traceback
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err
