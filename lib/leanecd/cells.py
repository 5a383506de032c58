"""Primitive to conventional cell transformation (paper §2.2.1).

FCC and BCC compounds are stored in their primitive, non-orthogonal cell. The
CNN pipeline wants the density on a uniform orthogonal grid of the conventional
cube, ``A = T @ L`` (see :mod:`leanecd.lattice`). :func:`to_conventional` does the
resampling in one of two ways:

``method="spectral"`` (default, exact)
    The primitive grid values define a periodic trigonometric polynomial (their
    discrete Fourier series). A plane wave with primitive index ``k`` has the cubic
    index ``K = T @ k``, so the cube's spectrum is the primitive one scattered to
    ``K``; one inverse FFT evaluates the series at every cube grid point. The
    result is the exact trigonometric interpolant: no smoothing, the electron count
    and the band-limited function itself are kept to rounding error.

``method="sitk"`` (the paper's way)
    Trilinear interpolation with SimpleITK: the primitive grid is an image whose
    direction matrix holds the unit lattice vectors, tiled periodically
    (``np.pad(mode="wrap")``) so that the cube lies inside it, and resampled with
    ``sitkLinear`` onto the cube's grid. Second-order accurate in the grid
    spacing; it smooths peaks and changes the electron count slightly.

Both return an :class:`~leanecd.field.ECDField` whose lattice is ``a * I`` in the
cube's own frame (Cartesian axes along the cube edges ``A[j] / a``; the rotation
from the original frame is ``meta["to_conventional"]["rotation"]``) and whose
atoms are the primitive atoms replicated by ``T`` and wrapped into the cube.

The module also holds the synthetic test field of the book and the tests: a sum of
periodic Gaussians at the atom sites (:func:`synthetic_field`), whose exact
values anywhere are given by :func:`synthetic_density`.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.build import make_supercell

from .errors import FieldError
from .field import ECDField
from .lattice import CubicCell, find_cubic_cell

__all__ = [
    "to_conventional",
    "conventional_grid_size",
    "evaluate_fourier",
    "synthetic_field",
    "synthetic_density",
    "periodic_gaussians",
]

METHODS = ("spectral", "sitk")

SPACING_RULE = (
    "n = ceil(a / h_min) with h_min = min_i |a_i|/n_i the finest primitive spacing (Å), "
    "so the cube's spacing a/n is never coarser than the primitive grid's; spectral "
    "additionally n >= 2*max|K|+1 so every primitive plane wave K = T k fits on the cube "
    "grid without aliasing; n then rounded up to the next even 2,3,5-smooth integer"
)


# --------------------------------------------------------------------------- grid sizes


def _next_even_smooth(n: int) -> int:
    """Smallest even integer >= n whose prime factors are all 2, 3 or 5."""
    m = max(2, int(n))
    while True:
        if m % 2 == 0:
            r = m
            for p in (2, 3, 5):
                while r % p == 0:
                    r //= p
            if r == 1:
                return m
        m += 1


def _max_cubic_index(T: np.ndarray, shape) -> int:
    """Largest |K_a| over the cube's axes for K = T @ k, |k_i| <= n_i // 2."""
    kmax = np.array(shape) // 2
    return int((np.abs(T) @ kmax).max())


def conventional_grid_size(field: ECDField, method: str = "spectral", spacing: float | None = None) -> int:
    """Points per cube edge that :func:`to_conventional` uses for ``field``.

    With ``spacing`` (Å) given: ``ceil(a / spacing)``, nothing else. Otherwise the
    rule of the module (``SPACING_RULE``): not coarser than the finest primitive
    spacing, alias-free for ``"spectral"``, rounded up to an even 2,3,5-smooth size.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    cell = _cubic_cell(field)
    if spacing is not None:
        if not spacing > 0:
            raise ValueError(f"spacing must be a positive length in Å, got {spacing!r}")
        return int(math.ceil(cell.a / spacing - 1e-9))
    n = int(math.ceil(cell.a / float(field.spacing.min()) - 1e-9))
    if method == "spectral":
        n = max(n, 2 * _max_cubic_index(cell.T, field.shape) + 1)
    return _next_even_smooth(n)


# --------------------------------------------------------------------------- transform


def _cubic_cell(field: ECDField) -> CubicCell:
    try:
        return find_cubic_cell(field.lattice)
    except FieldError as exc:
        raise FieldError(
            f"{field.source or 'ECDField'}: cannot build a conventional cube: {exc}"
        ) from None


def _conventional_atoms(atoms, cell: CubicCell):
    """Primitive atoms replicated by T, wrapped into the cube, in the cube's frame."""
    if atoms is None:
        return None

    sc = make_supercell(atoms, cell.T, wrap=True)
    sc.set_cell(cell.a * np.eye(3), scale_atoms=True)  # keeps cube-fractional coordinates
    sc.pbc = True
    sc.wrap()
    expected = cell.multiplicity * len(atoms)
    if len(sc) != expected:
        raise FieldError(f"conventional cell has {len(sc)} atoms, expected {expected} ({cell.kind})")
    return sc


