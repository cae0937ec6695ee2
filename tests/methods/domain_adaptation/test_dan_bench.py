"""The DAN/DANN bench runs end to end and returns positive, finite ratios (no timing asserted)."""

import numpy as np

from kerastransfer.methods.domain_adaptation import bench


def test_bench_prints_ratios_for_every_variant(capsys):
    ratios = bench.main(["--batch-size", "16", "--steps", "2", "--rounds", "1"])
    out = capsys.readouterr().out
    assert set(ratios) == {
        f"{v}/{base}{clock}"
        for v in ("dan_quadratic", "dan_linear", "dann")
        for base in ("source_only", "joint")
        for clock in ("", " (cpu)")
    }
    assert all(np.isfinite(r) and r > 0 for r in ratios.values())
    assert "[wall] dan_linear / source_only" in out and "[cpu] dann" in out
