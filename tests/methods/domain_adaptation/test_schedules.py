"""AdaptationRamp: values of the 2/(1+exp(-steepness p))-1 ramp, serialization, bad input."""

import keras
import numpy as np
import pytest

from kerastransfer.methods.domain_adaptation import AdaptationRamp


@pytest.mark.parametrize("steepness", [10.0, 3.0])
def test_ramp_values_match_the_formula(steepness):
    ramp = AdaptationRamp(total_steps=200, maximum=3.0, steepness=steepness)
    for step in (0, 1, 37, 100, 199, 200, 5000):
        p = min(step / 200, 1.0)
        expected = 3.0 * (2 / (1 + np.exp(-steepness * p)) - 1)
        assert float(ramp(step)) == pytest.approx(expected, rel=1e-5)
    values = [float(ramp(s)) for s in range(0, 220, 10)]
    assert values[0] == 0.0 and all(a <= b for a, b in zip(values, values[1:]))


def test_serializes_as_a_keras_schedule():
    ramp = AdaptationRamp(50, maximum=0.5)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(ramp))
    assert isinstance(again, AdaptationRamp) and again.get_config() == ramp.get_config()


def test_a_config_saved_with_gamma_loads_as_the_steepness():
    saved = keras.optimizers.schedules.serialize(AdaptationRamp(50, steepness=4.0))
    config = saved["config"]
    config["gamma"] = config.pop("steepness")  # how configs were saved before the rename
    again = keras.optimizers.schedules.deserialize(saved)
    assert again.steepness == 4.0
    assert float(again(25)) == pytest.approx(float(AdaptationRamp(50, steepness=4.0)(25)))


@pytest.mark.parametrize(
    "kwargs",
    [{"total_steps": 0}, {"total_steps": 10, "maximum": -1}, {"total_steps": 10, "steepness": 0}],
)
def test_bad_arguments_are_clear_errors(kwargs):
    with pytest.raises(ValueError, match="must be"):
        AdaptationRamp(**kwargs)
