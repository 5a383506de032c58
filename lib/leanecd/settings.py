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

#: Autocorrelation grid spacing of the paper, in Å.
SPACING_A = 0.2
#: Points per axis of the standardised autocorrelation grid (r from -5 Å to +5 Å).
GRID_SIZE = 51
#: Seed used for splits, folds and weight initialisation unless told otherwise.
SEED = 0


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # the data chapters work without torch
        return False
    return bool(torch.cuda.is_available())


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
