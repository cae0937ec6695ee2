"""`python -m kerastransfer` runs the `kerastransfer` command."""

import sys

from kerastransfer.cli import main

sys.exit(main())
