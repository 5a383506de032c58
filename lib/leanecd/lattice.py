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

__all__ = ["CubicCell", "find_cubic_cell", "symmetrize_cubic"]


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
    :class:`~leanecd.errors.FieldError` if the lattice is not cubic within ``rtol``;
    the message says how far the nearest cubic lattice is (see :func:`symmetrize_cubic`).
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
    raise FieldError(f"lattice is not simple, body-centred or face-centred cubic within rtol={rtol:g}: "
                     f"{_distance_text(L)}\n{L}")


# --------------------------------------------------------------------------- nearly cubic cells


@dataclass(frozen=True)
class _Nearest:
    """The cubic lattice nearest to a given one, with the same volume and orientation."""

    kind: str
    a: float  # cube edge, Å
    lattice: np.ndarray  # the ideal primitive lattice (rows), Å; T @ lattice = a * rotation
    length_dev: float  # max |len_i / len'_i - 1| over the given cell's 3 vectors
    angle_dev: float  # max |angle / angle' - 1| over its 3 angles
    angle_dev_deg: float  # max |angle - angle'|, degrees

    @property
    def deviation(self) -> float:
        return max(self.length_dev, self.angle_dev)


def _lengths_angles(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.linalg.norm(L, axis=1)
    angles = []
    for i, j in ((1, 2), (0, 2), (0, 1)):  # alpha, beta, gamma
        c = L[i] @ L[j] / (lengths[i] * lengths[j])
        angles.append(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))
    return lengths, np.array(angles)


def _nearest_cubic(lattice) -> _Nearest | None:
    """The SC, BCC or FCC lattice of the same volume nearest to ``lattice`` (None if none is within 10 %)."""
    L = np.asarray(lattice, dtype=float)
    vol = np.linalg.det(L)
    if not np.isfinite(vol) or vol <= 0:
        return None
    coeffs = np.array([c for c in itertools.product(range(-2, 3), repeat=3) if any(c)])
    vecs = coeffs @ L
    lengths = np.linalg.norm(vecs, axis=1)
    best = None
    for mult, kind in ((1, "sc"), (2, "bcc"), (4, "fcc")):
        a = (mult * vol) ** (1.0 / 3.0)
        rel = np.abs(lengths / a - 1.0)
        cand = np.flatnonzero(rel < 0.1)
        cand = cand[np.argsort(rel[cand], kind="stable")][:40]
        if cand.size < 3:
            continue
        trip = np.array(list(itertools.combinations(cand, 3)))
        dets = np.rint(np.linalg.det(coeffs[trip].astype(float))).astype(int)
        trip = trip[np.abs(dets) == mult]
        if trip.size == 0:
            continue
        V = vecs[trip] / a  # (m, 3, 3)
        metric_dev = np.abs(V @ V.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
        k = int(np.argmin(metric_dev))
        if best is None or metric_dev[k] < best[0]:
            best = (metric_dev[k], kind, a, coeffs[trip[k]].astype(float), vecs[trip[k]])
    if best is None:
        return None
    _, kind, a, C, V = best
    if np.linalg.det(C) < 0:
        C, V = -C, -V
    U, _, Wt = np.linalg.svd(V / a)
    ideal = np.linalg.solve(C, a * (U @ Wt))  # C @ ideal = a R, R the rotation nearest to V / a
    l0, g0 = _lengths_angles(L)
    l1, g1 = _lengths_angles(ideal)
    return _Nearest(
        kind=kind,
        a=float(a),
        lattice=ideal,
        length_dev=float(np.max(np.abs(l0 / l1 - 1.0))),
        angle_dev=float(np.max(np.abs(g0 / g1 - 1.0))),
        angle_dev_deg=float(np.max(np.abs(g0 - g1))),
    )


def _distance_text(L: np.ndarray, hint: bool = True) -> str:
    """How far ``L`` is from cubic, and (``hint``) how to proceed if it is close."""
    if not np.linalg.det(L) > 0:
        return "the lattice is left-handed or degenerate"
    near = _nearest_cubic(L)
    if near is None:
        return "no SC, BCC or FCC lattice of the same volume is within 10 % of it"
    text = (
        f"the nearest cubic lattice ({near.kind.upper()}, a = {near.a:.6g} Å, same volume) differs by up to "
        f"{near.length_dev:.1e} (relative) in the cell's lengths and {near.angle_dev:.1e} "
        f"({near.angle_dev_deg:.2g}°) in its angles"
    )
    if hint and near.deviation <= 1e-2:
        text += (
            ". If that is rounding in a relaxed cubic cell, symmetrise it explicitly first: "
            "leanecd.lattice.symmetrize_cubic(field, tol=...) (default tol 1e-3, recorded in "
            "field.meta['symmetrize_cubic'])"
        )
    return text


def symmetrize_cubic(field, tol: float = 1e-3):
    """Replace a nearly cubic lattice by the exact SC/BCC/FCC one of the same volume.

    For cells that are cubic up to rounding or relaxation noise (VASP writes e.g.
    109.43°, 109.43°, 109.55° for BCC's 109.47°). The ideal lattice keeps the volume
    (so ``rho`` in e/Å³ and the electron count are unchanged), the fractional grid
    and atom positions, and the orientation (nearest rotation). ``tol``: the largest
    accepted relative deviation of the cell's lengths and angles from the ideal ones.
    Returns a new field whose ``meta["symmetrize_cubic"]`` records the kind, ``a`` (Å),
    the deviations and the original lattice (Å). Raises
    :class:`~leanecd.errors.FieldError` beyond ``tol`` or when no cubic lattice is near.
    """
    where = getattr(field, "source", "") or "ECDField"
    if not tol >= 0:
        raise ValueError(f"tol must be a non-negative relative deviation, got {tol!r}")
    L = np.asarray(field.lattice, dtype=float)
    near = _nearest_cubic(L)
    if near is None or near.deviation > tol:
        raise FieldError(
            f"{where}: refusing to symmetrise beyond tol={tol:g}: {_distance_text(L, hint=False)}"
        )
    atoms = field.atoms
    if atoms is not None:
        atoms = atoms.copy()
        atoms.set_cell(near.lattice, scale_atoms=True)
    record = {
        "kind": near.kind,
        "a": near.a,
        "tol": float(tol),
        "max_length_deviation": near.length_dev,
        "max_angle_deviation": near.angle_dev,
        "max_angle_deviation_deg": near.angle_dev_deg,
        "max_lattice_change_A": float(np.abs(near.lattice - L).max()),
        "lattice_before": L.tolist(),
    }
    return field.with_rho(field.rho, lattice=near.lattice, atoms=atoms, meta=dict(field.meta, symmetrize_cubic=record))