def to_conventional(field: ECDField, method: str = "spectral", spacing: float | None = None) -> ECDField:
    """Resample ``field`` (e/Å³ on a SC, BCC or FCC cell) onto its conventional cube.

    Parameters
    ----------
    field : the density on the primitive (or already cubic) cell.
    method : ``"spectral"`` (exact trigonometric interpolation) or ``"sitk"``
        (SimpleITK trilinear, as in the paper).
    spacing : cube grid spacing in Å; default: the rule in ``SPACING_RULE``
        (see :func:`conventional_grid_size`). With a given spacing the spectral
        values at the grid points are still exact, but the electron count is exact
        only while n > max|K| and the cube's own Fourier series equals the
        primitive one only while n >= 2 max|K| + 1 (recorded in ``meta``).

    Returns an :class:`ECDField` with ``rho`` of shape ``(n, n, n)``, lattice
    ``a * I`` (Å) in the cube's frame and the conventional atoms. The cube holds
    ``multiplicity`` (1, 2, 4) primitive cells, so its ``n_electrons`` is that many
    times the primitive one (exactly so for spectral). A simple cubic
    field whose lattice rows already are the cube edges (``T = I``) and whose grid
    is ``n x n x n`` is passed through with ``rho`` unchanged, for either method.
    ``meta["to_conventional"]`` records the method, the rule, ``T``, the rotation
    and the grid sizes. Raises :class:`FieldError` for a non-cubic lattice.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    cell = _cubic_cell(field)
    lattice = cell.a * np.eye(3)
    atoms = _conventional_atoms(field.atoms, cell)
    record = {
        "method": method,
        "kind": cell.kind,
        "T": cell.T.tolist(),
        "rotation": cell.rotation.tolist(),
        "multiplicity": cell.multiplicity,
        "primitive_shape": list(field.shape),
        "rule": SPACING_RULE if spacing is None else f"n = ceil(a / spacing), spacing = {spacing} Å",
    }
    n1, n2, n3 = field.shape
    if np.array_equal(cell.T, np.eye(3, dtype=int)) and n1 == n2 == n3 and spacing is None:
        record.update(applied="identity (simple cubic, grid kept)", n=n1, alias_free=True)
        meta = dict(field.meta, to_conventional=record)
        return field.with_rho(field.rho.copy(), lattice=lattice, atoms=atoms, meta=meta)

    n = conventional_grid_size(field, method, spacing)
    max_k = _max_cubic_index(cell.T, field.shape)
    if method == "spectral":
        rho = _spectral(field.rho, cell.T, n)
        record.update(applied="spectral", n=n, max_K=max_k, alias_free=bool(n >= 2 * max_k + 1),
                      exact_electron_count=bool(n > max_k))
    else:
        rho = _sitk_trilinear(field.rho, field.lattice, cell, n)
        record.update(applied="sitk trilinear", n=n)
    meta = dict(field.meta, to_conventional=record)
    return field.with_rho(rho, lattice=lattice, atoms=atoms, meta=meta)


# --------------------------------------------------------------------------- spectral


def _extended_axis(n: int):
    """Fourier indices, FFT source index and weight along one axis.

    Odd n: k = -(n-1)/2 ... (n-1)/2. Even n: k = -n/2 ... n/2 with the Nyquist
    coefficient split half and half between +n/2 and -n/2 (the symmetric, real
    trigonometric interpolant).
    """
    h = n // 2
    k = np.arange(-h, h + 1)
    w = np.ones(k.size)
    if n % 2 == 0:
        w[0] = w[-1] = 0.5
    return k, k % n, w


def _extended_spectrum(rho: np.ndarray):
    """Fourier coefficients c_k (rho = sum_k c_k exp(2πi k·f)) with split Nyquist terms.

    Returns the coefficient array over the extended index box and the three
    per-axis index vectors.
    """
    c = np.fft.fftn(rho) / rho.size
    axes = [_extended_axis(n) for n in rho.shape]
    (k1, s1, w1), (k2, s2, w2), (k3, s3, w3) = axes
    C = c[np.ix_(s1, s2, s3)] * (w1[:, None, None] * w2[None, :, None] * w3[None, None, :])
    return C, (k1, k2, k3)


def _spectral(rho: np.ndarray, T: np.ndarray, n: int) -> np.ndarray:
    """Evaluate the primitive field's Fourier series on the cube's n³ grid."""
    C, (k1, k2, k3) = _extended_spectrum(rho)
    K = [T[a, 0] * k1[:, None, None] + T[a, 1] * k2[None, :, None] + T[a, 2] * k3[None, None, :] for a in range(3)]
    flat = ((K[0] % n) * n + (K[1] % n)) * n + (K[2] % n)
    flat = flat.ravel()
    Cr = C.ravel()
    if n >= 2 * _max_cubic_index(T, rho.shape) + 1:  # alias-free: K -> index is one-to-one
        spec = np.zeros(n**3, dtype=complex)
        spec[flat] = Cr
    else:  # coefficients folding onto the same index add up (only with a user spacing)
        spec = (np.bincount(flat, weights=Cr.real, minlength=n**3)
                + 1j * np.bincount(flat, weights=Cr.imag, minlength=n**3))
    values = np.fft.ifftn(spec.reshape(n, n, n)) * n**3
    return np.ascontiguousarray(values.real)


def evaluate_fourier(field: ECDField, cart_points) -> np.ndarray:
    """The field's trigonometric interpolant at arbitrary points, by brute force.

    ``cart_points`` (P, 3) in Å in the field's frame (rows of ``field.lattice``);
    returns e/Å³. Sums every Fourier term (split Nyquist terms) explicitly; cost
    P x n1 n2 n3, meant for checks on a handful of points.
    """
    P = np.atleast_2d(np.asarray(cart_points, dtype=float))
    frac = P @ np.linalg.inv(field.lattice)
    C, ks = _extended_spectrum(field.rho)
    E = [np.exp(2j * np.pi * frac[:, i : i + 1] * ks[i][None, :]) for i in range(3)]
    vals = np.einsum("abc,pa,pb,pc->p", C, E[0], E[1], E[2], optimize=True)
    return vals.real


# --------------------------------------------------------------------------- SimpleITK


def _sitk_trilinear(rho: np.ndarray, lattice: np.ndarray, cell: CubicCell, n: int) -> np.ndarray:
    """Trilinear resampling with SimpleITK of the periodic primitive grid onto the cube."""
    import SimpleITK as sitk  # here: only the paper's sitk method needs it (half a second to import)

    shape = np.array(rho.shape)
    A = cell.T @ lattice  # cube edges in the original frame, rows
    # primitive continuous index of the cube's grid points: f * n_i, f = u @ T, u in [0, 1)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    idx = (corners * (n - 1) / n) @ cell.T * shape
    lo = np.ceil(-idx.min(axis=0)).astype(int) + 2
    hi = np.ceil(idx.max(axis=0)).astype(int) - (shape - 1) + 2
    lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
    tiled = np.pad(rho, list(zip(lo, hi)), mode="wrap")

    norms = np.linalg.norm(lattice, axis=1)
    image = sitk.GetImageFromArray(np.ascontiguousarray(tiled.transpose(2, 1, 0)))  # sitk wants [z, y, x]
    image.SetSpacing(tuple(float(s) for s in norms / shape))
    image.SetDirection(tuple(float(v) for v in (lattice / norms[:, None]).T.ravel()))
    image.SetOrigin(tuple(float(v) for v in -(lo / shape) @ lattice))

    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(n)] * 3)
    resampler.SetOutputSpacing([float(cell.a / n)] * 3)
    resampler.SetOutputOrigin([0.0, 0.0, 0.0])
    resampler.SetOutputDirection(tuple(float(v) for v in (A / np.linalg.norm(A, axis=1)[:, None]).T.ravel()))
    resampler.SetInterpolator(sitk.sitkLinear)
    resampler.SetDefaultPixelValue(float("nan"))
    resampler.SetTransform(sitk.Transform())
    out = sitk.GetArrayFromImage(resampler.Execute(image)).transpose(2, 1, 0)
    if np.isnan(out).any():
        raise RuntimeError(
            f"sitk resampling left {int(np.isnan(out).sum())} cube voxels outside the tiled primitive grid"
        )
    return np.ascontiguousarray(out, dtype=np.float64)


# --------------------------------------------------------------------------- synthetic field


_PRIMITIVE = {
    "sc": np.eye(3),
    "bcc": 0.5 * np.array([[-1.0, 1, 1], [1, -1, 1], [1, 1, -1]]),
    "fcc": 0.5 * np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]]),
}
_DEFAULT_BASIS = {
    "sc": (("Cs", (0, 0, 0), 9.0), ("Cl", (0.5, 0.5, 0.5), 7.0)),
    "bcc": (("Fe", (0, 0, 0), 8.0),),
    "fcc": (("Na", (0, 0, 0), 7.0), ("Cl", (0.5, 0.5, 0.5), 7.0)),
}


def periodic_gaussians(lattice, positions, electrons, sigma: float, points) -> np.ndarray:
    """Sum of normalised Gaussians and all their periodic images, in e/Å³.

    Atom j at Cartesian ``positions[j]`` (Å) carries ``electrons[j]`` in a Gaussian
    of standard deviation ``sigma`` (Å); images are summed out to 9 sigma, so the
    result is exact to ~1e-17 relative. ``points`` (P, 3) Cartesian, Å.
    """
    L = np.asarray(lattice, float)
    P = np.atleast_2d(np.asarray(points, float))
    R = np.atleast_2d(np.asarray(positions, float))
    q = np.asarray(electrons, float)
    heights = abs(np.linalg.det(L)) / np.linalg.norm(np.cross(L[[1, 2, 0]], L[[2, 0, 1]]), axis=1)
    m = np.ceil(9.0 * sigma / heights + 0.5).astype(int)
    images = np.stack(np.meshgrid(*[np.arange(-mi, mi + 1) for mi in m], indexing="ij"), -1).reshape(-1, 3) @ L
    inv = np.linalg.inv(L)
    norm = (2 * np.pi * sigma**2) ** -1.5
    out = np.zeros(len(P))
    for start in range(0, len(P), 4096):
        chunk = P[start : start + 4096]
        for rj, qj in zip(R, q):
            d = (chunk - rj) @ inv
            d = (d - np.round(d)) @ L
            r2 = ((d[:, None, :] + images[None, :, :]) ** 2).sum(-1)
            out[start : start + 4096] += qj * norm * np.exp(-r2 / (2 * sigma**2)).sum(1)
    return out


def synthetic_field(kind: str = "fcc", a: float = 4.0, n: int | tuple = 24, sigma: float = 0.35,
                    basis=None) -> ECDField:
    """A synthetic density: periodic Gaussians at the atoms of a cubic crystal, in its primitive cell.

    ``kind`` "sc", "bcc" or "fcc" (primitive vectors of the standard setting, edge
    ``a`` in Å); ``n`` grid points per lattice vector (int or 3-tuple); ``sigma``
    the Gaussian width in Å; ``basis`` a sequence of ``(symbol, fractional
    position, electrons)`` (default: CsCl, Fe, NaCl-like). Each atom carries its
    electrons in an atoms array ``"electrons"``; :func:`synthetic_density` gives
    the exact density anywhere. ``source`` starts with ``"synthetic:"``.
    """
    if kind not in _PRIMITIVE:
        raise ValueError(f"kind must be 'sc', 'bcc' or 'fcc', not {kind!r}")
    basis = _DEFAULT_BASIS[kind] if basis is None else basis
    L = a * _PRIMITIVE[kind]
    shape = (n, n, n) if np.isscalar(n) else tuple(int(v) for v in n)
    atoms = Atoms([b[0] for b in basis], scaled_positions=[b[1] for b in basis], cell=L, pbc=True)
    atoms.set_array("electrons", np.array([float(b[2]) for b in basis]))
    frac = np.stack(np.meshgrid(*[np.arange(s) / s for s in shape], indexing="ij"), -1).reshape(-1, 3)
    rho = periodic_gaussians(L, atoms.positions, atoms.get_array("electrons"), sigma, frac @ L).reshape(shape)
    source = f"synthetic: {kind} {atoms.get_chemical_formula()} a={a} Å, Gaussians sigma={sigma} Å, grid {shape}"
    return ECDField(rho=rho, lattice=L, atoms=atoms, source=source,
                    meta={"synthetic": {"kind": kind, "a": a, "sigma": sigma}})


def synthetic_density(field: ECDField, points) -> np.ndarray:
    """Exact density (e/Å³) of a :func:`synthetic_field` (or its conventional cube) at Cartesian points (Å)."""
    if "synthetic" not in field.meta or field.atoms is None or "electrons" not in field.atoms.arrays:
        raise FieldError(f"{field.source or 'ECDField'}: not a synthetic field")
    return periodic_gaussians(field.lattice, field.atoms.positions, field.atoms.get_array("electrons"),
                              field.meta["synthetic"]["sigma"], points)
