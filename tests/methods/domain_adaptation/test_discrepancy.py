"""domain_gap: MMD per layer between domains, the CLI function, bad input."""

import keras
import numpy as np
import pytest

from kerastransfer.data import load_dataset
from kerastransfer.methods.domain_adaptation import domain_gap, domain_gap_main
from kerastransfer.models import digits_lenet


@pytest.fixture(scope="module")
def digits():
    keras.utils.set_random_seed(0)
    mnist = load_dataset("embedded:mnist", validation_split=0)
    usps = load_dataset("embedded:usps", image_shape=(28, 28, 1), validation_split=0)
    return digits_lenet(), mnist, usps


def test_gap_between_domains_exceeds_gap_within_one(digits):
    model, mnist, usps = digits
    layers = ["flatten", "bottleneck"]
    across = domain_gap(model, mnist, usps, layers, batch_size=200, batches=2)
    x = mnist.take("test", range(1000))[0]
    within = domain_gap(model, x[:500], x[500:], layers, batch_size=200, batches=2)
    assert list(across) == layers
    for name in layers:
        assert across[name] > 5 * max(within[name], 1e-3), (across, within)


def test_linear_estimate_and_default_layers(digits):
    model, mnist, usps = digits
    gaps = domain_gap(model, mnist, usps, estimate="linear", batch_size=128, batches=2)
    assert list(gaps) == ["conv1", "conv2", "bottleneck", "probabilities"]
    assert all(np.isfinite(v) for v in gaps.values())
    by_name = domain_gap(
        model,
        source_data=mnist,
        target_data=usps,
        estimate="linear",
        batch_size=128,
        batches=2,
    )
    assert by_name == gaps  # the same draw (seed 0)


def test_cli_function_prints_a_table_for_a_saved_model(digits, tmp_path, capsys):
    model, _, _ = digits
    model.save(tmp_path / "lenet.keras")
    argv = "--source embedded:mnist --target embedded:usps --layers conv1,bottleneck --batches 1"
    gaps = domain_gap_main([str(tmp_path / "lenet.keras"), *argv.split(), "--batch-size", "100"])
    out = capsys.readouterr().out
    assert "conv1" in out and "bottleneck" in out and "MMD^2" in out
    assert sorted(gaps) == ["bottleneck", "conv1"]


def test_bad_input_is_a_clear_error(digits):
    model, mnist, usps = digits
    with pytest.raises(ValueError, match=r"\['fc9'\] name no layer"):
        domain_gap(model, mnist, usps, ["conv1", "fc9"])
    with pytest.raises(ValueError, match="batches"):
        domain_gap(model, mnist, usps, ["conv1"], batches=0)
