"""``python -m leanecd.dft``: the ``leanecd-dft`` command (a batch runs each compound this way)."""

import sys

from .cli import main

sys.exit(main())
