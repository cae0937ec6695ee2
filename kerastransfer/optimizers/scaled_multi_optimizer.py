"""`ScaledMultiOptimizer`: a `MultiOptimizer` with a settable learning rate that checks its map."""

import difflib
import re

import keras
import numpy as np
from keras.optimizers import MultiOptimizer, OptimizerMap

from kerastransfer.optimizers.rates import rate_value, schedule_of
from kerastransfer.optimizers.validation import check_rate


@keras.saving.register_keras_serializable(package="kerastransfer")
class ScaledMultiOptimizer(MultiOptimizer):
    """A `MultiOptimizer` with a settable learning rate, that checks its map against the model.

    Keras's `MultiOptimizer` raises an `AttributeError` on `learning_rate`. Keras's own rate
    callbacks do not need it: `ReduceLROnPlateau` and `LearningRateScheduler` read and set each
    sub-optimizer's rate (`optimizer.optimizers`), and `TensorBoard` logs each one
    (`learning_rate_<sub-optimizer name>`). Code that knows only `optimizer.learning_rate` (a
    custom warm-up, `LRFinder`) fails on it. Here `learning_rate` is the default optimizer's rate,
    and setting it multiplies every sub-optimizer's rate by `new / old`: a group at rate 0 stays
    at 0 and the ratios between groups are kept.

    When built on the model's trainable variables (at the first `fit` step, or when a saved model
    is loaded), every key of the map must match a variable, and every layer listed in
    `layer_groups` (map key -> layer names, as the factories here record) must own one; otherwise
    a `ValueError` lists the names that match nothing, with close layer names. Frozen layers
    (trainable=False) own no trainable variable: pass `allow_frozen=True` for a map that names
    layers to be unfrozen later (`GradualUnfreezing`); that skips the check.

    Args:
        optimizer_map: a `keras.optimizers.OptimizerMap` (or a callable, then unchecked).
        loss_scale_factor, name: as for `keras.optimizers.MultiOptimizer`.
        layer_groups: optional dict, map key -> the layer names it was built from.
        allow_frozen: skip the check above.

    Example:

    >>> base = keras.optimizers.SGD(0.1)
    >>> opt = ScaledMultiOptimizer(OptimizerMap(base, {"head/.*": keras.optimizers.SGD(1.0)}))
    >>> opt.learning_rate = 0.01
    >>> [round(float(o.learning_rate), 6) for o in opt.optimizers]
    [0.1, 0.01]
    """

    def __init__(
        self,
        optimizer_map,
        loss_scale_factor=None,
        name=None,
        layer_groups=None,
        allow_frozen=False,
    ):
        super().__init__(optimizer_map, loss_scale_factor=loss_scale_factor, name=name)
        self._map = optimizer_map  # the map Keras routes variables with, kept here to read it
        self.allow_frozen = bool(allow_frozen)
        self._layer_groups = tuple(
            (str(key), tuple(names)) for key, names in (layer_groups or {}).items()
        )

    @property
    def default_optimizer(self):
        default = getattr(self._map, "default_optimizer", None)
        return default if default is not None else self.optimizers[0]

    def optimizer_for(self, variable):
        """The sub-optimizer that updates `variable` (as the map routes it)."""
        return self._map(variable)

    @property
    def learning_rate(self):
        return self.default_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if getattr(self, "_map", None) is None:
            return  # not constructed yet: no group to rescale
        new = check_rate(float(np.asarray(keras.ops.convert_to_numpy(value))), "learning_rate")
        old = rate_value(self.default_optimizer)
        if old == 0.0:
            raise ValueError(
                "Cannot rescale a ScaledMultiOptimizer whose default optimizer has learning "
                "rate 0: the factor new/old is undefined. Set the sub-optimizers' rates directly."
            )
        for opt in self.optimizers:  # all checked before any rate changes
            if schedule_of(opt) is not None:
                raise TypeError(
                    f"Sub-optimizer '{opt.name}' follows a LearningRateSchedule, whose rate cannot "
                    "be set by a callback. Use either schedules or rate callbacks, not both."
                )
        for opt in self.optimizers:
            opt.learning_rate = rate_value(opt) * new / old

    def learning_rates(self):
        """The current learning rate of each sub-optimizer, in `optimizers` order."""
        return [rate_value(o) for o in self.optimizers]

    def build(self, var_list):
        if not self.built:
            self._check_map(var_list)
        super().build(var_list)

    def _check_map(self, var_list):
        if self.allow_frozen or not isinstance(self._map, OptimizerMap):
            return
        paths = [v.path for v in var_list]
        owners = {p.split("/")[-2] for p in paths if "/" in p}
        names_of = dict(self._layer_groups)
        problems = []
        for key, opt in self._map.items():
            if key in names_of:
                missing = [n for n in names_of[key] if n not in owners]
            elif not any(p == key or re.fullmatch(key, p) for p in paths):
                missing = [key]
            else:
                missing = []
            if missing:
                problems.append(
                    f"group '{opt.name}': " + ", ".join(_hint(n, owners, paths) for n in missing)
                )
        if problems:
            listed = sorted(owners)
            more = " ..." if len(listed) > 60 else ""
            raise ValueError(
                "The optimizer map names layers that own no trainable variable of this model, so "
                "they would train at the default rate instead of their group's: "
                + "; ".join(problems)
                + ". Names are case-sensitive and given as lists of layer names; a frozen layer "
                "(trainable=False) owns no trainable variable: leave it out of the map, or pass "
                "allow_frozen=True if it is unfrozen later (GradualUnfreezing). Layers "
                f"with trainable variables: {', '.join(listed[:60])}{more}"
            )

    def get_config(self):
        config = super().get_config()
        config["layer_groups"] = {key: list(names) for key, names in self._layer_groups}
        config["allow_frozen"] = self.allow_frozen
        return config


def _hint(name, owners, paths):
    same_case = [o for o in owners if o.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, sorted(owners), n=3)
    if close:
        return f"{name!r} (did you mean {', '.join(repr(c) for c in close)}?)"
    inner = sorted(
        {p.rsplit("/", 1)[0] for p in paths if f"{name}/" in f"/{p}" and p.count("/") > 1}
    )
    if inner:
        return f"{name!r} (its variables belong to sub-layers: name {', '.join(inner[:3])} instead)"
    return repr(name)
