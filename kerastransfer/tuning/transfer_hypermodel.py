"""`TransferHyperModel`: a `keras_tuner.HyperModel` over transfer-learning choices.

The search space (`SEARCH_SPACE`), each choice a `fine_tune` argument of the same name:

- `method`: "neon", "discriminative", "layerwise_decay", "gradual", "bpa" (`METHODS`; the
  parameter-efficient `PEFT_METHODS` of `fine_tune`, "lora", "dora" and "bitfit", are not
  searched: their model is adapted after the build, and the imported rates and BPA below do not
  apply to them);
- `frozen_levels`: bottom levels kept frozen, 0, 4, 8, 16 or 32; values a body cannot hold
  become its largest (all levels but the top one), so every value of the space is a valid
  `kerastransfer fit --frozen-levels` and no two values train the same network;
- `imported_rate`: imported layers' rate as a multiple of the base rate, 0 (neon), 0.01, 0.1, 1
  (always 0 for method "neon");
- `head_width`: 0 (linear head), 64 or 256 ReLU units;
- `dropout`: 0, 0.2 or 0.5;
- `learning_rate`: base (new layers') rate, log-uniform in [1e-5, 1e-3];
- `bpa`: BPA gradient costs on or off (always on for method "bpa"), and its `gamma` functional,
  "agreement" or "paper" (Shahriari 2017).

The defaults are `FineTuneConfig`'s (`kerastransfer fit`'s), and the search (`tuning.search`)
tries them first.

`build(hp)` builds the target network with the source's layers imported
(`fine_tuning.build_transfer_model`); `fit(hp, model)` runs the warm-up and the method
(`fine_tuning.train_transfer_model`) and returns the validation accuracy as the objective.

Example:

>>> import keras_tuner
>>> hp = keras_tuner.HyperParameters()
>>> values = TransferHyperModel.declare(hp)
>>> sorted(hp.values)[:3]
['bpa', 'dropout', 'frozen_levels']
>>> values["method"], values["learning_rate"]
('discriminative', 0.0001)
"""

from kerastransfer._extras import require
from kerastransfer.fine_tuning import (
    METHODS,
    FineTuneConfig,
    build_transfer_model,
    train_transfer_model,
)
from kerastransfer.methods.bpa.dempster_shafer import GAMMA_FUNCTIONALS
from kerastransfer.surgery import weighted_levels

keras_tuner = require("keras_tuner", "The transfer search (kerastransfer.tuning)")

SEARCH_SPACE = {
    "method": list(METHODS),
    "frozen_levels": [0, 4, 8, 16, 32],
    "imported_rate": [0.0, 0.01, 0.1, 1.0],
    "head_width": [0, 64, 256],
    "dropout": [0.0, 0.2, 0.5],
    "learning_rate": (1e-5, 1e-3),
    "bpa": [False, True],
    "gamma": list(GAMMA_FUNCTIONALS),
}


class TransferHyperModel(keras_tuner.HyperModel):
    """Transfer choices for a `source` network on `data` (a `TransferData` at its input shape).

    Args:
        source: a `keras.applications` name, a `.keras` file or a model (as `fine_tune` takes).
        data: a `kerastransfer.data.TransferData` whose `image_shape` is the model's input.
        config: a `FineTuneConfig` for what is not searched, e.g. the per-trial budget
            (`epochs`, `patience`, `warmup_epochs`, `batch_size`); default: `fine_tune`'s, so a
            trial of the default values is `kerastransfer fit`.
        **choices: fields of `FineTuneConfig` replacing `config`'s (`epochs=1`, ...).
    """

    def __init__(self, source, data, *, config=None, name="transfer", **choices):
        super().__init__(name=name)
        self.source = source
        # each trial iterates fresh pipelines, as `fine_tune` does: a shuffled dataset reused
        # across trials would continue its shuffle order and break `fit`'s reproduction
        self.data = data
        self.config = (config or FineTuneConfig()).replace(**choices)
        self._parts = None
        self._max_frozen_levels = None

    @staticmethod
    def declare(hp, max_frozen_levels=None):
        """Declare every choice of `SEARCH_SPACE` on `hp`; return the dict of values.

        `max_frozen_levels` caps the `frozen_levels` choices (a body's levels minus one)."""
        low, high = SEARCH_SPACE["learning_rate"]
        frozen = SEARCH_SPACE["frozen_levels"]
        if max_frozen_levels is not None:
            frozen = sorted({min(v, max(int(max_frozen_levels), 0)) for v in frozen})
        default = FineTuneConfig()  # `kerastransfer fit`'s configuration
        return effective_values(
            {
                "method": hp.Choice("method", SEARCH_SPACE["method"], default=default.method),
                "frozen_levels": hp.Choice("frozen_levels", frozen, default=default.frozen_levels),
                "imported_rate": hp.Choice(
                    "imported_rate",
                    SEARCH_SPACE["imported_rate"],
                    default=default.effective_imported_rate,
                ),
                "head_width": hp.Choice(
                    "head_width", SEARCH_SPACE["head_width"], default=default.head_width
                ),
                "dropout": hp.Choice("dropout", SEARCH_SPACE["dropout"], default=default.dropout),
                "learning_rate": hp.Float(
                    "learning_rate",
                    low,
                    high,
                    sampling="log",
                    default=default.effective_learning_rate,
                ),
                "bpa": hp.Boolean("bpa", default=default.bpa),
                "gamma": hp.Choice("gamma", SEARCH_SPACE["gamma"], default=default.gamma),
            }
        )

    @property
    def max_frozen_levels(self):
        """The body's levels minus one (the top level always trains), counted on one build."""
        if self._max_frozen_levels is None:
            model, body, head, _ = build_transfer_model(
                self.source, self.data.image_shape, self.data.info.num_classes
            )
            body_levels = len(weighted_levels(model)) - len(weighted_levels(head))
            self._max_frozen_levels = body_levels - 1
            del model, body, head
        return self._max_frozen_levels

    def build(self, hp):
        values = self.declare(hp, self.max_frozen_levels)
        model, body, head, report = build_transfer_model(
            self.source,
            self.data.image_shape,
            self.data.info.num_classes,
            head_width=values["head_width"],
            dropout=values["dropout"],
        )
        self._parts = (body, head, report)
        return model

    def fit(self, hp, model, *args, **kwargs):
        config = self.config.replace(**self.declare(hp, self.max_frozen_levels))
        body, head, report = self._parts
        self._parts = None
        result = train_transfer_model(
            model, body, head, report, self.data, config, verbose=0, evaluate_train=False
        )
        self.last_report = result
        return {"val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy}


def effective_values(values):
    """The values a trial trains with: method "neon" takes imported rate 0 whatever was sampled,
    and the `bpa` switch is off for "bpa" (always BPA) and "gradual" (not combined)."""
    values = dict(values)
    if values["method"] == "neon":
        values["imported_rate"] = 0.0
    values["bpa"] = bool(values.get("bpa")) and values["method"] not in ("bpa", "gradual")
    return values
