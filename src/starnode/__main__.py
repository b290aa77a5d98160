"""``python -m starnode``: the command line (same as the ``starnode`` console script)."""

import sys

from .cli import main

sys.exit(main())
