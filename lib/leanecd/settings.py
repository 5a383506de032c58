"""The one place for the book's settings: grid, seeds and run mode.

The run mode comes from the environment variable ``LEANECD_MODE``:

* ``full``  - the paper's protocol (650 epochs, 9 folds, whole dataset);
* ``quick`` - a demonstration that runs in minutes on a CPU (CI, laptops).

Unset, the mode is ``full`` when CUDA is available and ``quick`` otherwise.
Every shortcut quick mode takes is printed by the code that takes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Autocorrelation grid spacing of the paper, in Å.
SPACING_A = 0.2
#: Points per axis of the standardised autocorrelation grid (r from -5 Å to +5 Å).
GRID_SIZE = 51
#: Seed used for splits, folds and weight initialisation unless told otherwise.
SEED = 0


def _cuda_available() -> bool:
    try:
        import torch  # here: the settings (and the notebooks' first cells) import without torch
    except ImportError:  # the data chapters work without torch
        return False
    return bool(torch.cuda.is_available())


def results_dir() -> Path:
    """Where training runs are written and read: ``$LEANECD_RESULTS``, else ``<repo>/results``.

    The one setting for chapter 6 (writes), chapter 7 (reads) and
    ``scripts/full-runs.sh``; on Colab point it at a Drive folder so runs survive a
    disconnect. Without the variable and outside a checkout of the book it is
    ``./results``.
    """
    env = os.environ.get("LEANECD_RESULTS", "").strip()
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "results").is_dir() and (repo / "lib" / "leanecd").is_dir():
        return repo / "results"
    return Path("results").resolve()


def run_mode() -> str:
    """Return ``"full"`` or ``"quick"`` (see the module docstring)."""
    mode = os.environ.get("LEANECD_MODE", "").strip().lower()
    if mode == "":
        return "full" if _cuda_available() else "quick"
    if mode not in ("full", "quick"):
        raise ValueError(f"LEANECD_MODE must be 'full' or 'quick', not {mode!r}")
    return mode


@dataclass(frozen=True)
class Settings:
    """Grid and seed settings shared by every chapter."""

    spacing: float = SPACING_A
    size: int = GRID_SIZE
    seed: int = SEED

    @property
    def half_width(self) -> float:
        """Largest |r| component on the grid, in Å (5.0 for the paper's grid)."""
        return self.spacing * (self.size - 1) / 2


SETTINGS = Settings()
