"""Smoke test of the SpotTune benchmark: tiny settings, every ratio a positive finite number
(no timing assertions)."""

import math

import pytest

from kerastransfer.methods.spottune import bench


def test_bench_smoke(capsys):
    result = bench.benchmark(
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


def test_bench_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        bench.benchmark(["--batch-size", "1"])
