"""`benchmarks/peft.py` runs end to end on tiny settings and returns positive, finite ratios (no
timing asserted). Tracing a MobileNetV2 training step takes 10-20 s of CPU a variant, so the fast
test runs full and lora only; the slow ones (`-m slow`) run every variant and the child mode."""

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


def _shares(out, variants):
    """variant -> the printed trainable share of its weights (%)."""
    return {v: float(_row(out, v)[2]) for v in variants}


def test_bench_prints_lora_against_full(bench, capsys, monkeypatch):
    # The fresh process per variant (the CPU memory column) gives a fixed answer here: the child
    # mode itself is run by a slow test below.
    commands = []

    def fake_child(command, timeout):
        commands.append(command)
        return {"peak_bytes": (1 + VARIANTS.index(command[-1])) * 10**8}

    monkeypatch.setattr(bench, "run_json", fake_child)
    argv = [*TINY, "--rounds", "1", "--variants", "lora"]
    ratios = bench.main(argv)
    out = capsys.readouterr().out
    assert out.startswith(
        "python benchmarks/peft.py --image-size 32 --alpha 0.35 --batch-size 4 --steps 1 "
        "--rank 2 --rounds 1 --variants lora\n"
    )
    assert set(ratios) == {"lora/full step", "lora/full step (cpu)", "lora/full memory"}
    assert all(math.isfinite(r) and r > 0 for r in ratios.values()), ratios
    if bench.accelerator() is None:
        assert commands == [[*c[:2], *argv, "--child", v] for c, v in zip(commands, VARIANTS)]
        assert ratios["lora/full memory"] == 2.0 and _row(out, "lora")[5] == "200"
    shares = _shares(out, ("full", "lora"))
    assert 0 < shares["lora"] < shares["full"] <= 100, shares


@pytest.mark.slow  # about 60 s of CPU: four MobileNetV2 training steps traced
def test_bench_every_variant_without_memory(bench, capsys):
    ratios = bench.main([*TINY, "--rounds", "1", "--no-memory"])
    out = capsys.readouterr().out
    assert set(ratios) == {
        f"{v}/full step{clock}" for v in ("lora", "dora", "bitfit") for clock in ("", " (cpu)")
    }
    assert all(math.isfinite(r) and r > 0 for r in ratios.values()), ratios
    assert _row(out, "dora")[5] == "-"
    shares = _shares(out, VARIANTS)
    assert 0 < shares["lora"] < shares["dora"] < shares["full"] <= 100, shares
    assert 0 < shares["bitfit"] < shares["full"], shares


@pytest.mark.slow  # about 15 s of CPU: one MobileNetV2 training step traced
def test_child_prints_the_memory_of_one_variant(bench, capsys):
    assert bench.main([*TINY, "--child", "lora"]) is None
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["variant"] == "lora" and printed["peak_bytes"] > 0


def test_bench_rejects_bad_arguments(bench):
    for bad in (["--rank", "10"], ["--variants", "full,qlora"], ["--steps", "0"]):
        with pytest.raises(SystemExit):
            bench.main(bad)
