"""`kerastransfer.methods.dan`, the old name of `kerastransfer.methods.domain_adaptation`."""

import importlib
import sys

import pytest

import kerastransfer.methods
import kerastransfer.methods.domain_adaptation as domain_adaptation


def test_the_old_module_warns_and_gives_the_same_objects():
    sys.modules.pop("kerastransfer.methods.dan", None)
    vars(kerastransfer.methods).pop("dan", None)
    with pytest.warns(DeprecationWarning, match="kerastransfer.methods.domain_adaptation"):
        dan = importlib.import_module("kerastransfer.methods.dan")
    for name in domain_adaptation.__all__:
        assert getattr(dan, name) is getattr(domain_adaptation, name), name
