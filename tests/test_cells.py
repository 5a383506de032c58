"""Tests of leanecd.cells: primitive -> conventional cube, spectral and SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest

from leanecd.cells import (
    conventional_grid_size,
    evaluate_fourier,
    synthetic_density,
    synthetic_field,
    to_conventional,
)
from leanecd.errors import FieldError
from leanecd.io import ECDField

SIGMA = 0.6  # Å; wide enough that a 20-24 point primitive grid resolves the Gaussians


@pytest.fixture(scope="module")
def fields():
    """Synthetic FCC (NaCl-like, 2 atoms) and BCC (Fe, 1 atom) primitive fields."""
    return {
        "fcc": synthetic_field("fcc", a=4.0, n=24, sigma=SIGMA),
        "bcc": synthetic_field("bcc", a=3.0, n=20, sigma=SIGMA),
    }


@pytest.fixture(scope="module")
def spectral(fields):
    return {k: to_conventional(f, "spectral") for k, f in fields.items()}


@pytest.fixture(scope="module")
def sitk(fields):
    return {k: to_conventional(f, "sitk") for k, f in fields.items()}


def _grid_points(cube: ECDField, count: int, seed: int = 0):
    n = cube.shape[0]
    idx = np.random.default_rng(seed).integers(0, n, size=(count, 3))
    return idx, idx / n * cube.lattice[0, 0]


def _to_original_frame(cube: ECDField, points):
    """Cube-frame Cartesian points (Å) -> the primitive field's Cartesian frame."""
    return points @ np.array(cube.meta["to_conventional"]["rotation"])


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_spectral_equals_band_limited_interpolant_on_cube_grid(fields, spectral, kind):
    prim, cube = fields[kind], spectral[kind]
    idx, pts = _grid_points(cube, 40)
    brute = evaluate_fourier(prim, _to_original_frame(cube, pts))
    got = cube.rho[tuple(idx.T)]
    assert np.abs(got - brute).max() <= 1e-10 * prim.rho.max()
    # and the analytic density itself (the Gaussians are band-limited to rounding here)
    idx, pts = _grid_points(cube, 2000, seed=1)
    exact = synthetic_density(cube, pts)
    assert np.abs(cube.rho[tuple(idx.T)] - exact).max() <= 1e-10 * prim.rho.max()


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_spectral_cube_series_equals_primitive_series_anywhere(fields, spectral, kind):
    """Alias-free grid: the cube's own Fourier series is the primitive one, at arbitrary points."""
    prim, cube = fields[kind], spectral[kind]
    assert cube.meta["to_conventional"]["alias_free"]
    pts = np.random.default_rng(2).uniform(-1.0, 2 * cube.lattice[0, 0], size=(7, 3))
    on_cube = evaluate_fourier(cube, pts)
    on_prim = evaluate_fourier(prim, _to_original_frame(cube, pts))
    assert np.abs(on_cube - on_prim).max() <= 1e-10 * prim.rho.max()
    assert np.abs(on_cube - synthetic_density(cube, pts)).max() <= 1e-10 * prim.rho.max()


def test_evaluate_fourier_reproduces_grid_values(fields):
    prim = fields["fcc"]
    idx = np.array([[0, 0, 0], [3, 7, 11], [23, 1, 12]])
    pts = (idx / np.array(prim.shape)) @ prim.lattice
    assert np.allclose(evaluate_fourier(prim, pts), prim.rho[tuple(idx.T)], rtol=0, atol=1e-12)


