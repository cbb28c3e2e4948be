"""``python -m ace_core``: the AceForge command line (see :mod:`ace_core.cli`)."""

import sys

from .cli import main

sys.exit(main())
