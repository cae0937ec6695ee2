"""Smoke test of `benchmarks/bpa.py`: tiny settings, ratios are positive finite numbers."""

import math

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("bpa")


def test_bench_smoke(bench, capsys):
    result = bench.main(
        [
            "--data",
            "embedded:mnist",
            "--samples",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--filters",
            "3,4",
            "--dense",
            "8",
            "--gamma",
            "agreement",
            "--compare-batches",
            "2",
            "--repeats",
            "1",
            "--transfer-epochs",
            "1",
            "--samples-per-class",
            "4",
        ]
    )
    printed = capsys.readouterr().out
    assert printed.startswith("python benchmarks/bpa.py --data embedded:mnist --samples 64 ")
    for line in (
        "throughput BPA / plain fit",
        "refresh / naive d full passes",
        "refresh / one BPA training epoch",
        "BPA transfer / fine-tuning wall",
        "peak memory refresh / evaluation",
    ):
        assert line in printed
    for key in ("throughput_ratio", "refresh_vs_naive", "refresh_share_of_epoch", "transfer_ratio"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert math.isfinite(result["memory_ratio"]) and result["memory_ratio"] >= 0
    assert result["eval_peak_bytes"] >= 0 and result["refresh_peak_bytes"] >= 0
    assert result["samples"] == 64 and result["filters"] == 3
    assert "RSS" in result["memory_source"] or "get_memory_info" in result["memory_source"]
    assert result["probe_method"] == "separable"
    assert result["model"] == "small_cnn" and result["refresh_samples_per_class"] == 4


def test_bench_rejects_bad_arguments(bench, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--epochs", "0"])
    assert exit_info.value.code == 2
    assert "--epochs, --compare-batches and --repeats must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--transfer-epochs", "0"])
    assert "--transfer-epochs, --transfer-repeats and --refresh-every" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--model", "resnet"])
