"""The library's messages: the ``leanecd`` logger.

What a reader must see while a step runs (a quick-mode shortcut, the CPU path a run
chose, runs left out of a table) is logged at INFO to ``logging.getLogger("leanecd")``
and, by default, written to standard output as plain lines, so a notebook shows it
below the cell. Warnings stay Python warnings; progress bars stay tqdm.

To silence the messages: ``logging.getLogger("leanecd").setLevel(logging.WARNING)``.
To send them elsewhere: replace the logger's handler (it does not propagate to the
root logger, so an application's own logging setup does not print them twice).
"""

from __future__ import annotations

import logging
import sys

__all__ = ["logger"]


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (a notebook's or pytest's capture)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ and setStream assign it; stdout is looked up
        pass


#: The package's logger; modules log through it with ``logger.info(...)``.
logger = logging.getLogger("leanecd")
if not logger.handlers:
    _handler = _StdoutHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
