"""`benchmarks/peft.py` runs end to end on tiny settings and returns positive, finite ratios (no
timing asserted)."""

import json
import math

import pytest

TINY = ["--image-size", "32", "--alpha", "0.35", "--batch-size", "4", "--steps", "1", "--rank", "2"]
VARIANTS = ("full", "lora", "dora", "bitfit")


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("peft")


def _row(out, variant):
    """The cells of `variant`'s table row."""
    line = next(line for line in out.splitlines() if line.startswith(f"| {variant} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_bench_prints_every_variant_and_returns_ratios(bench, capsys, monkeypatch):
    # The fresh process per variant (the CPU memory column) is replaced by a fixed answer here:
    # the child mode itself is run by the slow test below.
    commands = []

    def fake_child(command, timeout):
        commands.append(command)
        return {"peak_bytes": (1 + VARIANTS.index(command[-1])) * 10**8}

    monkeypatch.setattr(bench, "run_json", fake_child)
    ratios = bench.main([*TINY, "--rounds", "1"])
    out = capsys.readouterr().out
    assert out.startswith(
        "python benchmarks/peft.py --image-size 32 --alpha 0.35 --batch-size 4 --steps 1 "
        "--rank 2 --rounds 1\n"
    )
    if bench.accelerator() is None:
        assert [c[-2:] for c in commands] == [["--child", v] for v in VARIANTS]
        assert all(c[2:-2] == [*TINY, "--rounds", "1"] for c in commands)
        assert ratios["dora/full memory"] == 3.0 and _row(out, "bitfit")[5] == "400"
    assert set(ratios) == {
        f"{v}/full {what}"
        for v in ("lora", "dora", "bitfit")
        for what in ("step", "step (cpu)", "memory")
    }
    assert all(math.isfinite(r) and r > 0 for r in ratios.values()), ratios
    share = {v: float(_row(out, v)[2]) for v in VARIANTS}
    assert 0 < share["lora"] < share["dora"] < share["full"] <= 100, share
    assert 0 < share["bitfit"] < share["full"], share


@pytest.mark.slow  # about 30 s on 2 busy cores: MobileNetV2 built and its training step traced
def test_child_prints_the_memory_of_one_variant(bench, capsys):
    assert bench.main([*TINY, "--child", "lora"]) is None
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["variant"] == "lora" and printed["peak_bytes"] > 0


def test_bench_rejects_bad_arguments(bench):
    for bad in (["--rank", "10"], ["--variants", "full,qlora"], ["--steps", "0"]):
        with pytest.raises(SystemExit):
            bench.main(bad)
