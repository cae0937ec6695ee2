"""`TransferHyperModel`: a `keras_tuner.HyperModel` over transfer-learning choices.

The search space (`SEARCH_SPACE`), each choice a `fine_tune` argument of the same name:

- `method`: "neon", "discriminative", "layerwise_decay", "gradual", "bpa";
- `frozen_levels`: bottom levels kept frozen, 0, 4, 8, 16 or 32 (capped at the body's levels);
- `imported_rate`: imported layers' rate as a multiple of the base rate, 0 (neon), 0.01, 0.1, 1;
- `head_width`: 0 (linear head), 64 or 256 ReLU units;
- `dropout`: 0, 0.2 or 0.5;
- `learning_rate`: base (new layers') rate, log-uniform in [1e-5, 1e-3];
- `bpa`: BPA gradient costs on or off (always on for method "bpa"), and its `gamma` functional,
  "agreement" or "paper" (Shahriari 2017).

The defaults are `kerastransfer fit`'s, and the search (`tuning.search`) tries them first.

`build(hp)` builds the target network with the source's layers imported
(`fine_tune.build_transfer_model`); `fit(hp, model)` runs the warm-up and the method
(`fine_tune.train_transfer_model`) and returns the validation accuracy as the objective.

Example:

>>> import keras_tuner
>>> hp = keras_tuner.HyperParameters()
>>> values = TransferHyperModel.declare(hp)
>>> sorted(hp.values)[:3]
['bpa', 'dropout', 'frozen_levels']
>>> values["method"], values["learning_rate"]
('discriminative', 0.0001)
"""

import keras_tuner

from kerastransfer.fine_tune import METHODS, build_transfer_model, train_transfer_model

SEARCH_SPACE = {
    "method": list(METHODS),
    "frozen_levels": [0, 4, 8, 16, 32],
    "imported_rate": [0.0, 0.01, 0.1, 1.0],
    "head_width": [0, 64, 256],
    "dropout": [0.0, 0.2, 0.5],
    "learning_rate": (1e-5, 1e-3),
    "bpa": [False, True],
    "gamma": ["agreement", "paper"],
}


class TransferHyperModel(keras_tuner.HyperModel):
    """Transfer choices for a `source` network on `data` (a `TransferData` at its input shape).

    Args:
        source: a `keras.applications` name, a `.keras` file or a model (as `fine_tune` takes).
        data: a `kerastransfer.data.TransferData` whose `image_shape` is the model's input.
        epochs, patience, warmup_epochs, batch_size: per-trial training budget.
    """

    def __init__(
        self,
        source,
        data,
        *,
        epochs=3,
        patience=2,
        warmup_epochs=100,
        batch_size=32,
        name="transfer",
    ):
        super().__init__(name=name)
        self.source = source
        self.data = _Pipelines(data)  # built once: every trial reuses the same tf.data graphs
        self.epochs = epochs
        self.patience = patience
        self.warmup_epochs = warmup_epochs
        self.batch_size = batch_size
        self._parts = None

    @staticmethod
    def declare(hp):
        """Declare every choice of `SEARCH_SPACE` on `hp`; return the dict of values."""
        low, high = SEARCH_SPACE["learning_rate"]
        return {
            "method": hp.Choice("method", SEARCH_SPACE["method"], default="discriminative"),
            "frozen_levels": hp.Choice("frozen_levels", SEARCH_SPACE["frozen_levels"], default=0),
            "imported_rate": hp.Choice("imported_rate", SEARCH_SPACE["imported_rate"], default=0.1),
            "head_width": hp.Choice("head_width", SEARCH_SPACE["head_width"], default=0),
            "dropout": hp.Choice("dropout", SEARCH_SPACE["dropout"], default=0.2),
            "learning_rate": hp.Float("learning_rate", low, high, sampling="log", default=1e-4),
            "bpa": hp.Boolean("bpa", default=False),
            "gamma": hp.Choice("gamma", SEARCH_SPACE["gamma"], default="agreement"),
        }

    def build(self, hp):
        values = self.declare(hp)
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
        values = self.declare(hp)
        body, head, report = self._parts
        self._parts = None
        from kerastransfer.surgery import weighted_levels

        head_levels = sum(1 for lv in weighted_levels(head))
        body_levels = len(weighted_levels(model)) - head_levels
        frozen = min(values["frozen_levels"], max(body_levels - 1, 0))
        result = train_transfer_model(
            model,
            body,
            head,
            report,
            self.data,
            method=values["method"],
            learning_rate=values["learning_rate"],
            imported_rate=values["imported_rate"],
            frozen_levels=frozen,
            bpa=values["bpa"] and values["method"] not in ("bpa", "gradual"),
            gamma=values["gamma"],
            warmup_epochs=self.warmup_epochs,
            epochs=self.epochs,
            patience=self.patience,
            batch_size=self.batch_size,
            verbose=0,
            evaluate_train=False,
        )
        self.last_report = result
        return {"val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy}


class _Pipelines:
    """A `TransferData` whose pipelines are built once and reused by every trial (a new
    `tf.data` pipeline per trial would register new functions each time)."""

    def __init__(self, data):
        self._data = data
        self.info, self.image_shape = data.info, data.image_shape
        self._cache = {}
        try:
            data.arrays("validation")
            self._has_validation = True
        except ValueError:
            self._has_validation = False

    def dataset(self, split, *, shuffle=False, batch_size=None):
        key = (split, shuffle, batch_size)
        if key not in self._cache:
            self._cache[key] = self._data.dataset(split, shuffle=shuffle, batch_size=batch_size)
        return self._cache[key]

    def arrays(self, split):
        return self._data.arrays(split)

    @property
    def train(self):
        return self.dataset("train", shuffle=True)

    @property
    def validation(self):
        return self.dataset("validation") if self._has_validation else None

    @property
    def test(self):
        return self.dataset("test")
