"""The parameter-efficient methods of `fine_tune`: "lora", "dora" and "bitfit" on a transfer model.

`adapt_transfer_model` takes the network `build_transfer_model` made (the imported backbone and
the new head) and applies the method of `kerastransfer.methods.peft` to the backbone, the new
head's layers kept fully trainable (`train`):

- "lora" / "dora": an `AdaptedLayer` around every Dense, Conv2D, DepthwiseConv2D and
  SeparableConv2D of the backbone (or the `lora_targets`), at rank `rank`; a layer whose kernel
  takes less (a 3x3 depthwise kernel: 9, a first convolution of a gray input: 9 for a 3x3
  kernel) gets its largest rank (`max_rank`), and every layer keeps the scale
  lora_alpha / rank. `lora_dropout` acts on the adapter path's input. With
  `train_normalization` the normalization layers train too, fully.
- "bitfit": the biases of the backbone (with `train_normalization`, the normalization layers'
  gamma and beta too).

Every other weight of the backbone is frozen. The result is a new model (the weights copied),
with its own `body` and `head` sharing its layers, for the warm-up. A method that would leave
nothing of the backbone to train is an error before any training (a backbone without bias
vectors, such as MobileNetV2's convolutions followed by BatchNormalization, under "bitfit").

`serving_model` is what an export serves: the adapted model merged into a plain model of the base
architecture (`merge_adapters`) for "lora" and "dora", the model itself otherwise.

Example:

>>> from kerastransfer.fine_tuning import FineTuneConfig, build_transfer_model
>>> from kerastransfer.models import small_cnn
>>> from kerastransfer.surgery import get_layer
>>> source = small_cnn(filters=(4, 6), dense=16)
>>> model, body, head, _ = build_transfer_model(source, (28, 28, 1), 3)
>>> config = FineTuneConfig(method="lora", rank=2)
>>> adapted, body, head = adapt_transfer_model(model, body, head, config)
>>> describe_adaptation(adapted, head, config)
'lora on 3 layers, rank 2, scale 1'
>>> [type(get_layer(m, "conv1")).__name__ for m in (adapted, serving_model(adapted))]
['AdaptedLayer', 'Conv2D']
"""

import collections

import keras

from kerastransfer.fine_tuning.fine_tune_config import LORA_METHODS, PEFT_METHODS
from kerastransfer.methods.peft import (
    AdaptedLayer,
    apply_bitfit,
    apply_dora,
    apply_lora,
    max_rank,
    merge_adapters,
)
from kerastransfer.methods.peft.adapted_layer import SUPPORTED_TYPES, check_layer, layer_kind
from kerastransfer.methods.peft.bitfit import tuned_variables
from kerastransfer.methods.peft.selection import leaf_layers, select_layers
from kerastransfer.surgery import NORMALIZATION_LAYERS, iter_layers


def backbone_and_head(model, head):
    """`([(path, layer)] of the backbone's leaf layers, [paths of the head's weighted layers])`."""
    in_head = {id(layer) for layer in iter_layers(head)}
    leaves = leaf_layers(model)
    backbone = [(path, layer) for path, layer in leaves if id(layer) not in in_head]
    new = [path for path, layer in leaves if id(layer) in in_head and layer.weights]
    return backbone, new


def adapt_transfer_model(model, body, head, config):
    """The transfer model with `config.method` applied to its backbone (see the module).

    Args:
        model, body, head: what `build_transfer_model` returns (`body` is not used: the new
            body is cut from the adapted model).
        config: a `FineTuneConfig`; a method that is not parameter-efficient returns the three
            as they are.

    Returns:
        `(model, body, head)`: the adapted model, and its body (images to pooled features) and
        head (features to probabilities) sharing its layers.

    Raises:
        ValueError: no layer of the backbone to adapt (or no bias vector for "bitfit"); a
            `lora_targets` entry that matches no backbone layer, or a layer of the head.
        TypeError: a `lora_targets` entry naming a layer of a type that cannot be adapted.
    """
    if config.method not in PEFT_METHODS:
        return model, body, head
    backbone, train = backbone_and_head(model, head)
    if config.method == "bitfit":
        normalization = config.train_normalization
        if not any(tuned_variables(layer, normalization) for _, layer in backbone):
            what = "bias vector" + (" nor normalization gamma/beta" if normalization else "")
            hint = "" if normalization else "; `train_normalization=True` adds their gamma and beta"
            raise ValueError(
                f"Method 'bitfit' would train nothing of the backbone: it has no {what} "
                f"(only the new head would train){hint}. Received: a backbone of "
                f"{len(backbone)} layers without bias"
            )
        adapted = apply_bitfit(model, normalization=normalization, train=train)
    else:
        if config.train_normalization:
            train += [p for p, layer in backbone if isinstance(layer, NORMALIZATION_LAYERS)]
        adapted = _adapt(model, backbone, train, config)
    return (adapted, *_body_and_head(adapted, head))


