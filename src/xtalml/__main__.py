"""`python -m xtalml predict ...`, the same as the `xtalml` command."""

import sys

from xtalml.cli import main

sys.exit(main())
