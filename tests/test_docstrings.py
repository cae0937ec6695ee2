"""The runnable examples in the library's docstrings stay true."""

import doctest
import importlib
import pkgutil

import pytest

import kerastransfer

# Command-line entry points and the multi-worker trainer have no examples worth running here.
SKIP = ("kerastransfer.cli", "kerastransfer.__main__", ".multiworker")

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(kerastransfer.__path__, "kerastransfer.")
    if not m.name.endswith(SKIP)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
