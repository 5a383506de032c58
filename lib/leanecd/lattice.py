"""Cubic lattices given in a primitive or conventional cell.

The FCC (Fm-3m, F-43m) and BCC compounds of the dataset are stored, as JARVIS
stores them, in their primitive non-orthogonal cell. The conventional cubic cell
is an integer supercell of it: ``A = T @ L`` with ``L`` the primitive lattice
(rows a1, a2, a3), ``A`` the cube (rows of length a, mutually orthogonal) and
``T`` an integer matrix with ``|det T|`` = 1 (SC), 2 (BCC) or 4 (FCC).

The same ``T`` maps Fourier indices: a plane wave ``exp(i G·r)`` with
``G = sum_i k_i b_i`` on the primitive reciprocal lattice has the cubic index
``K = T @ k``, i.e. ``G = (2π/a) K`` in the cube's frame. For the usual FCC
vectors a1 = (0, a/2, a/2), a2 = (a/2, 0, a/2), a3 = (a/2, a/2, 0) this gives
K = (−k1+k2+k3, k1−k2+k3, k1+k2−k3).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .errors import FieldError

__all__ = ["CubicCell", "find_cubic_cell"]


@dataclass(frozen=True)
class CubicCell:
    """The conventional cube of a cubic lattice.

    ``T`` (int, 3x3) gives the cube's edge vectors in primitive coordinates,
    ``conventional = T @ primitive``; ``a`` is the edge in Å; ``kind`` is
    ``"sc"``, ``"bcc"`` or ``"fcc"``; ``rotation`` has the cube's unit edge vectors
    as rows (the identity when the cube is aligned with x, y, z).
    """

    T: np.ndarray
    a: float
    kind: str
    rotation: np.ndarray

    @property
    def multiplicity(self) -> int:
        """Primitive cells per conventional cube (1, 2 or 4)."""
        return int(round(abs(np.linalg.det(self.T))))


def find_cubic_cell(lattice, rtol: float = 1e-5) -> CubicCell:
    """Find the conventional cube of a SC, BCC or FCC lattice (rows of ``lattice`` in Å).

    Searches integer combinations of the lattice vectors (coefficients −2…2) for
    three mutually orthogonal vectors of equal length that span a cube of 1, 2 or 4
    primitive cells, preferring the cube closest to the x, y, z axes. Raises
    :class:`~leanecd.errors.FieldError` if the lattice is not cubic.
    """
    L = np.asarray(lattice, dtype=float)
    vol = abs(np.linalg.det(L))
    if vol <= 0:
        raise FieldError("lattice has zero volume")
    coeffs = np.array([c for c in itertools.product(range(-2, 3), repeat=3) if any(c)])
    vecs = coeffs @ L
    lengths = np.linalg.norm(vecs, axis=1)
    for mult, kind in ((1, "sc"), (2, "bcc"), (4, "fcc")):
        a = (mult * vol) ** (1.0 / 3.0)
        tol = rtol * a
        cand = np.flatnonzero(np.abs(lengths - a) < tol)
        if cand.size < 3:
            continue
        best = None
        for axis in range(3):  # pick, for each Cartesian axis, the candidate most aligned with it
            scores = vecs[cand, axis] / a
            pick = cand[np.argmax(scores)]
            best = [pick] if best is None else best + [pick]
        V = vecs[best]
        if np.allclose(V @ V.T, a * a * np.eye(3), atol=tol * a) and np.linalg.det(V) > 0:
            T = coeffs[best].astype(int)
            return CubicCell(T=T, a=float(a), kind=kind, rotation=V / a)
        # general orientation: any orthogonal right-handed triple
        for i, j in itertools.combinations(cand, 2):
            if abs(vecs[i] @ vecs[j]) > tol * a:
                continue
            third = np.cross(vecs[i], vecs[j]) / a
            k = cand[np.argmin(np.linalg.norm(vecs[cand] - third, axis=1))]
            if np.linalg.norm(vecs[k] - third) < tol:
                T = coeffs[[i, j, k]].astype(int)
                return CubicCell(T=T, a=float(a), kind=kind, rotation=vecs[[i, j, k]] / a)
    raise FieldError(f"lattice is not simple, body-centred or face-centred cubic:\n{L}")
