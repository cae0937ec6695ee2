"""The layers of a model by path, and the ones a `targets` (or `train`) argument selects.

A path names a layer through the models that hold it: `backbone/block_1_expand` is the layer
`block_1_expand` of the nested model `backbone`. Functional and `Sequential` models are walked
into (as `keras.models.clone_model(recursive=True)` does); any other layer is a leaf.

A `targets` entry is a layer class (its instances), or a string matched (`fnmatch`, case
sensitive) against each leaf's name and path; a string naming a nested model selects its layers.

Example:

>>> inputs = keras.Input((4,))
>>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(inputs))
>>> [path for path, _ in leaf_layers(model)]
['head']
>>> [path for path, _, _ in select_layers(leaf_layers(model), ["he*"], "targets")]
['head']
"""

import fnmatch

import keras

from kerastransfer._internals import functional_graph


def is_container(layer):
    """Whether `clone_model(recursive=True)` rebuilds `layer` layer by layer."""
    return isinstance(layer, keras.Sequential) or (
        isinstance(layer, keras.Model) and functional_graph(layer) is not None
    )


def check_model(model, argument="model"):
    if not isinstance(model, keras.Model) or not is_container(model):
        raise TypeError(
            f"`{argument}` must be a functional or Sequential Keras model (a subclassed model "
            f"cannot be rebuilt layer by layer). Received: {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(f"`{argument}` must be built (call it once, or give it an input shape).")


def leaf_layers(model, prefix="", _seen=None):
    """[(path, layer)] of every layer of `model` that is not a container, in `model.layers` order
    (depth first); input layers left out, a shared layer listed once."""
    seen = set() if _seen is None else _seen
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or id(layer) in seen:
            continue
        seen.add(id(layer))
        path = f"{prefix}{layer.name}"
        if is_container(layer):
            found.extend(leaf_layers(layer, f"{path}/", seen))
        else:
            found.append((path, layer))
    return found


def _matches(path, layer, pattern):
    return (
        fnmatch.fnmatchcase(layer.name, pattern)
        or fnmatch.fnmatchcase(path, pattern)
        or fnmatch.fnmatchcase(path, f"{pattern}/*")
    )


def _names(leaves, limit=12):
    paths = [path for path, _ in leaves]
    more = f", ... ({len(paths)} in all)" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def select_layers(leaves, targets, argument, accept=None):
    """[(path, layer, explicit)] of the `leaves` that `targets` selects, in leaf order.

    `explicit`: the layer was asked for by its class or its exact name or path (kept even when
    `accept(layer)` is false: the caller says why it cannot take it); a wildcard pattern or a
    nested model's name selects only its layers that `accept` takes. Raises when an entry
    selects nothing.
    """
    if isinstance(targets, (str, type)):
        targets = [targets]
    chosen = {}
    for target in targets:
        if isinstance(target, type) and issubclass(target, keras.layers.Layer):
            hits = [(p, layer, True) for p, layer in leaves if isinstance(layer, target)]
        elif isinstance(target, str) and target:
            hits = [
                (p, layer, target in (p, layer.name))
                for p, layer in leaves
                if _matches(p, layer, target)
            ]
        else:
            raise TypeError(
                f"`{argument}` entries must be layer names, name or path patterns, or layer "
                f"classes. Received: {target!r}"
            )
        label = repr(getattr(target, "__name__", target))
        if not hits:
            raise ValueError(
                f"`{argument}` entry {label} matches no layer. The layers: {_names(leaves)}"
            )
        kept = [hit for hit in hits if hit[2] or accept is None or accept(hit[1])]
        if not kept:
            raise ValueError(
                f"`{argument}` entry {label} matches no supported layer, only "
                f"{_names([(p, layer) for p, layer, _ in hits], limit=6)}"
            )
        for path, layer, explicit in kept:
            old = chosen.get(id(layer))
            chosen[id(layer)] = (path, layer, explicit or (old is not None and old[2]))
    return [chosen[id(layer)] for _, layer in leaves if id(layer) in chosen]
