"""The electron charge density field: :class:`ECDField`, its properties and its checks.

The one type every pipeline step takes and returns: ``rho`` in e/Å³ on a periodic grid,
the cell's ``lattice`` in Å, its ``atoms`` and where it came from. Reading and writing
files is :mod:`leanecd.io` (CHGCAR) and :mod:`leanecd.store` (``.npz`` field files).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field

import numpy as np

from .errors import FieldError

__all__ = ["ECDField"]


@dataclass
class ECDField:
    """An electron charge density on a periodic grid.

    Attributes
    ----------
    rho : float64 array ``[n1, n2, n3]``, e/Å³; axis *i* runs along lattice vector a_i,
        point ``(i, j, k)`` sits at fractional coordinates ``(i/n1, j/n2, k/n3)``.
    lattice : ``(3, 3)`` array in Å, rows are a1, a2, a3.
    atoms : ``ase.Atoms`` in this cell (may be ``None`` for a bare field).
    source : where the field came from (a path, or a description such as
        ``"synthetic: ..."``).
    meta : free-form provenance (DFT settings, compound id, ...).
    """

    rho: np.ndarray
    lattice: np.ndarray
    atoms: object = None
    source: str = ""
    meta: dict = dc_field(default_factory=dict)

    def __post_init__(self):
        self.rho = np.asarray(self.rho, dtype=np.float64)
        self.lattice = np.asarray(self.lattice, dtype=np.float64)
        where = self.source or "ECDField"
        if self.rho.ndim != 3 or min(self.rho.shape) < 1:
            raise FieldError(f"{where}: rho must be a non-empty 3-D array, got shape {self.rho.shape}")
        if self.lattice.shape != (3, 3):
            raise FieldError(f"{where}: lattice must be 3x3, got shape {self.lattice.shape}")
        if not np.all(np.isfinite(self.rho)):
            raise FieldError(f"{where}: rho contains NaN or inf")
        if not np.all(np.isfinite(self.lattice)) or np.linalg.det(self.lattice) <= 0:
            raise FieldError(
                f"{where}: lattice must be finite and right-handed with positive volume, "
                f"got det = {np.linalg.det(self.lattice) if np.all(np.isfinite(self.lattice)) else 'nan'}"
            )

    @property
    def volume(self) -> float:
        """Cell volume in Å³."""
        return float(np.linalg.det(self.lattice))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid points along a1, a2, a3."""
        return tuple(int(n) for n in self.rho.shape)

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel in Å³."""
        return self.volume / self.rho.size

    @property
    def n_electrons(self) -> float:
        """Electrons in the cell: ``rho.mean() * volume``."""
        return float(self.rho.mean() * self.volume)

    @property
    def spacing(self) -> np.ndarray:
        """Grid spacing along each lattice vector, |a_i| / n_i, in Å."""
        return np.linalg.norm(self.lattice, axis=1) / np.array(self.rho.shape)

    def with_rho(self, rho: np.ndarray, **changes) -> ECDField:
        """A copy with a new density (same cell, atoms and provenance unless changed)."""
        kw = dict(lattice=self.lattice, atoms=self.atoms, source=self.source, meta=dict(self.meta))
        kw.update(changes)
        return ECDField(rho=rho, **kw)

    def __repr__(self) -> str:
        formula = self.atoms.get_chemical_formula() if self.atoms is not None else "?"
        return (
            f"ECDField({formula}, grid={self.shape}, volume={self.volume:.3f} Å³, "
            f"n_electrons={self.n_electrons:.4f}, source={self.source!r})"
        )