def _adapt(model, backbone, train, config):
    """LoRA or DoRA on the chosen backbone layers, each at min(rank, its largest rank): one
    `apply_*` call per rank, the seeds of A following on from call to call."""
    rank = config.effective_rank
    if config.lora_targets is None:
        chosen = [(path, layer) for path, layer in backbone if layer_kind(layer)]
        if not chosen:
            names = ", ".join(cls.__name__ for cls in SUPPORTED_TYPES)
            raise ValueError(
                f"Method '{config.method}' found no layer to adapt in the backbone (the "
                f"supported types are {names}). Received: a backbone of "
                f"{', '.join(type(layer).__name__ for _, layer in backbone[:8])}"
            )
    else:
        selected = select_layers(backbone, config.lora_targets, "lora_targets", layer_kind)
        chosen = [(path, layer) for path, layer, _ in selected]
    for path, layer in chosen:
        check_layer(layer, path)
    by_rank = collections.defaultdict(list)
    for path, layer in chosen:
        by_rank[min(rank, max_rank(layer))].append(path)
    apply = apply_lora if config.method == "lora" else apply_dora
    done = 0
    for r in sorted(by_rank, reverse=True):
        alpha = None if config.lora_alpha is None else config.lora_alpha * r / rank
        model = apply(
            model,
            targets=by_rank[r],
            rank=r,
            alpha=alpha,
            dropout=config.lora_dropout,
            seed=config.seed + 2 * done,
            train=train,
        )
        done += len(by_rank[r])
    return model


def _body_and_head(model, head):
    first = next(ly for ly in head.layers if not isinstance(ly, keras.layers.InputLayer))
    features = model.get_layer(first.name).input  # the body's output in `model`'s graph
    body = keras.Model(model.input, features, name="body")
    return body, keras.Model(features, model.output, name="head")


def check_adapted(model, head, config):
    """Raises when `model` is not what `adapt_transfer_model` makes for `config.method` (so
    that `train_transfer_model` never trains a whole network as if it were adapted)."""
    method = config.method
    if method in LORA_METHODS and not any(
        isinstance(ly, AdaptedLayer) for ly in iter_layers(model)
    ):
        raise ValueError(
            f"Method '{method}' trains adapters and the model has none: pass it through "
            "`fine_tuning.adapt_transfer_model` first (`fine_tune` does)."
        )
    if method == "bitfit":
        backbone, _ = backbone_and_head(model, head)
        kernels = [
            v.path
            for _, layer in backbone
            for v in layer.trainable_weights
            if v.name not in ("bias", "gamma", "beta")
        ]
        if kernels:
            raise ValueError(
                "Method 'bitfit' trains biases only, and the model's backbone has trainable "
                f"kernels ({', '.join(kernels[:3])}, ...): pass it through "
                "`fine_tuning.adapt_transfer_model` first (`fine_tune` does)."
            )


def check_backbone_trains(model, head, config):
    """Raises when a parameter-efficient method has nothing of the backbone left to train (the
    bottom `frozen_levels` levels froze every adapter or bias)."""
    if config.method not in PEFT_METHODS:
        return
    backbone, _ = backbone_and_head(model, head)
    if not any(layer.trainable_weights for _, layer in backbone):
        raise ValueError(
            f"Method '{config.method}' would train nothing of the backbone: `frozen_levels` "
            "freezes every level that holds its adapters or biases; lower it (or choose "
            f"`lora_targets`). Received: frozen_levels={config.frozen_levels}"
        )


def describe_adaptation(model, head, config):
    """What a parameter-efficient method trains in the backbone, in one line ("lora on 52
    layers, rank 8 (43), 4 (9), scale 1", "bitfit on 17 bias vectors"); None for another method."""
    if config.method not in PEFT_METHODS:
        return None
    backbone, _ = backbone_and_head(model, head)
    if config.method == "bitfit":
        weights = [v for _, layer in backbone for v in layer.trainable_weights]
        biases = sum(v.name == "bias" for v in weights)
        norms = sum(v.name == "gamma" for v in weights)
        return f"bitfit on {biases} bias vectors" + (
            f", gamma and beta of {norms} normalization layers" if norms else ""
        )
    adapted = [layer for _, layer in backbone if isinstance(layer, AdaptedLayer)]
    ranks = collections.Counter(layer.rank for layer in adapted)
    if len(ranks) == 1:
        rank_text = f"rank {adapted[0].rank}"
    else:
        rank_text = "rank " + ", ".join(f"{r} ({n})" for r, n in sorted(ranks.items())[::-1])
    scale = adapted[0].scale if adapted else 1.0
    layers = f"{len(adapted)} layer" + ("" if len(adapted) == 1 else "s")
    return f"{config.method} on {layers}, {rank_text}, scale {scale:g}"


def serving_model(model):
    """`merge_adapters(model)` when `model` holds adapted layers, else `model`."""
    if any(isinstance(layer, AdaptedLayer) for _, layer in leaf_layers(model)):
        return merge_adapters(model)
    return model
