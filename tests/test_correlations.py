"""Tests of :mod:`leanecd.correlations`: the exact autocorrelation on the standard grid.

Every field here is synthetic (made up in the test, no DFT behind it): random
positive densities, or sums of periodic Gaussians at chosen atomic sites.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from leanecd.correlations import (
    autocorrelation,
    autocorrelation_grid,
    autocorrelations,
    periodic_autocorrelation,
)
from leanecd.errors import FieldError
from leanecd.io import ECDField

FCC = 0.5 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
BCC = 0.5 * np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]], dtype=float)


# --------------------------------------------------------------------------- helpers


def _random_field(shape, lattice, seed=0) -> ECDField:
    rng = np.random.default_rng(seed)
    return ECDField(rho=0.05 + rng.random(shape), lattice=lattice, source="synthetic: random")


def _gaussians(shape, lattice, frac_sites, weights, sigma=0.45, background=0.02) -> np.ndarray:
    """Synthetic density (e/Å³): periodic Gaussians of width ``sigma`` Å at fractional sites."""
    lattice = np.asarray(lattice, float)
    grids = np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij")
    u = np.stack(grids, axis=-1).reshape(-1, 3)
    rho = np.full(len(u), background)
    images = np.array(list(itertools.product(range(-2, 3), repeat=3)))
    for site, w in zip(np.asarray(frac_sites, float), weights):
        d = u - site
        d -= np.round(d)
        for img in images:
            r = (d + img) @ lattice
            rho += w * np.exp(-(r * r).sum(axis=1) / (2 * sigma**2))
    return rho.reshape(shape)


ROCK_SALT = [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)]


def _rock_salt(a=5.64, n=32) -> ECDField:
    sites = ROCK_SALT + [tuple((np.array(s) + [0.5, 0, 0]) % 1) for s in ROCK_SALT]
    rho = _gaussians((n,) * 3, a * np.eye(3), sites, [1.0] * 4 + [0.6] * 4)
    return ECDField(rho=rho, lattice=a * np.eye(3), source="synthetic: rock-salt Gaussians")


def _max_rel(A, B) -> float:
    return float(np.abs(A - B).max() / np.abs(B).max())


def _trig_eval_dirichlet(f_m: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Brute-force trigonometric interpolation of periodic samples ``f_m`` at fractional
    points ``u`` (P, 3) with the Dirichlet kernels of each axis (symmetric Nyquist split
    on even axes): D_n(t) = sin(nπt)/(n sin πt) (odd n), sin(nπt) cot(πt)/n (even n)."""

    def kernel(n, t):
        t = np.asarray(t, float)
        s = np.sin(np.pi * t)
        on_grid = np.abs(s) < 1e-14
        s_safe = np.where(on_grid, 1.0, s)
        if n % 2:
            k = np.sin(n * np.pi * t) / (n * s_safe)
        else:
            k = np.sin(n * np.pi * t) * np.cos(np.pi * t) / (n * s_safe)
        return np.where(on_grid, 1.0, k)

    n = f_m.shape
    out = []
    for p in u:
        D = [kernel(n[i], p[i] - np.arange(n[i]) / n[i]) for i in range(3)]
        out.append(np.einsum("ijk,i,j,k->", f_m, *D))
    return np.array(out)


# --------------------------------------------------------------------------- the grid


def test_grid_is_centred_and_matches_paper():
    x = autocorrelation_grid()
    assert x.shape == (51,)
    assert x[25] == 0.0 and x[0] == pytest.approx(-5.0) and x[-1] == pytest.approx(5.0)
    assert np.allclose(np.diff(x), 0.2)
    with pytest.raises(ValueError):
        autocorrelation_grid(-0.2)
    with pytest.raises(ValueError):
        autocorrelation_grid(0.2, 0)


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize(
    "shape, lattice",
    [
        ((8, 8, 8), 3.5 * np.eye(3)),  # even grid: Nyquist terms on every axis
        ((7, 9, 11), 4.1 * np.eye(3)),  # odd grid, different counts per axis
        ((12, 12, 12), 5.0 * FCC),  # primitive FCC
        ((10, 11, 12), 3.1 * BCC),  # primitive BCC
    ],
    ids=["sc-even", "sc-odd", "fcc-primitive", "bcc-primitive"],
)
def test_centre_is_mean_density_and_inversion_symmetric(shape, lattice):
    field = _random_field(shape, lattice)
    F = autocorrelation(field)
    assert F.shape == (51, 51, 51) and F.dtype == np.float64 and np.all(np.isfinite(F))
    assert abs(F[25, 25, 25] - field.rho.mean()) <= 1e-12 * field.rho.mean()
    # the r_z = 0 plane is computed, not mirrored: inversion symmetry there is a real check
    assert np.abs(F[:, :, 25] - F[::-1, ::-1, 25]).max() <= 1e-13 * F.max()
    assert np.abs(F - F[::-1, ::-1, ::-1]).max() <= 1e-13 * F.max()
    # an even-sized grid is computed in full, nothing mirrored: f(r) = f(-r) on its
    # symmetric part (indices 1..49 of 50, r from -4.8 to 4.8 Å)
    G = autocorrelation(field, size=50)
    assert G[25, 25, 25] == pytest.approx(field.rho.mean(), rel=1e-12)
    core = G[1:, 1:, 1:]
    assert np.abs(core - core[::-1, ::-1, ::-1]).max() <= 1e-13 * F.max()
    assert np.abs(core - F[1:50, 1:50, 1:50]).max() <= 1e-13 * F.max()


