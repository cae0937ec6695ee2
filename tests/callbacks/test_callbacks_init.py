"""`kerastransfer.callbacks` holds the callbacks that work with any method."""

import inspect

import pytest

import kerastransfer
import kerastransfer.callbacks as callbacks
import kerastransfer.methods.bpa as bpa


def test_every_callback_here_is_defined_here():
    assert "GammaRefresh" not in callbacks.__all__
    for name in callbacks.__all__:
        module = inspect.getmodule(getattr(callbacks, name)).__name__
        assert module.startswith("kerastransfer.callbacks."), (name, module)


def test_gamma_refresh_from_callbacks_still_works_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="import it from `kerastransfer.methods.bpa`"):
        from kerastransfer.callbacks import GammaRefresh
    assert GammaRefresh is bpa.GammaRefresh is kerastransfer.GammaRefresh
    with pytest.warns(DeprecationWarning):
        assert callbacks.GammaRefresh is bpa.GammaRefresh


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        callbacks.Nothing  # noqa: B018
