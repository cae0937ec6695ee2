"""`benchmarks/domain_adaptation.py` runs end to end and returns positive, finite ratios (no timing
asserted)."""

import numpy as np


def test_bench_prints_ratios_for_every_variant(load_benchmark, capsys):
    ratios = load_benchmark("domain_adaptation").main(
        ["--batch-size", "16", "--steps", "2", "--rounds", "1"]
    )
    out = capsys.readouterr().out
    assert out.startswith("python benchmarks/domain_adaptation.py --batch-size 16 --steps 2 ")
    assert set(ratios) == {
        f"{v}/{base}{clock}"
        for v in ("dan_quadratic", "dan_linear", "dann", "cdan_e", "mcc")
        for base in ("source_only", "joint")
        for clock in ("", " (cpu)")
    }
    assert all(np.isfinite(r) and r > 0 for r in ratios.values())
    assert "[wall] dan_linear / source_only" in out and "[cpu] dann" in out and "[cpu] mcc" in out
