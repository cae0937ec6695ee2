"""`filter_probe`: the probe that counts the d single-filter networks' confusion matrices.

Two exact pass strategies share the base `FilterProbe` (`base_probe.py`); both compute everything
below the split layer once per batch and differ in how they run the d masked networks above it:

- `SeparablePassProbe` (`separable_pass.py`): when the split layer reaches a `Conv2D` through
  per-channel layers only, the next convolution runs once for all d masks.
- `TilePassProbe` (`tile_pass.py`): any graph; the part above the split runs once on the d masked
  copies of the batch, stacked.

`filter_probe(model, layer)` picks the first that applies (`pass_strategy="auto"`).

Exactness. In float32 both strategies count the same confusion matrices as the naive d full
passes (tests: small_cnn, depthwise, separable, grouped and residual-Add graphs, Dense after
Flatten or global pooling, MobileNetV2). Under `mixed_bfloat16` "exact" means: the tile pass
computes the same bfloat16 operations as a full pass and agreed on every prediction; the separable
pass reorders the next convolution's sums (conv(E) + depthwise(P - E)) and rounds differently in
bfloat16. Measured on small_cnn (conv1, d=20, 1000 MNIST images, 20000 predictions): tile 100%
of predictions equal to the naive passes (Gamma identical); separable 99.995% (1 prediction
differed; largest Gamma difference 0.008 for `gamma="paper"`, 0.002 for `"agreement"`). Use
`pass_strategy="tile"` where bit-for-bit agreement with full bfloat16 passes matters.
"""

from kerastransfer.methods.bpa.separable_pass import SeparablePassProbe, separable_plan
from kerastransfer.methods.bpa.split_layers import check_functional, resolve_split_layers
from kerastransfer.methods.bpa.tile_pass import TilePassProbe
from kerastransfer.models.graph import flat_view

PASS_STRATEGIES = ("auto", "separable", "tile")


def filter_probe(model, layer, masks_per_pass=None, pass_strategy="auto"):
    """The probe of split layer `layer` (a `Conv2D`, its name or its path in nested models).

    Args:
        pass_strategy: `"auto"` (separable where the graph allows it, else tile), `"separable"` (a
            ValueError if the graph does not allow it) or `"tile"`.

    Example:

    >>> import keras
    >>> inputs = keras.Input((8, 8, 1))
    >>> x = keras.layers.Conv2D(3, 3, name="conv1")(inputs)
    >>> x = keras.layers.Conv2D(2, 3, name="conv2")(keras.layers.ReLU()(x))
    >>> outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    >>> filter_probe(keras.Model(inputs, outputs), "conv1").pass_strategy
    'separable'
    """
    if pass_strategy not in PASS_STRATEGIES:
        raise ValueError(
            f"`pass_strategy` must be one of {PASS_STRATEGIES}. "
            f"Received: pass_strategy={pass_strategy!r}"
        )
    if isinstance(layer, str):
        (layer,) = resolve_split_layers(model, layer)
    check_functional(model)
    model = flat_view(model)
    plan = separable_plan(model, layer) if pass_strategy != "tile" else None
    if plan is not None:
        return SeparablePassProbe(model, layer, masks_per_pass, plan=plan)
    if pass_strategy == "separable":
        raise ValueError(
            f"Split layer '{layer.name}' is not followed, through per-channel layers only, by "
            "a Conv2D that alone leads to the output: use pass_strategy='tile' or 'auto'."
        )
    return TilePassProbe(model, layer, masks_per_pass)
