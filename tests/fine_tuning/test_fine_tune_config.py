"""`FineTuneConfig` holds every choice and default once; `kerastransfer fit`'s flags are its
fields, and a config printed as a command line parses back to itself."""

import dataclasses

import pytest

from kerastransfer.cli import build_parser
from kerastransfer.fine_tuning import FineTuneConfig
from kerastransfer.fine_tuning.command_line import config_from_flags, fit_command_line


def test_every_field_is_a_fit_flag_with_the_config_default():
    args = build_parser().parse_args(["fit", "MobileNetV2", "embedded:usps"])
    assert config_from_flags(args) == FineTuneConfig()
    fields = {f.name for f in dataclasses.fields(FineTuneConfig)}
    assert fields <= set(vars(args))


def test_a_config_as_a_command_line_parses_back_to_itself():
    config = FineTuneConfig(
        method="gradual",
        learning_rate=0.00045044490620921475,
        imported_rate=0.01,
        groups=2,
        train_normalization=True,
        warmup_learning_rate=3e-3,
        channels=3,
        image_size=64,
        validation_split=0.25,
        seed=4,
    )
    line = fit_command_line("MobileNetV2", "embedded:usps", config)
    assert "--bpa" not in line and "--epochs" not in line  # defaults are not printed
    assert "--learning-rate 0.00045044490620921475" in line and line.endswith("--seed 4")
    args = build_parser().parse_args(line.split()[1:])
    assert config_from_flags(args) == config
    shown = fit_command_line("x.keras", "d", FineTuneConfig(), always=("epochs", "dropout"))
    assert shown == "kerastransfer fit x.keras d --epochs 10 --dropout 0.2 --seed 0"


def test_rates_resolve_per_method_and_mistakes_name_the_field():
    assert FineTuneConfig().effective_imported_rate == 0.1
    assert FineTuneConfig(method="gradual").effective_imported_rate == 1.0
    assert FineTuneConfig(imported_rate=0).effective_method == "neon"
    assert FineTuneConfig(method="layerwise_decay", imported_rate=0.5).effective_method == (
        "layerwise_decay"
    )
    with pytest.raises(ValueError, match="`imported_rate` must be 0 for method 'neon'"):
        FineTuneConfig(method="neon", imported_rate=0.5)
    with pytest.raises(ValueError, match=r"`imported_rate` must be in \[0, 1\]. Received: 2"):
        FineTuneConfig(imported_rate=2)
    with pytest.raises(ValueError, match="`learning_rate` must be a positive number or 'find'"):
        FineTuneConfig(learning_rate="fast")
    with pytest.raises(ValueError, match="`gamma` must be one of agreement, paper"):
        FineTuneConfig(gamma="norm")
    with pytest.raises(TypeError, match="Unexpected fine-tuning argument 'epoch'"):
        FineTuneConfig().replace(epoch=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        FineTuneConfig().epochs = 3