def test_evaluate_fourier_even_grid_nyquist_is_symmetric_and_real():
    """A pure Nyquist cosine on an even grid interpolates as cos(pi n x), not exp(+-i pi n x)."""
    n = 8
    x = np.arange(n) / n
    rho = (2.0 + np.cos(np.pi * n * x))[:, None, None] * np.ones((1, 2, 2))
    field = ECDField(rho=rho, lattice=np.diag([2.0, 1.0, 1.0]))
    xs = np.array([0.03, 0.37, 0.61])
    got = evaluate_fourier(field, np.c_[2.0 * xs, np.zeros(3), np.zeros(3)])
    assert np.allclose(got, 2.0 + np.cos(np.pi * n * xs), atol=1e-12)


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_electron_count_preserved(fields, spectral, sitk, kind):
    prim = fields[kind]
    for cube, rtol in ((spectral[kind], 1e-12), (sitk[kind], 1e-5)):
        mult = cube.meta["to_conventional"]["multiplicity"]
        assert mult == {"fcc": 4, "bcc": 2}[kind]
        assert abs(cube.n_electrons / mult - prim.n_electrons) <= rtol * prim.n_electrons


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_peak_and_minimum_preserved(fields, spectral, sitk, kind):
    """Atoms sit on both grids, so the peak is sampled by both; the minimum may fall between
    sitk's cube points (spacing rule only), hence its looser tolerance."""
    prim = fields[kind]
    cube = spectral[kind]
    assert abs(cube.rho.max() - prim.rho.max()) <= 1e-12 * prim.rho.max()
    assert abs(cube.rho.min() - prim.rho.min()) <= 1e-12 * prim.rho.max()
    cube = sitk[kind]
    assert abs(cube.rho.max() - prim.rho.max()) <= 1e-6 * prim.rho.max()
    assert abs(cube.rho.min() - prim.rho.min()) <= 0.1 * prim.rho.min()
    assert cube.rho.min() >= prim.rho.min() - 1e-12  # trilinear never undershoots the data


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_sitk_converges_with_primitive_grid(kind):
    errors = []
    for n in (16, 32):
        prim = synthetic_field(kind, a=4.0, n=n, sigma=SIGMA)
        cube = to_conventional(prim, "sitk")
        idx, pts = _grid_points(cube, 2000)
        errors.append(np.abs(cube.rho[tuple(idx.T)] - synthetic_density(cube, pts)).max() / prim.rho.max())
    assert errors[0] > 1e-3  # trilinear is visibly inexact on the coarse grid ...
    assert errors[0] / errors[1] > 3.0  # ... and second order: ~4x smaller at half the spacing


def test_sitk_and_spectral_agree_on_same_grid(fields):
    prim = fields["fcc"]
    n = conventional_grid_size(prim, "sitk")
    spacing = 4.0 / n  # the fixture's cube edge is 4.0 Å
    s1 = to_conventional(prim, "sitk")
    s2 = to_conventional(prim, "spectral", spacing=spacing)
    assert s1.shape == s2.shape == (n, n, n)
    diff = np.abs(s1.rho - s2.rho).max() / prim.rho.max()
    assert 1e-5 < diff < 0.05
    # a coarse user grid folds plane waves together, yet its values stay exact at the grid points
    rec = s2.meta["to_conventional"]
    assert not rec["alias_free"] and n < 2 * rec["max_K"] + 1
    idx, pts = _grid_points(s2, 30)
    brute = evaluate_fourier(prim, _to_original_frame(s2, pts))
    assert np.abs(s2.rho[tuple(idx.T)] - brute).max() <= 1e-10 * prim.rho.max()


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_grid_spacing_rule(fields, spectral, sitk, kind):
    prim = fields[kind]
    h_min = prim.spacing.min()
    for cube in (spectral[kind], sitk[kind]):
        n = cube.shape[0]
        assert cube.shape == (n, n, n) and n % 2 == 0
        assert cube.spacing.max() <= h_min * (1 + 1e-12)
    rec = spectral[kind].meta["to_conventional"]
    assert spectral[kind].shape[0] >= 2 * rec["max_K"] + 1


