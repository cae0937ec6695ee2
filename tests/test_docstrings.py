"""The runnable examples in the library's docstrings stay true."""

import doctest
import importlib
import pkgutil

import pytest

import kerastransfer

MODULES = sorted(
    m.name for m in pkgutil.iter_modules(kerastransfer.__path__, "kerastransfer.")
    if m.name not in ("kerastransfer.cli", "kerastransfer.bench", "kerastransfer.multiworker")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
