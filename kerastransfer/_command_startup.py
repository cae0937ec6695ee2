"""Keep TensorFlow's native start-up lines off the `kerastransfer` command's terminal.

Importing TensorFlow prints lines from its C++ libraries before any logging is configured
(oneDNN, the CUDA probe, CPU features); `TF_CPP_MIN_LOG_LEVEL` does not reach them. For the
`kerastransfer` command (the console script, `python -m kerastransfer` or
`python -m kerastransfer.cli`) the package imports TensorFlow with the process's standard error
sent to a temporary file, so a mistake prints one line; the captured lines come back if the
import fails. `TF_CPP_MIN_LOG_LEVEL` defaults to 2 there (TensorFlow's errors still show); set it
to 0 to see everything. A program that imports `kerastransfer` as a library is not touched.
"""

import contextlib
import os
import sys
import tempfile

_MODULES = ("kerastransfer", "kerastransfer.cli")


def running_as_command():
    """True in the `kerastransfer` console script and under `python -m kerastransfer[.cli]`."""
    argv = getattr(sys, "orig_argv", None) or getattr(sys, "argv", None) or [""]
    if any(os.path.basename(a) == "kerastransfer" for a in argv[1:2]):
        return True
    return any(a == "-m" and b in _MODULES for a, b in zip(argv, argv[1:]))


@contextlib.contextmanager
def quiet_native_startup():
    """Send file descriptor 2 to a temporary file while the block runs (see the module)."""
    if "tensorflow" in sys.modules:
        yield
        return
    with quiet_native_output():
        yield


@contextlib.contextmanager
def quiet_native_output():
    """As `quiet_native_startup`, for a later block: the first device listing (the CUDA probe)."""
    if not running_as_command() or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