@pytest.mark.parametrize("kind, factor", [("fcc", 4), ("bcc", 2)])
def test_conventional_atoms(fields, spectral, kind, factor):
    prim, cube = fields[kind], spectral[kind]
    assert len(cube.atoms) == factor * len(prim.atoms)
    frac = cube.atoms.get_scaled_positions(wrap=False)
    assert np.all(frac >= -1e-12) and np.all(frac < 1 - 1e-12)
    # no duplicates: all pairwise periodic distances are non-zero
    d = cube.atoms.get_all_distances(mic=True)
    assert np.all(d[~np.eye(len(d), dtype=bool)] > 0.5)
    assert np.allclose(cube.lattice, cube.lattice[0, 0] * np.eye(3))
    assert sorted(cube.atoms.get_chemical_symbols()) == sorted(prim.atoms.get_chemical_symbols() * factor)
    assert cube.meta["to_conventional"]["method"] == "spectral"
    assert "rule" in cube.meta["to_conventional"]


def test_conventional_atoms_carry_density_peaks(spectral):
    """Each conventional atom sits on a density peak of the cube field."""
    cube = spectral["fcc"]
    n, a = cube.shape[0], cube.lattice[0, 0]
    idx = np.rint(cube.atoms.get_scaled_positions() * n).astype(int) % n
    assert np.allclose(cube.atoms.get_scaled_positions() * n, np.rint(cube.atoms.get_scaled_positions() * n))
    values = cube.rho[tuple(idx.T)]
    assert np.all(values > 0.5 * cube.rho.max())
    assert a == pytest.approx(4.0)


@pytest.mark.parametrize("method", ["spectral", "sitk"])
def test_simple_cubic_passes_through_unchanged(method):
    prim = synthetic_field("sc", a=3.8, n=18, sigma=SIGMA)
    cube = to_conventional(prim, method)
    assert np.array_equal(cube.rho, prim.rho)
    assert cube.rho is not prim.rho
    assert np.allclose(cube.lattice, prim.lattice)
    assert len(cube.atoms) == len(prim.atoms)
    assert cube.meta["to_conventional"]["applied"].startswith("identity")


def test_simple_cubic_unequal_grid_is_resampled_exactly():
    prim = synthetic_field("sc", a=3.8, n=(18, 20, 24), sigma=SIGMA)
    cube = to_conventional(prim, "spectral")
    idx, pts = _grid_points(cube, 30)
    assert np.abs(cube.rho[tuple(idx.T)] - evaluate_fourier(prim, pts)).max() <= 1e-10 * prim.rho.max()
    assert cube.n_electrons == pytest.approx(prim.n_electrons, rel=1e-12)


def test_non_cubic_lattice_raises():
    tetragonal = np.diag([3.0, 3.0, 4.5])
    field = ECDField(rho=np.ones((6, 6, 9)), lattice=tetragonal, source="tetragonal-test")
    for method in ("spectral", "sitk"):
        with pytest.raises(FieldError, match="tetragonal-test"):
            to_conventional(field, method)


def test_bad_method_raises(fields):
    with pytest.raises(ValueError, match="method"):
        to_conventional(fields["fcc"], "cubic-spline")


def test_random_field_on_odd_and_even_grids():
    """Odd and even grids, random (non-smooth) data: the spectral result is the exact
    interpolant and keeps the count; the imaginary part cancels (symmetric Nyquist)."""
    rng = np.random.default_rng(5)
    base = synthetic_field("fcc", a=4.0, n=8, sigma=SIGMA)
    for shape in ((8, 8, 8), (7, 9, 8)):
        rho = rng.uniform(0.1, 1.0, size=shape)
        prim = ECDField(rho=rho, lattice=base.lattice, atoms=base.atoms, source="random")
        cube = to_conventional(prim, "spectral")
        assert cube.n_electrons / 4 == pytest.approx(prim.n_electrons, rel=1e-12)
        idx, pts = _grid_points(cube, 25)
        brute = evaluate_fourier(prim, _to_original_frame(cube, pts))
        assert np.abs(cube.rho[tuple(idx.T)] - brute).max() <= 1e-12 * rho.max()
        # the cube grid reproduces the primitive grid values where the grids coincide
        assert cube.rho[0, 0, 0] == pytest.approx(rho[0, 0, 0], abs=1e-12)


