"""Smoke test of `benchmarks/spottune.py`: tiny settings, every ratio a positive finite number
(no timing assertions)."""

import math

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("spottune")


def test_bench_smoke(bench, capsys):
    result = bench.main(
        [
            "--model",
            "tiny",
            "--image-size",
            "32",
            "--batch-size",
            "4",
            "--repeats",
            "1",
            "--memory",
            "off",
        ]
    )
    printed = capsys.readouterr().out
    assert printed.startswith("python benchmarks/spottune.py --model tiny --image-size 32 ")
    for line in (
        "training step SpotTune / fine-tuning",
        "inference SpotTune (policy) / plain",
        "inference SpotTune (50/50 split) / plain",
        "both copies + mask",
    ):
        assert line in printed
    for key in (
        "train_ratio",
        "inference_ratio",
        "split_inference_ratio",
        "masked_inference_ratio",
    ):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["blocks"] == 2 and 0 <= result["policy_finetuned_fraction"] <= 1


def test_bench_rejects_bad_arguments(bench):
    with pytest.raises(SystemExit):
        bench.main(["--batch-size", "1"])