def test_cube_symmetry_operations_leave_rock_salt_features_unchanged():
    field = _rock_salt()
    F = autocorrelation(field)
    assert F[25, 25, 25] == pytest.approx(field.rho.mean(), rel=1e-12)
    worst = 0.0
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((False, True), repeat=3):
            G = F.transpose(perm)
            for ax, flip in enumerate(flips):
                if flip:
                    G = np.flip(G, axis=ax)
            worst = max(worst, _max_rel(G, F))
    assert worst < 1e-12
    # and the features are not trivially symmetric: the field is not constant
    assert F.std() > 1e-3 * F.mean()


def test_translation_invariance():
    field = _random_field((9, 10, 8), 3.9 * np.eye(3), seed=3)
    shifted = field.with_rho(np.roll(field.rho, (2, -3, 5), axis=(0, 1, 2)))
    assert _max_rel(autocorrelation(shifted), autocorrelation(field)) < 1e-12


def test_reproduces_fft_autocorrelation_at_the_field_grid_points():
    a, shape = 3.9, (6, 8, 12)
    field = _random_field(shape, a * np.eye(3), seed=1)
    step = a / 24  # a multiple of every axis' grid step a/n_i
    F = autocorrelation(field, spacing=step, size=51)
    f = periodic_autocorrelation(field)
    idx = np.arange(51) - 25  # output index -> vector in units of a/24
    # every output point whose components land on field grid points of each axis
    sel = [idx[(idx * n) % 24 == 0] for n in shape]
    ref = f[np.ix_(*[(s * n // 24) % n for s, n in zip(sel, shape)])]
    got = F[np.ix_(*[s + 25 for s in sel])]
    assert ref.size > 100
    assert _max_rel(got, ref) < 1e-12
    # periodic_autocorrelation is Eq. 2: index 0 is r = 0 = mean density
    assert f[0, 0, 0] == pytest.approx(field.rho.mean(), rel=1e-12)
    assert np.array_equal(periodic_autocorrelation(field, centered=True), np.fft.fftshift(f))


def test_matches_brute_force_sum_and_brute_force_interpolation():
    a, shape = 3.37, (5, 6, 7)  # lattice constant not a multiple of 0.2 Å
    field = _random_field(shape, a * np.eye(3), seed=7)
    s = np.sqrt(field.rho)
    n = np.array(shape)
    # O(N^2) Eq. 2: f_m = (1/N) Σ_s √ρ_s √ρ_{s+m}
    f_m = np.empty(shape)
    for m in itertools.product(*[range(k) for k in shape]):
        f_m[m] = (s * np.roll(s, [-mi for mi in m], axis=(0, 1, 2))).mean()
    assert _max_rel(periodic_autocorrelation(field), f_m) < 1e-13
    F = autocorrelation(field)
    x = autocorrelation_grid()
    rng = np.random.default_rng(0)
    picks = np.vstack([rng.integers(0, 51, size=(12, 3)), [[25, 25, 25], [0, 0, 0], [50, 3, 25]]])
    u = x[picks] / a  # fractional coordinates, off the field grid (a is not a multiple of 0.2)
    assert not np.any(np.all(np.isclose((u * n) % 1, 0) | np.isclose((u * n) % 1, 1), axis=1)[:-3])
    want = _trig_eval_dirichlet(f_m, u)
    got = F[tuple(picks.T)]
    assert np.abs(got - want).max() < 1e-12 * F.max()


def test_window_spans_several_periods():
    a = 2.0  # ten output steps per period: F(x + a) = F(x)
    field = _random_field((6, 7, 8), a * np.eye(3), seed=5)
    F = autocorrelation(field)
    assert np.abs(F[10:] - F[:-10]).max() < 1e-12 * F.max()
    assert np.abs(F[:, :, 10:] - F[:, :, :-10]).max() < 1e-12 * F.max()


def test_axis_orientation_follows_the_cube_edges():
    a, n = 4.0, 16
    x = np.arange(n) / n
    # varies strongly along a1 = x, weakly along a3 = z, not at all along y
    rho = (1.0 + 0.8 * np.cos(2 * np.pi * x))[:, None, None] + 0.1 * np.sin(2 * np.pi * x)[None, None, :]
    rho = np.broadcast_to(rho, (n, n, n))
    field = ECDField(rho=rho, lattice=a * np.eye(3), source="synthetic: cosines")
    F = autocorrelation(field)
    assert np.abs(F - F[:, 25:26, :]).max() < 1e-12 * F.max()  # constant along r_y
    assert np.ptp(F[:, 25, 25]) > 10 * np.ptp(F[25, 25, :]) > 0  # x strong, z weak
    # the same density, with the lattice vectors listed as a1 = a y, a2 = a z, a3 = a x:
    # new point (i, j, k) is at (x, y, z) = (k, i, j) a / n, so rho_new[i, j, k] = rho[k, i, j]
    lat = np.array([[0, a, 0], [0, 0, a], [a, 0, 0]])
    same = ECDField(rho=rho.transpose(1, 2, 0), lattice=lat, source="synthetic: cosines, permuted cell")
    assert _max_rel(autocorrelation(same), F) < 1e-12
    # edges pointing the other way: a1 = -a y, a2 = -a z, a3 = a x (a signed permutation);
    # point (i, j, k) is at (k, -i, -j) a / n, so rho_new[i, j, k] = rho[k, -i, -j]
    lat = np.array([[0, -a, 0], [0, 0, -a], [a, 0, 0]])
    back = (-np.arange(n)) % n
    rho_new = rho.transpose(1, 2, 0)[back][:, back]
    flipped = ECDField(rho=rho_new, lattice=lat, source="synthetic: cosines, signed-permuted cell")
    assert _max_rel(autocorrelation(flipped), F) < 1e-12
    # a field without mirror symmetry tells the sign apart
    field = _random_field((5, 6, 7), a * np.eye(3), seed=11)
    rho_new = field.rho.transpose(1, 2, 0)[(-np.arange(6)) % 6][:, (-np.arange(7)) % 7]
    F = autocorrelation(field)
    G = autocorrelation(ECDField(rho=rho_new, lattice=lat))
    assert _max_rel(G, F) < 1e-12
    assert _max_rel(F[:, ::-1, :], F) > 1e-3


# --------------------------------------------------------------------------- primitive cells


def _conventional_from_primitive_sqrt(s_p: np.ndarray, T: np.ndarray, m: int) -> np.ndarray:
    """Exact Fourier evaluation of the trigonometric polynomial with samples ``s_p``
    (odd primitive grid: no Nyquist terms) on the conventional m³ grid: c_k moves to
    the cubic index K = T k; m must exceed twice the largest |K| (no aliasing)."""
    n = s_p.shape
    assert all(k % 2 for k in n)
    c = np.fft.fftn(s_p) / s_p.size
    k = np.stack(np.meshgrid(*[np.fft.fftfreq(k, 1 / k).round().astype(int) for k in n], indexing="ij"), -1)
    K = k.reshape(-1, 3) @ T.T
    assert np.abs(K).max() < m / 2
    C = np.zeros((m,) * 3, complex)
    C[tuple((K % m).T)] = c.reshape(-1)
    s_c = np.fft.ifftn(C).real * m**3
    return s_c


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_primitive_and_conventional_cells_give_the_same_features(kind):
    from leanecd.lattice import find_cubic_cell

    a, n_p = 4.3, 15
    L = a * (FCC if kind == "fcc" else BCC)
    # a structure with no symmetry to speak of, so axis mix-ups show
    sites = [(0, 0, 0), (0.31, 0.12, 0.77), (0.5, 0.55, 0.1)]
    rho_p = _gaussians((n_p,) * 3, L, sites, [1.0, 0.7, 0.4], sigma=0.55, background=0.05)
    s_p = np.sqrt(rho_p)
    T = find_cubic_cell(L).T
    assert abs(round(np.linalg.det(T))) == (4 if kind == "fcc" else 2)
    m = 45 if kind == "fcc" else 31
    s_c = _conventional_from_primitive_sqrt(s_p, T, m)
    assert s_c.min() > 0  # so that sqrt(s_c**2) is s_c: the same band-limited √ρ
    prim = ECDField(rho=rho_p, lattice=L, source=f"synthetic: {kind} primitive")
    conv = ECDField(rho=s_c**2, lattice=T @ L, source=f"synthetic: {kind} conventional")
    assert np.allclose(T @ L, a * np.eye(3))
    assert conv.n_electrons == pytest.approx(abs(round(np.linalg.det(T))) * prim.n_electrons, rel=1e-12)
    Fp, Fc = autocorrelation(prim), autocorrelation(conv)
    assert _max_rel(Fp, Fc) < 1e-10
    assert _max_rel(Fp, Fp.transpose(1, 0, 2)) > 1e-3  # the test can see orientation errors

    # The paper's route: trilinear (SimpleITK) conventional cell first, then the FFT.
    # Reported, loosely bounded: it is an approximation, not the same function.
    rho_sitk = _sitk_conventional(rho_p, L, a, m)
    F_paper = autocorrelation(ECDField(rho=rho_sitk, lattice=a * np.eye(3)))
    err = _max_rel(F_paper, Fp)
    print(f"\n{kind}: paper route (trilinear cell, then FFT) max rel. deviation {err:.2e}")
    assert 1e-6 < err < 0.1


def _sitk_conventional(rho_p, L, a, m):
    """Trilinear resampling (SimpleITK) of a periodic primitive field onto the m³ grid of
    the axis-aligned conventional cube [0, a)³ - the paper's §2.2.1 route, done here
    directly so that this test does not depend on leanecd.cells."""
    import SimpleITK as sitk

    n = np.array(rho_p.shape)
    padded = np.pad(rho_p, [(k, k + 1) for k in n], mode="wrap")  # cells -1..1, one more plane
    img = sitk.GetImageFromArray(padded.transpose(2, 1, 0))  # sitk index (i, j, k) = padded[i, j, k]
    lengths = np.linalg.norm(L, axis=1)
    img.SetSpacing(tuple(float(v) for v in lengths / n))
    img.SetDirection(tuple(float(v) for v in (L / lengths[:, None]).T.ravel()))
    img.SetOrigin(tuple(float(v) for v in -L.sum(axis=0)))
    ref = sitk.Image([int(m)] * 3, sitk.sitkFloat64)
    ref.SetSpacing((a / m,) * 3)
    out = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, -1.0, sitk.sitkFloat64)
    out = sitk.GetArrayFromImage(out).transpose(2, 1, 0)
    assert out.min() >= 0  # no point fell outside the padded image
    return out


# --------------------------------------------------------------------------- errors


def test_negative_density_raises_field_error_not_nan():
    field = _random_field((6, 6, 6), 3.0 * np.eye(3))
    rho = field.rho.copy()
    rho[1, 2, 3] = -1e-4
    with pytest.raises(FieldError, match="remove_negative"):
        autocorrelation(field.with_rho(rho, source="synthetic: one negative voxel"))


@pytest.mark.parametrize(
    "lattice",
    [np.diag([3.0, 3.0, 3.5]), np.array([[3.0, 0, 0], [-1.5, 3.0 * np.sqrt(3) / 2, 0], [0, 0, 5.0]])],
    ids=["tetragonal", "hexagonal"],
)
def test_non_cubic_lattice_raises_field_error(lattice):
    with pytest.raises(FieldError, match="cubic"):
        autocorrelation(_random_field((6, 6, 6), lattice))


def test_batch_helper_stacks():
    fields = [_random_field((6, 6, 6), 3.0 * np.eye(3), seed=s) for s in range(2)]
    out = autocorrelations(fields, size=11)
    assert out.shape == (2, 11, 11, 11)
    assert np.array_equal(out[1], autocorrelation(fields[1], size=11))


# --------------------------------------------------------------------------- nearly cubic cells


def _relaxed_bcc_field(tmp_path, angles=(109.43, 109.43, 109.55)):
    """A synthetic density in a BCC primitive cell as a relaxation writes it: the angles
    off by a few 1e-4 (109.47° is meant), through a CHGCAR written the VASP way."""
    from ase import Atoms
    from ase.geometry import cellpar_to_cell

    from leanecd.io import read_chgcar, write_chgcar

    lattice = cellpar_to_cell([2.866, 2.866, 2.866, *angles])
    atoms = Atoms("Fe", scaled_positions=[[0, 0, 0]], cell=lattice, pbc=True)
    field = _random_field((6, 6, 6), lattice, seed=3)
    field = ECDField(rho=field.rho, lattice=lattice, atoms=atoms, source="synthetic: relaxed bcc")
    return read_chgcar(write_chgcar(field, tmp_path / "CHGCAR"))


def test_nearly_cubic_cell_refused_with_distance_and_remedy(tmp_path):
    field = _relaxed_bcc_field(tmp_path)
    with pytest.raises(FieldError) as info:
        autocorrelation(field, size=11)
    msg = str(info.value)
    assert str(tmp_path / "CHGCAR") in msg
    assert "BCC" in msg and "7.2e-04" in msg  # 109.55° vs 109.47°: 7.2e-4 relative, 0.079°
    assert "symmetrize_cubic" in msg


def test_symmetrize_cubic_then_autocorrelation(tmp_path):
    from leanecd.lattice import find_cubic_cell, symmetrize_cubic

    field = _relaxed_bcc_field(tmp_path)
    sym = symmetrize_cubic(field)  # default tol 1e-3
    rec = sym.meta["symmetrize_cubic"]
    assert rec["kind"] == "bcc" and rec["tol"] == 1e-3
    assert rec["max_angle_deviation"] == pytest.approx(7.2e-4, rel=0.01)
    assert rec["max_angle_deviation_deg"] == pytest.approx(0.0788, rel=0.01)
    np.testing.assert_allclose(rec["lattice_before"], field.lattice)
    assert sym.meta["comment"] == field.meta["comment"]  # the reader's provenance is kept
    # same volume, density, electron count and fractional positions; now cubic at rtol 1e-5
    assert sym.volume == pytest.approx(field.volume, rel=1e-12)
    assert np.array_equal(sym.rho, field.rho)
    assert sym.n_electrons == pytest.approx(field.n_electrons, rel=1e-12)
    np.testing.assert_allclose(sym.atoms.get_scaled_positions(), field.atoms.get_scaled_positions(), atol=1e-12)
    np.testing.assert_allclose(sym.atoms.cell[:], sym.lattice, atol=0)
    cube = find_cubic_cell(sym.lattice, rtol=1e-9)
    assert cube.kind == "bcc" and cube.a == pytest.approx(rec["a"], rel=1e-12)
    assert "symmetrize_cubic" not in field.meta  # the input is left alone

    # the autocorrelation equals that of the same grid values on an exact, axis-aligned
    # BCC cell of that volume, up to a symmetry of the cube (compare the sorted values)
    F = autocorrelation(sym, size=11)
    exact = ECDField(rho=field.rho, lattice=rec["a"] * BCC, source="synthetic: exact bcc")
    G = autocorrelation(exact, size=11)
    np.testing.assert_allclose(np.sort(F.ravel()), np.sort(G.ravel()), rtol=1e-9, atol=1e-12)
    assert F[5, 5, 5] == pytest.approx(field.rho.mean(), rel=1e-10)


def test_symmetrize_cubic_refuses_beyond_tolerance(tmp_path):
    from leanecd.lattice import symmetrize_cubic

    field = _relaxed_bcc_field(tmp_path)
    with pytest.raises(FieldError, match=r"tol=0\.0001.*7\.2e-04"):
        symmetrize_cubic(field, tol=1e-4)
    far = _relaxed_bcc_field(tmp_path, angles=(109.0, 109.47, 109.47))  # 0.43 % off
    with pytest.raises(FieldError, match="tol=0.001"):
        symmetrize_cubic(far)
    with pytest.raises(FieldError, match="refusing to symmetrise"):  # tetragonal: 4 % from the nearest (BCC)
        symmetrize_cubic(ECDField(rho=np.ones((4, 4, 4)), lattice=np.diag([3.0, 3.0, 4.5])))


def test_symmetrize_cubic_keeps_an_exact_cell():
    from leanecd.lattice import symmetrize_cubic

    for lattice in (3.0 * np.eye(3), 4.1 * FCC, 2.9 * BCC):
        field = _random_field((4, 4, 4), lattice)
        sym = symmetrize_cubic(field)
        np.testing.assert_allclose(sym.lattice, lattice, atol=1e-12)
        assert sym.meta["symmetrize_cubic"]["max_angle_deviation"] < 1e-12
