"""Devices and precision of `fine_tune`: the `tf.distribute` strategy and the Keras dtype policy.

`resolve_distribution` turns `fine_tune`'s `distribution` into a strategy:

- `None` or `"auto"`: the strategy whose scope the caller is in, if any; else a
  `tf.distribute.MirroredStrategy` over the visible GPUs when there are two or more; else the
  default strategy (one device).
- an integer N: the first N visible GPUs (a `MirroredStrategy` from two on; N=1 is the default
  strategy, on a machine without GPUs the CPU). More than there are is a `ValueError`.
- a `tf.distribute.Strategy`: used as given.

A process keeps one `MirroredStrategy` per set of devices (`resolve_distribution` returns the same
object each time): a second strategy over the same devices breaks collective operations.
Under a strategy the dataset's batches are global batches, split across the replicas.

`precision_scope` sets the Keras global dtype policy for a block and restores the previous one
afterwards: `"float32"`, `"mixed_float16"` (float16 compute, float32 variables; `compile` wraps
the optimizer in a `keras.optimizers.LossScaleOptimizer`) or `"mixed_bfloat16"` (no loss
scaling needed); `None` keeps the current policy.

Example:

>>> strategy = resolve_distribution(None)
>>> strategy.num_replicas_in_sync >= 1
True
>>> with precision_scope("mixed_bfloat16"):
...     keras.config.dtype_policy().name
'mixed_bfloat16'
>>> keras.config.dtype_policy().name
'float32'
"""

import contextlib
import numbers

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

_MIRRORED = {}  # tuple of device names -> the process's MirroredStrategy over them


def visible_gpus():
    """Names of the logical GPU devices TensorFlow sees (`/device:GPU:0`, ...)."""
    return [device.name for device in tf.config.list_logical_devices("GPU")]


def check_device_count(count):
    """The GPU names for `count` devices; a `ValueError` (one line) when there are fewer.

    On a machine without GPUs one device (the CPU) is available.
    """
    gpus = visible_gpus()
    if count > max(len(gpus), 1):
        where = f"{len(gpus)} GPUs are visible" if gpus else "no GPU is visible (1 device: the CPU)"
        raise ValueError(f"{count} devices asked for, but {where}")
    return gpus[:count]


def mirrored_strategy(devices):
    """The process's `tf.distribute.MirroredStrategy` over `devices` (created once)."""
    key = tuple(devices)
    if key not in _MIRRORED:
        _MIRRORED[key] = tf.distribute.MirroredStrategy(list(key))
    return _MIRRORED[key]


def resolve_distribution(distribution=None):
    """The `tf.distribute.Strategy` for `distribution` (see the module docstring).

    Args:
        distribution: `None`/`"auto"`, a number of GPUs, or a `tf.distribute.Strategy`.

    Returns:
        A `tf.distribute.Strategy` (the default one for a single device).
    """
    if isinstance(distribution, tf.distribute.Strategy):
        return distribution
    if distribution is None or (isinstance(distribution, str) and distribution == "auto"):
        if tf.distribute.has_strategy():
            return tf.distribute.get_strategy()
        gpus = visible_gpus()
        return mirrored_strategy(gpus) if len(gpus) >= 2 else tf.distribute.get_strategy()
    if isinstance(distribution, numbers.Integral) and not isinstance(distribution, bool):
        if distribution >= 1:
            try:
                gpus = check_device_count(int(distribution))
            except ValueError as e:
                raise ValueError(
                    "`distribution` must be at most the number of visible devices: "
                    f"{e}. Received: {distribution}"
                ) from None
            return mirrored_strategy(gpus) if distribution >= 2 else tf.distribute.get_strategy()
    raise ValueError(
        "`distribution` must be None, 'auto', a positive number of GPUs or a "
        f"tf.distribute.Strategy. Received: {distribution!r}"
    )


def resolve_precision(precision=None):
    """The dtype policy name for `precision` (`None`: the current global policy's)."""
    if precision is None:
        return keras.config.dtype_policy().name
    if not (isinstance(precision, str) and precision in PRECISIONS):
        raise ValueError(
            f"`precision` must be None or one of {', '.join(PRECISIONS)}. Received: {precision!r}"
        )
    return precision


def clone_with_policy(model, policy):
    """`keras.models.clone_model(model)` (nested models too) with every float layer (policy
    float32, mixed_float16 or mixed_bfloat16) at dtype policy `policy`; weights not copied."""

    def clone_layer(layer):
        config = layer.get_config()
        if getattr(layer.dtype_policy, "name", None) in PRECISIONS:
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone_layer, recursive=True)


def float32_copy(model):
    """`model` if every layer computes in float32, else a float32 copy with its weights: what a
    serving export (SavedModel, ONNX, LiteRT) of a mixed-precision model takes."""
    from kerastransfer.surgery import iter_layers

    if all(layer.dtype_policy.name == "float32" for layer in iter_layers(model)):
        return model
    with precision_scope("float32"):
        copy = clone_with_policy(model, "float32")
    copy.set_weights(model.get_weights())
    return copy


@contextlib.contextmanager
def precision_scope(precision=None):
    """Sets the Keras global dtype policy to `precision` inside the block, then restores it."""
    name = resolve_precision(precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)