def _reoriented(prim: ECDField, perm=(0, 1, 2), rotation=None) -> ECDField:
    """The same crystal with its lattice vectors cyclically permuted and/or the frame rotated."""
    from ase import Atoms

    L = prim.lattice[list(perm)]
    rho = np.transpose(prim.rho, np.argsort(perm))  # new axis i runs along old axis perm[i]
    pos = prim.atoms.positions
    if rotation is not None:
        L, pos = L @ rotation.T, pos @ rotation.T
    atoms = Atoms(prim.atoms.get_chemical_symbols(), positions=pos, cell=L, pbc=True)
    atoms.set_array("electrons", prim.atoms.get_array("electrons"))
    return ECDField(rho=rho, lattice=L, atoms=atoms, source=prim.source + " (reoriented)", meta=dict(prim.meta))


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
@pytest.mark.parametrize("perm, angles", [((1, 2, 0), None), ((2, 0, 1), (0.3, -0.5, 1.1))])
def test_non_symmetric_T_and_rotated_frames(fields, kind, perm, angles):
    """Permuted lattice vectors give a non-symmetric T (T and T.T differ); a rotated
    frame gives a cube not along x, y, z. Both must still reproduce the analytic density."""
    from scipy.spatial.transform import Rotation

    rot = None if angles is None else Rotation.from_euler("xyz", angles).as_matrix()
    prim = _reoriented(fields[kind], perm, rot)
    T = np.array(to_conventional(prim, "spectral").meta["to_conventional"]["T"])
    assert not np.array_equal(T, T.T)
    for method, tol in (("spectral", 1e-10), ("sitk", 0.05)):
        cube = to_conventional(prim, method)
        idx, pts = _grid_points(cube, 500)
        err = np.abs(cube.rho[tuple(idx.T)] - synthetic_density(cube, pts)).max()
        assert err <= tol * prim.rho.max(), (method, err)
        assert sorted(cube.atoms.get_chemical_symbols()) == sorted(
            prim.atoms.get_chemical_symbols() * (4 if kind == "fcc" else 2))


def test_spectral_nyquist_corner_terms_are_symmetric():
    """A trigonometric polynomial with Nyquist terms on two and three axes at once
    (cos·cos·cos) is reproduced exactly on the cube; a one-sided Nyquist term would
    give cos(π n (f1 + f2 + f3)) instead."""
    base = synthetic_field("fcc", a=4.0, n=6, sigma=SIGMA)
    n = 6
    T = np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]])

    def analytic(f):
        c = np.cos(np.pi * n * f)
        return (3.0 + c[:, 0] * c[:, 1] * c[:, 2] + 0.5 * c[:, 0] * c[:, 2]
                + 0.3 * np.sin(2 * np.pi * (f[:, 1] - 2 * f[:, 2])))

    frac = np.stack(np.meshgrid(*[np.arange(n) / n] * 3, indexing="ij"), -1).reshape(-1, 3)
    prim = ECDField(rho=analytic(frac).reshape(n, n, n), lattice=base.lattice, atoms=base.atoms, source="nyquist")
    cube = to_conventional(prim, "spectral")
    m = cube.shape[0]
    u = np.stack(np.meshgrid(*[np.arange(m) / m] * 3, indexing="ij"), -1).reshape(-1, 3)
    assert np.abs(cube.rho.ravel() - analytic(u @ T)).max() < 1e-12
    pts = np.random.default_rng(0).uniform(0, 4.0, (5, 3))
    f = pts @ np.linalg.inv(prim.lattice)
    assert np.allclose(evaluate_fourier(prim, pts), analytic(f), atol=1e-12)
