"""The domain adaptation recipe: a tiny run prints its table; the export serves raw USPS."""

import importlib.util
import pathlib

import numpy as np

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "domain_adaptation.py"


def load_recipe():
    spec = importlib.util.spec_from_file_location("domain_adaptation_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_prints_the_table_and_exports_a_usps_server(
    tmp_path, capsys, serve_in_fresh_process
):
    recipe = load_recipe()
    argv = "--epochs 1 --seeds 1 --samples-per-class 10 --batch-size 20 --tasks mnist2usps".split()
    argv += ["--methods", "source_only,dan,dann,cdan_e_mcc,mcc"]
    argv += ["--backup-dir", str(tmp_path / "backup")]
    results = recipe.main(argv + ["--export", "--saved-models", str(tmp_path)])
    out = capsys.readouterr().out
    methods = ("source_only", "dan", "dann", "cdan_e_mcc", "mcc")
    assert set(results) == {f"mnist2usps/{m}" for m in methods}
    assert all(0 <= v[0] <= 1 for v in results.values())
    for text in ("| Source only", "| DAN ", "| DANN ", "| CDAN+E + MCC ", "| MCC ", "95.1", "91.7"):
        assert text in out
    export = tmp_path / "domain_adaptation_mnist2usps_dann"
    usps = np.load(RECIPE.parents[1] / "kerastransfer" / "data" / "embedded" / "usps.npz")
    images = usps["x_test"][:6]
    assert images.dtype == np.uint8 and images.shape[1:] == (16, 16, 1)
    served = serve_in_fresh_process(export, images)
    assert served["probabilities"].shape == (6, 10)
    np.testing.assert_allclose(served["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    # A re-run with the same backup folder takes finished runs from it (same printed timing).
    dan_line = next(line for line in out.splitlines() if line.strip().startswith("dan "))
    again = recipe.main(argv)
    assert again["mnist2usps/dan"] == results["mnist2usps/dan"]
    assert dan_line in capsys.readouterr().out


def test_bad_flags_are_clear_errors(capsys):
    recipe = load_recipe()
    bad = (["--tasks", "mnist2svhn"], ["--dan-weight", "-1"], ["--temperature", "0"])
    for argv in bad + (["--methods", "cdan,dann2"],):
        try:
            recipe.main(argv)
        except SystemExit as exit_:
            assert exit_.code not in (0, None) or "unknown" in str(exit_.code)
        else:
            raise AssertionError(f"{argv} was accepted")
