"""Checks shared by the optimizer maps: layer-name lists and learning rates."""

import math
import numbers


def check_names(names, what):
    """`names` as a list of layer-name strings; a bare string is an error, not a list of letters."""
    if isinstance(names, (str, bytes)):
        raise ValueError(
            f"`{what}` must be a list of layer names, not a string (a string would be read as "
            f"one name per character). Wrap it: [{names!r}]. Received: {names!r}"
        )
    try:
        names = list(names)
    except TypeError:
        raise ValueError(f"`{what}` must be a list of layer names. Received: {names!r}") from None
    if not names:
        raise ValueError(f"`{what}` is empty: name at least one layer.")
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise ValueError(f"`{what}` must hold layer names (non-empty strings). Received: {bad!r}")
    return names


def check_rate(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"`{what}` must be a finite number. Received: {value!r}")
    if value < 0:
        raise ValueError(
            f"`{what}` must be >= 0: a negative learning rate climbs the loss. Received: {value!r}"
        )
    return float(value)
