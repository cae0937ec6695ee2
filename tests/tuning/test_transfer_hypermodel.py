import keras
import keras_tuner
import pytest

from kerastransfer.data import load_dataset
from kerastransfer.fine_tuning import METHODS
from kerastransfer.models import small_cnn
from kerastransfer.tuning import SEARCH_SPACE, TransferHyperModel


def test_the_search_space_holds_every_documented_choice():
    hp = keras_tuner.HyperParameters()
    TransferHyperModel.declare(hp)
    space = {p.name: p for p in hp.space}
    assert set(space) == {
        "method",
        "frozen_levels",
        "imported_rate",
        "head_width",
        "dropout",
        "learning_rate",
        "bpa",
        "gamma",
    }
    assert list(space["method"].values) == list(METHODS)
    assert 0.0 in space["imported_rate"].values  # the neon scheme
    assert list(space["gamma"].values) == ["agreement", "paper"]
    assert (
        isinstance(space["bpa"], keras_tuner.HyperParameters().Boolean("x").__class__)
        or space["bpa"].__class__.__name__ == "Boolean"
    )
    assert (space["learning_rate"].min_value, space["learning_rate"].max_value) == (1e-5, 1e-3)
    for name, values in SEARCH_SPACE.items():
        if isinstance(values, list) and name != "bpa":
            assert list(space[name].values) == values, name
    # the module docstring documents each choice
    import kerastransfer.tuning.transfer_hypermodel as module

    for name in space:
        assert f"`{name}`" in module.__doc__, name


@pytest.mark.parametrize("method, bpa", [("gradual", False), ("discriminative", True)])
def test_build_and_fit_one_trial(tmp_path, method, bpa):
    keras.utils.set_random_seed(0)
    source = small_cnn((28, 28, 1), 10, filters=(4, 6), dense=16)
    data = load_dataset("embedded:usps", samples_per_class=4, image_shape=(28, 28, 1))
    hypermodel = TransferHyperModel(source, data, epochs=1, warmup_epochs=2)
    hp = keras_tuner.HyperParameters()
    hp.Fixed("method", method)
    hp.Fixed("bpa", bpa)
    hp.Fixed("frozen_levels", 2)
    hp.Fixed("head_width", 64)
    hp.Fixed("imported_rate", 0.1)  # 0 would make any method the neon scheme
    model = hypermodel.build(hp)
    # conv1, conv2, fc1: 0, 4, 8, 16, 32 become 0 and 2 (the top level always trains)
    space = keras_tuner.HyperParameters()
    TransferHyperModel.declare(space, hypermodel.max_frozen_levels)
    assert list(space.get_config()["space"][1]["config"]["values"]) == [0, 2]
    assert model.get_layer("fc1_new").units == 64
    metrics = hypermodel.fit(hp, model)
    assert 0 <= metrics["val_accuracy"] <= 1
    report = hypermodel.last_report
    assert report.method == (method + ("+bpa" if bpa else ""))


def test_values_a_method_ignores_are_not_trained_or_printed():
    from kerastransfer.tuning import fit_command

    hp = keras_tuner.HyperParameters()
    hp.Fixed("method", "neon")
    hp.Fixed("imported_rate", 1.0)
    hp.Fixed("bpa", True)
    values = TransferHyperModel.declare(hp)
    assert values["imported_rate"] == 0.0 and values["bpa"] is True  # neon: rate 0 always
    command = fit_command("MobileNetV2", "embedded:usps", hp.values, epochs=3)
    assert "--imported-rate 0 " in command and "--bpa --gamma agreement" in command
    hp = keras_tuner.HyperParameters()
    hp.Fixed("method", "gradual")
    hp.Fixed("bpa", True)
    assert TransferHyperModel.declare(hp)["bpa"] is False
    assert "--bpa" not in fit_command("MobileNetV2", "embedded:usps", hp.values, epochs=3)
