"""2-point autocorrelations of ECD fields on the standard centred grid (paper §3.1, Eq. 2).

The paper computes the periodic autocorrelation of √ρ̃ on the field's own grid,

    f_r = (1/|S|) F⁻¹[ F(√ρ̃) F(√ρ̃)* ]_r ,                                  (Eq. 2)

and then re-expresses it by trigonometric interpolation on a standard grid of
51³ points, 0.2 Å apart, covering vectors from −5 Å to +5 Å along the cube's
x, y, z (index ``(25, 25, 25)`` is r = 0).

:func:`autocorrelation` does both steps at once and exactly. With
``c_k = FFT(√ρ̃)_k / |S|`` the Fourier coefficients of ``f`` are ``|c_k|²``, so
the trigonometric interpolant of ``f`` is the finite Fourier series

    F(r) = Σ_k |c_k|² exp(i G_k · r),      G_k = (2π/a) K,   K = T k,

with ``T`` the integer matrix of :func:`leanecd.lattice.find_cubic_cell`
(conventional = T @ primitive; ``T`` is a signed permutation for a field given
in its conventional cube). The series is evaluated directly on the output grid;
no inverse FFT is needed. On a Cartesian output grid the phase factorises per
axis, so the sum is three small matrix products. The Nyquist term of an even
grid is split half to +n/2 and half to −n/2 on every axis (the symmetric
interpolant, which is real and even), and the window may span several lattice
periods. A primitive FCC/BCC field is handled as it is, without building the
conventional cell first: its coefficients sit on a sublattice of the cubic
index grid.

Invariants (each one a test in ``tests/test_correlations.py``):

* ``F(0) = mean(ρ̃)`` (Parseval: it is the correlation of √ρ̃);
* ``F(r) = F(−r)``;
* at vectors that are grid vectors of the field, ``F`` equals Eq. 2 computed
  with a plain FFT;
* a field given in its primitive cell and in its conventional cube, as the same
  band-limited function, give the same ``F``.

>>> import numpy as np
>>> from leanecd.io import ECDField
>>> rng = np.random.default_rng(0)
>>> field = ECDField(rho=rng.random((8, 8, 8)) + 0.1, lattice=3.5 * np.eye(3))
>>> F = autocorrelation(field)
>>> F.shape
(51, 51, 51)
>>> bool(np.isclose(F[25, 25, 25], field.rho.mean(), rtol=1e-12, atol=0))
True
>>> autocorrelation_grid()[[0, 25, 50]]
array([-5.,  0.,  5.])
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from .errors import FieldError
from .lattice import find_cubic_cell
from .settings import GRID_SIZE, SPACING_A

__all__ = [
    "ALGORITHM_VERSION",
    "autocorrelation",
    "autocorrelation_grid",
    "autocorrelations",
    "periodic_autocorrelation",
]

#: Version of the autocorrelation algorithm; part of the feature-cache key
#: (:mod:`leanecd.features`). Bump it whenever the numbers it produces change.
ALGORITHM_VERSION = "exact-trig-1"


def autocorrelation_grid(spacing: float = SPACING_A, size: int = GRID_SIZE) -> np.ndarray:
    """The 1-D coordinates (Å) of the centred autocorrelation grid along each cube axis.

    ``size`` points ``spacing`` Å apart; index ``size // 2`` is 0.

    >>> autocorrelation_grid(0.5, 5)
    array([-1. , -0.5,  0. ,  0.5,  1. ])
    """
    spacing, size = _check_grid(spacing, size)
    return (np.arange(size) - size // 2) * spacing


def periodic_autocorrelation(field, centered: bool = False) -> np.ndarray:
    """Eq. 2 verbatim: ``ifftn(|fftn(√ρ̃)|²) / |S|`` on the field's own grid (e/Å³).

    Index ``(m1, m2, m3)`` is the vector ``m1/n1 a1 + m2/n2 a2 + m3/n3 a3``; with
    ``centered=True`` the array is ``fftshift``-ed so that r = 0 sits at index ``n // 2``.
    This is the teaching version; :func:`autocorrelation` gives the standard grid.
    """
    rho = _checked_rho(field)
    s = np.sqrt(rho)
    S = scipy.fft.fftn(s)
    f = scipy.fft.ifftn(S.real**2 + S.imag**2).real / s.size
    return np.fft.fftshift(f) if centered else f


def autocorrelation(field, spacing: float = SPACING_A, size: int = GRID_SIZE) -> np.ndarray:
    """The autocorrelation of √ρ̃ on the standard centred grid, float64 ``(size,)*3``, e/Å³.

    ``F[i, j, l]`` is the autocorrelation at the vector ``(x_i, x_j, x_l)`` (Å) along the
    edges of the field's conventional cube (``find_cubic_cell(field.lattice).rotation``
    rows; x, y, z for an axis-aligned cube), with ``x = autocorrelation_grid(spacing,
    size)``: exact trigonometric interpolation of Eq. 2 (see the module docstring).

    ``field`` may be given in its conventional cube or in a primitive SC/BCC/FCC cell.
    Raises :class:`~leanecd.errors.FieldError` for negative densities (run
    :func:`leanecd.renormalize.remove_negative` first) and for non-cubic lattices.
    """
    x = autocorrelation_grid(spacing, size)
    rho = _checked_rho(field)
    where = getattr(field, "source", "") or "ECDField"
    try:
        cube = find_cubic_cell(field.lattice)
    except FieldError as exc:
        raise FieldError(f"{where}: the autocorrelation grid needs a cubic (SC, BCC or FCC) lattice; {exc}") from None
    T = np.asarray(cube.T, dtype=np.int64)
    half = size % 2 == 1  # the grid is symmetric: compute r_last >= 0, mirror the rest
    perm = _signed_permutation(T)
    if perm is not None:
        C, freqs, out_axes = _spectrum_conventional(rho, T, perm)
        G = _evaluate(C, freqs, cube.a, x, half)
    else:
        G = None
        for C, freqs in _spectrum_cosets(rho, T):
            g = _evaluate(C, freqs, cube.a, x, half)
            G = g if G is None else G + g
        out_axes = (0, 1, 2)
    if half:
        c = size // 2
        full = np.empty((size, size, size))
        full[:, :, c:] = G
        full[:, :, :c] = G[::-1, ::-1, c:0:-1]  # F(r) = F(-r)
        G = full
    return np.ascontiguousarray(G.transpose(np.argsort(out_axes)))


def autocorrelations(fields, spacing: float = SPACING_A, size: int = GRID_SIZE) -> np.ndarray:
    """:func:`autocorrelation` of each field, stacked: float64 ``(N, size, size, size)``."""
    return np.stack([autocorrelation(f, spacing, size) for f in fields])


# --------------------------------------------------------------------------- internals


def _check_grid(spacing, size) -> tuple[float, int]:
    spacing = float(spacing)
    if not np.isfinite(spacing) or spacing <= 0:
        raise ValueError(f"spacing must be a positive number of Å, got {spacing}")
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size}")
    return spacing, int(size)


def _checked_rho(field) -> np.ndarray:
    rho = np.asarray(field.rho, dtype=np.float64)
    where = getattr(field, "source", "") or "ECDField"
    if rho.ndim != 3:
        raise FieldError(f"{where}: rho must be a 3-D array, got shape {rho.shape}")
    if not np.all(np.isfinite(rho)):
        raise FieldError(f"{where}: rho contains NaN or inf")
    neg = rho < 0
    if neg.any():
        raise FieldError(
            f"{where}: rho has {int(neg.sum())} negative values (min {rho.min():.4g} e/Å³); the "
            "autocorrelation is of sqrt(rho) and needs rho >= 0 - run "
            "leanecd.renormalize.remove_negative first"
        )
    return rho


def _signed_permutation(T: np.ndarray):
    """For a signed permutation ``T`` return ``m`` with ``K_j = T[j, m_j] k_{m_j}``, else None."""
    if not (np.abs(T).sum(axis=0) == 1).all() or not (np.abs(T).sum(axis=1) == 1).all():
        return None
    return np.argmax(np.abs(T), axis=1)


def _symmetric_axis(P: np.ndarray, axis: int):
    """Reorder an FFT axis to frequencies −n/2..n/2; an even grid's Nyquist slice is split
    half to −n/2 and half to +n/2. Returns the array and its integer frequencies."""
    n = P.shape[axis]
    P = np.fft.fftshift(P, axes=axis)
    if n % 2:
        return P, np.arange(-(n // 2), n // 2 + 1)
    nyq = 0.5 * np.take(P, [0], axis=axis)
    rest = np.take(P, np.arange(1, n), axis=axis)
    return np.concatenate([nyq, rest, nyq], axis=axis), np.arange(-(n // 2), n // 2 + 1)


def _spectrum_conventional(rho, T, perm):
    """Weighted half spectrum of a field in its (signed-permuted) conventional cube.

    Returns ``C`` (real, dense over k1, k2 ∈ −n/2..n/2 and k3 ∈ 0..n3/2), the cubic
    frequencies of each array axis, and the output axis each array axis maps to, such
    that ``F = Re Σ C e^{iG·r}``.
    """
    n3 = rho.shape[2]
    S = scipy.fft.rfftn(np.sqrt(rho), workers=1)
    S /= rho.size
    P = S.real**2 + S.imag**2
    w = np.full(P.shape[2], 2.0)  # the k3 < 0 half is the mirror image: Re(2 c) ...
    w[0] = 1.0  # ... except the k3 = 0 plane ...
    if n3 % 2 == 0:
        w[-1] = 1.0  # ... and the symmetrically split Nyquist plane
    P *= w
    P, f0 = _symmetric_axis(P, 0)
    P, f1 = _symmetric_axis(P, 1)
    f = [f0, f1, np.arange(P.shape[2])]
    # K_j = T[j, m_j] k_{m_j}: array axis m feeds output axis j with frequencies ±k_m
    out_axes = [0, 0, 0]
    freqs = [None, None, None]
    for j, m in enumerate(perm):
        out_axes[m] = j
        freqs[m] = T[j, m] * f[m]
    return P, freqs, tuple(out_axes)


def _spectrum_cosets(rho, T):
    """Yield ``(C, freqs)`` dense blocks for a primitive cell: the weighted spectrum on
    the cubic index grid K = T k, restricted to K_z >= 0, one block per class of K mod 2
    present (the allowed parities: 2 classes for FCC, 4 for BCC, 8 - one block - for SC)."""
    S = scipy.fft.fftn(np.sqrt(rho), workers=1)
    S /= rho.size
    P = S.real**2 + S.imag**2
    fs = []
    for axis in range(3):
        P, f = _symmetric_axis(P, axis)
        fs.append(f)
    k = np.stack(np.meshgrid(*fs, indexing="ij"), axis=-1).reshape(-1, 3)
    K = k @ T.T
    vals = P.reshape(-1)
    keep = K[:, 2] >= 0
    K, vals = K[keep], vals[keep]
    vals = np.where(K[:, 2] > 0, 2.0 * vals, vals)  # the K_z < 0 half is the mirror image
    res = K & 1
    codes = res @ np.array([4, 2, 1])
    present = np.unique(codes)
    if present.size == 8:
        groups = [(np.ones(len(K), bool), np.zeros(3, np.int64), 1)]
    else:
        groups = [(codes == c, res[codes == c][0], 2) for c in present]
    for sel, r, stride in groups:
        J = (K[sel] - r) // stride
        lo = J.min(axis=0)
        shape = tuple(J.max(axis=0) - lo + 1)
        C = np.zeros(shape)
        C[tuple((J - lo).T)] = vals[sel]
        freqs = [stride * (lo[i] + np.arange(shape[i])) + r[i] for i in range(3)]
        yield C, freqs


def _evaluate(C, freqs, a, x, half):
    """``G[t0, t1, t2] = Re Σ_n C[n] Π_m exp(2πi x_{t_m} freqs_m[n_m] / a)`` by three
    matrix products (axis 2 first); with ``half`` only x_{t2} >= 0 is computed."""
    N0, N1, N2 = C.shape
    x2 = x[len(x) // 2 :] if half else x
    s0, s1, s2 = len(x), len(x), len(x2)

    def phases(f, xs):  # (len(xs), len(f)) angles, reduced mod 2π before cos/sin
        t = np.outer(xs, np.asarray(f, dtype=np.float64)) / a
        t -= np.round(t)
        return 2.0 * np.pi * t

    t2 = phases(freqs[2], x2)
    E2 = np.concatenate([np.cos(t2), np.sin(t2)])  # (2 s2, N2)
    A = C.reshape(N0 * N1, N2) @ E2.T  # [Re | Im] (N0 N1, 2 s2)
    A = A.reshape(N0, N1, 2, s2).transpose(2, 1, 0, 3).reshape(2 * N1, N0 * s2)
    t1 = phases(freqs[1], x)
    c1, sn1 = np.cos(t1), np.sin(t1)
    M1 = np.block([[c1, -sn1], [sn1, c1]])  # complex product in real form
    B = M1 @ A  # (2 s1, N0 s2): [Re; Im]
    B = B.reshape(2, s1, N0, s2).transpose(0, 2, 1, 3).reshape(2 * N0, s1 * s2)
    t0 = phases(freqs[0], x)
    M0 = np.concatenate([np.cos(t0), -np.sin(t0)], axis=1)  # real part only
    return (M0 @ B).reshape(s0, s1, s2)
