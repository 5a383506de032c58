"""Errors raised by :mod:`leanecd`.

Every error that concerns a file names the file and what is wrong with it, so a
reader who hits one knows where to look without a traceback.
"""

from __future__ import annotations

import os


class LeanECDError(Exception):
    """Base class of all errors raised on purpose by ``leanecd``."""


class FileFormatError(LeanECDError, ValueError):
    """A data file (CHGCAR, field store, label table) is malformed.

    ``FileFormatError(path, problem)`` renders as ``"<path>: <problem>"``.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        where = self.path if self.path is not None else "<in-memory data>"
        super().__init__(f"{where}: {problem}")


class FieldError(LeanECDError, ValueError):
    """An in-memory ECD field is unusable for the requested step (e.g. negative
    densities passed to the autocorrelation, a non-cubic lattice where a cubic one
    is required)."""


class DFTError(LeanECDError, RuntimeError):
    """A DFT calculation failed one of the dataset's quality gates.

    ``details``: what the gate saw (e.g. the E(V) points of a failed fit), kept in the
    failure record so that the failure can be studied without recomputing it."""

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.details = details or {}


class DownloadError(LeanECDError, RuntimeError):
    """A download failed, or the downloaded file is truncated or corrupt.

    Nothing bad is ever kept under the file's final name (see :mod:`leanecd.download`).
    """


class NetworkUnavailableError(DownloadError):
    """A download is needed but the network (or the host) cannot be reached."""
