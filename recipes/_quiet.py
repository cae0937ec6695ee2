"""A recipe run as a script prints only its own output: TensorFlow's benign native lines are
hidden as for the `kerastransfer` command (see kerastransfer/_command_startup.py).

Imported first by `_common` (which every recipe imports before keras): kerastransfer, and so
TensorFlow, is imported here with `KERASTRANSFER_QUIET_STARTUP=1` when the program is a recipe
script. A program that imports a recipe (a test) is not touched.
"""

import os
import pathlib
import sys

_main = getattr(sys.modules.get("__main__"), "__file__", None)
if _main is not None and pathlib.Path(_main).resolve().parent == pathlib.Path(__file__).parent:
    os.environ["KERASTRANSFER_QUIET_STARTUP"] = "1"
import kerastransfer  # noqa: E402, F401

os.environ.pop("KERASTRANSFER_QUIET_STARTUP", None)
