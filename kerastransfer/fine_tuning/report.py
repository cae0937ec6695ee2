"""`FineTuneReport` and `FineTuneResult`: what `fine_tune` returns and prints."""

import dataclasses
import math

import keras


@dataclasses.dataclass
class FineTuneReport:
    """What `fine_tune` did: imports, rates, epochs, accuracies and times.

    `trainable_parameters` counts the scalars fine-tuning updates (the trainable weights at a
    rate above 0: not neon's imported layers, at rate 0), `total_parameters` every scalar of the
    network (non-trainable statistics, and the adapters of "lora" and "dora", included), both
    at the end of fine-tuning (after gradual unfreezing); `adaptation` says what a
    parameter-efficient method trains in the backbone.
    """

    source: str
    method: str
    input_shape: tuple
    imported: list
    adapted: dict
    new_layers: list
    frozen: list
    groups: dict
    trainable_parameters: int = 0
    total_parameters: int = 0
    adaptation: str = None
    warmup_epochs: int = 0
    epochs: int = 0
    best_epoch: int = 0
    train_accuracy: float = math.nan
    val_accuracy: float = math.nan
    test_accuracy: float = math.nan
    warmup_s: float = 0.0
    fine_tune_s: float = 0.0
    total_s: float = 0.0
    export_path: str = None
    found_learning_rate: float = None
    replicas: int = 1
    precision: str = "float32"
    skipped: object = None
    history: dict = dataclasses.field(default_factory=dict, repr=False)

    def __str__(self):
        adapted = ", ".join(f"{k} adapted {v[0][0]} -> {v[1][0]}" for k, v in self.adapted.items())
        lines = [
            f"fine_tune {self.source} -> {self.input_shape}, method {self.method}",
            f"  imported {len(self.imported)} layers" + (f" ({adapted})" if adapted else ""),
            f"  new layers: {', '.join(self.new_layers)}",
        ]
        if self.frozen:
            lines.append(f"  frozen (trainable=False): {len(self.frozen)} layers")
        if self.adaptation:
            lines.append(f"  backbone trains: {self.adaptation}")
        for name, (rate, count) in self.groups.items():
            lines.append(f"  group {name:<16} lr {rate:<10.3g} {count} variables")
        if self.total_parameters:
            trained, total = self.trainable_parameters, self.total_parameters
            lines.append(
                f"  trainable parameters: {trained:,} of {total:,} ({_percent(trained, total)})"
            )
        if self.replicas != 1 or self.precision != "float32":
            lines.append(f"  {self.replicas} replicas, dtype policy {self.precision}")
        lines.append(
            f"  warm-up {self.warmup_epochs} epochs ({self.warmup_s:.1f} s), fine-tuning "
            f"{self.epochs} epochs, best {self.best_epoch} ({self.fine_tune_s:.1f} s)"
        )
        lines.append(
            f"  accuracy: train {self.train_accuracy:.2%}  validation {self.val_accuracy:.2%}  "
            f"test {self.test_accuracy:.2%}   total {self.total_s:.1f} s"
        )
        if self.skipped is not None and len(self.skipped):
            lines.append(f"  {self.skipped!r}")
        if self.export_path:
            lines.append(f"  exported to {self.export_path}")
        return "\n".join(lines)


def _percent(part, whole):
    """`part / whole` as a percentage: one decimal, two significant digits below 0.1%."""
    value = 100 * part / whole
    return f"{value:.1f}%" if value >= 0.1 or value == 0 else f"{value:.2g}%"


@dataclasses.dataclass
class FineTuneResult:
    """`model` (the trained Keras classifier), `report` (a `FineTuneReport`), `data`."""

    model: keras.Model
    report: FineTuneReport
    data: object
