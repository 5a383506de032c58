"""Tests of :mod:`leanecd.io`: reading and writing VASP CHG/CHGCAR files.

Every field built here is synthetic (made up in the test, no DFT behind it) unless
it comes from the real VASP file ASE ships for its own tests (``Li/CHG``).
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from leanecd.errors import FileFormatError
from leanecd.io import ECDField, read_chgcar, write_chgcar

GRID = (6, 8, 10)  # three different sizes, so any axis mix-up changes the shape or order


# --------------------------------------------------------------------------- helpers


def _heusler_primitive() -> Atoms:
    """Synthetic FCC-primitive (non-orthogonal) cell with 3 species in non-alphabetical order."""
    a = 5.9
    cell = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    atoms = Atoms(
        ["Mn", "Al", "Cu", "Cu"],
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]],
        cell=cell,
        pbc=True,
    )
    return atoms


def _synthetic_field(shape=GRID, atoms: Atoms | None = None) -> ECDField:
    """A synthetic field with a distinct value at every voxel (e/Å³)."""
    atoms = atoms if atoms is not None else _heusler_primitive()
    rng = np.random.default_rng(42)
    rho = 0.01 + rng.random(shape) + np.arange(np.prod(shape)).reshape(shape) * 1e-3
    return ECDField(rho=rho, lattice=atoms.cell[:], atoms=atoms, source="synthetic: random + ramp")


def _header(
    lattice=((2.0, 0, 0), (0, 2.0, 0), (0, 0, 2.0)),
    species=("Cu",),
    counts=(1,),
    positions=((0.0, 0.0, 0.0),),
    scale="1.0",
    mode="Direct",
    grid=(2, 3, 4),
) -> str:
    lines = ["synthetic test file", f"  {scale}"]
    lines += ["  " + " ".join(f"{x:.10f}" for x in row) for row in lattice]
    lines += ["  " + " ".join(species), "  " + " ".join(str(c) for c in counts), mode]
    lines += ["  " + " ".join(f"{x:.10f}" for x in p) for p in positions]
    lines += ["", "  " + " ".join(str(n) for n in grid)]
    return "\n".join(lines) + "\n"


def _data_block(values, per_line: int = 5) -> str:
    values = list(values)
    rows = [" " + " ".join(f"{v:.11E}" for v in values[s : s + per_line]) for s in range(0, len(values), per_line)]
    return "\n".join(rows) + "\n"


def _tiny_text(values=None, grid=(2, 3, 4), **header) -> str:
    """Hand-written 2x3x4 CHGCAR: values 1..24 in file order (x fastest), cubic 2 Å cell."""
    if values is None:
        values = np.arange(1, 25, dtype=float)
    return _header(grid=grid, **header) + _data_block(values)


def _write(tmp_path, text: str, name: str = "CHGCAR") -> pathlib.Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _assert_error(path, *phrases):
    """read_chgcar(path) must raise FileFormatError naming the file and a phrase."""
    with pytest.raises(FileFormatError) as info:
        read_chgcar(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    assert any(ph.lower() in msg.lower() for ph in phrases), msg
    return msg


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("per_line", [5, 3, 10])
def test_round_trip_non_orthogonal_6x8x10(tmp_path, per_line):
    field = _synthetic_field()
    path = write_chgcar(field, tmp_path / "rt.CHGCAR", per_line=per_line)
    back = read_chgcar(path)

    assert back.shape == GRID
    # %.11E keeps 12 significant digits: relative error <= 5e-12
    np.testing.assert_allclose(back.rho, field.rho, rtol=1e-10, atol=0)
    np.testing.assert_allclose(back.lattice, field.lattice, rtol=0, atol=1e-12)
    assert back.atoms.get_chemical_symbols() == ["Mn", "Al", "Cu", "Cu"]  # species order kept, not sorted
    np.testing.assert_allclose(back.atoms.get_positions(), field.atoms.get_positions(), atol=1e-12)
    assert back.n_electrons == pytest.approx(field.n_electrons, rel=1e-10)
    assert back.source == str(path)


def test_round_trip_groups_interleaved_species(tmp_path):
    """VASP needs atoms grouped by species; the writer groups them (first-appearance order)."""
    atoms = bulk("NaCl", "rocksalt", a=5.64) * (1, 1, 2)  # Na Cl Na Cl
    field = _synthetic_field((4, 4, 6), atoms=atoms)
    back = read_chgcar(write_chgcar(field, tmp_path / "CHGCAR"))
    assert back.atoms.get_chemical_symbols() == ["Na", "Na", "Cl", "Cl"]
    order = [0, 2, 1, 3]
    np.testing.assert_allclose(back.atoms.get_positions(), atoms.get_positions()[order], atol=1e-12)
    np.testing.assert_allclose(back.rho, field.rho, rtol=1e-10)


# --------------------------------------------------------------------------- axis order


def test_field_varying_along_axis0_stays_on_axis0(tmp_path):
    atoms = _heusler_primitive()
    i = np.arange(GRID[0])[:, None, None]
    rho = np.broadcast_to(1.0 + 0.1 * i, GRID).copy()  # synthetic: varies along a1 only
    field = ECDField(rho=rho, lattice=atoms.cell[:], atoms=atoms, source="synthetic: ramp along a1")
    back = read_chgcar(write_chgcar(field, tmp_path / "CHGCAR"))
    assert back.shape == GRID
    # constant over axes 1 and 2, changing over axis 0
    assert np.ptp(back.rho, axis=(1, 2)).max() < 1e-10
    np.testing.assert_allclose(back.rho[:, 0, 0], 1.0 + 0.1 * np.arange(GRID[0]), rtol=1e-10)


def test_hand_written_file_fortran_order(tmp_path):
    path = _write(tmp_path, _tiny_text())
    f = read_chgcar(path)
    assert f.shape == (2, 3, 4)
    assert f.volume == pytest.approx(8.0)
    for i in range(2):
        for j in range(3):
            for k in range(4):
                assert f.rho[i, j, k] == pytest.approx((1 + i + 2 * j + 6 * k) / 8.0, rel=1e-14)
    assert f.n_electrons == pytest.approx(np.mean(np.arange(1, 25)), rel=1e-14)


# --------------------------------------------------------------------------- a real VASP file

ASE_LI_CHG = pathlib.Path(__import__("ase").__file__).parent / "test/testdata/vasp/Li/CHG"


@pytest.mark.skipif(not ASE_LI_CHG.is_file(), reason=f"ASE test file not installed: {ASE_LI_CHG}")
def test_real_vasp_li_chg_matches_ase():
    from ase.calculators.vasp import VaspChargeDensity

    f = read_chgcar(ASE_LI_CHG)
    assert f.shape == (10, 10, 10)
    assert f.atoms.get_chemical_symbols() == ["Li"]
    # BCC Li, 1 valence electron (Li PAW, 1s frozen): observed 0.99999873
    assert f.n_electrons == pytest.approx(1.0, abs=1e-3)

    ase_chg = VaspChargeDensity(str(ASE_LI_CHG))
    # ASE reads chg[ix, iy, iz] with ix fastest in the file (same convention as ours),
    # divided by atoms.get_volume(): the same e/Å³ array.
    ref = ase_chg.chg[0]
    assert ref.shape == f.rho.shape
    np.testing.assert_allclose(ase_chg.atoms[0].cell[:], f.lattice, atol=1e-12)
    # observed: max |difference| = 0.0 (both parse the same decimal strings)
    assert np.max(np.abs(ref - f.rho)) <= 1e-14 * np.max(np.abs(ref))


# --------------------------------------------------------------------------- header variants


def test_negative_scale_is_the_volume(tmp_path):
    # unit cube vectors, scale -27 -> 3 Å cube (volume 27 Å³)
    text = _tiny_text(lattice=((1, 0, 0), (0, 1, 0), (0, 0, 1)), scale="-27.0")
    f = read_chgcar(_write(tmp_path, text))
    assert f.volume == pytest.approx(27.0, rel=1e-12)
    np.testing.assert_allclose(f.lattice, 3.0 * np.eye(3), atol=1e-12)
    assert f.rho[1, 2, 3] == pytest.approx(24.0 / 27.0, rel=1e-12)
    assert f.n_electrons == pytest.approx(12.5, rel=1e-12)


def test_positive_scale_multiplies_lattice_and_cartesian_positions(tmp_path):
    lattice = ((0.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 1.0, 0.0))  # FCC primitive, a = 2 (times scale)
    text = _tiny_text(
        lattice=lattice,
        scale="1.5",
        species=("Zn", "S"),
        counts=(1, 1),
        positions=((0, 0, 0), (0.5, 0.5, 0.5)),  # Cartesian, in units of the scale
        mode="Cartesian",
    )
    f = read_chgcar(_write(tmp_path, text))
    np.testing.assert_allclose(f.lattice, 1.5 * np.array(lattice), atol=1e-12)
    np.testing.assert_allclose(f.atoms.get_positions()[1], [0.75, 0.75, 0.75], atol=1e-12)
    np.testing.assert_allclose(f.atoms.get_scaled_positions()[1], [0.25, 0.25, 0.25], atol=1e-12)
    assert f.volume == pytest.approx(2 * 1.5**3, rel=1e-12)


def test_negative_scale_with_cartesian_positions(tmp_path):
    text = _tiny_text(
        lattice=((1, 0, 0), (0, 1, 0), (0, 0, 1)),
        scale="-8.0",
        species=("Cs", "Cl"),
        counts=(1, 1),
        positions=((0, 0, 0), (0.5, 0.5, 0.5)),
        mode="cartesian",
    )
    f = read_chgcar(_write(tmp_path, text))
    np.testing.assert_allclose(f.atoms.get_positions()[1], [1.0, 1.0, 1.0], atol=1e-12)
    assert f.atoms.get_chemical_symbols() == ["Cs", "Cl"]


def test_vasp64_species_names_with_potcar_suffix(tmp_path):
    """VASP 6.4 writes species such as 'Li_sv/<hash>'; the element is the part before '_' or '/'."""
    text = _tiny_text(species=("Li_sv/1a2b3c4d", "F"), counts=(1, 1), positions=((0, 0, 0), (0.5, 0.5, 0.5)))
    f = read_chgcar(_write(tmp_path, text))
    assert f.atoms.get_chemical_symbols() == ["Li", "F"]


def test_selective_dynamics_line_is_skipped(tmp_path):
    text = _tiny_text().replace("Direct\n", "Selective dynamics\nDirect\n").replace(
        "0.0000000000 0.0000000000 0.0000000000\n", "0.0000000000 0.0000000000 0.0000000000 T T F\n", 1
    )
    f = read_chgcar(_write(tmp_path, text))
    assert f.rho[1, 2, 3] == pytest.approx(24 / 8.0)


# --------------------------------------------------------------------------- spin and augmentation

AUG = (
    "augmentation occupancies   1  4\n"
    "  0.1234567E+00 -0.2345678E-01  0.3456789E-02  0.4567890E-03\n"
    "augmentation occupancies   2  6\n"
    "  0.5000000E+00  0.6000000E+00  0.7000000E+00  0.8000000E+00  0.9000000E+00\n"
    "  0.1000000E+01\n"
)


def test_augmentation_occupancies_skipped(tmp_path):
    text = _tiny_text(species=("Na", "Cl"), counts=(1, 1), positions=((0, 0, 0), (0.5, 0.5, 0.5))) + AUG
    f = read_chgcar(_write(tmp_path, text))
    assert f.rho[1, 2, 3] == pytest.approx(24 / 8.0)
    assert f.n_electrons == pytest.approx(12.5)


def test_spin_polarised_returns_total_density(tmp_path):
    field = _synthetic_field()
    path = write_chgcar(field, tmp_path / "CHGCAR")
    text = path.read_text()
    grid_line = " " + " ".join(f"{n:4d}" for n in GRID)
    magnetisation = -0.5 * field.rho.ravel(order="F") * field.volume  # synthetic, distinct from the total
    moments = "  0.150000000000E+01  0.000000000000E+00 -0.150000000000E+01  0.000000000000E+00\n"  # 4 atoms
    # total | its augmentation | per-atom moments | grid line again | magnetisation | its augmentation
    path.write_text(text + AUG + moments + grid_line + "\n" + _data_block(magnetisation) + AUG)
    f = read_chgcar(path)
    np.testing.assert_allclose(f.rho, field.rho, rtol=1e-10)
    assert f.n_electrons == pytest.approx(field.n_electrons, rel=1e-10)


def test_spin_polarised_chg_without_augmentation(tmp_path):
    """CHG-style: the magnetic-moment line(s) follow the total block directly, even when wrapped."""
    text = _tiny_text()
    # 1 atom -> one moment; then the grid line and a magnetisation block
    f = read_chgcar(_write(tmp_path, text + "  0.25E+01\n  2 3 4\n" + _data_block(-np.arange(24.0))))
    assert f.rho[1, 2, 3] == pytest.approx(3.0)

    # 7 atoms with moments wrapped over two lines (5 + 2)
    pos = [(k / 7, 0, 0) for k in range(7)]
    text7 = _tiny_text(species=("Fe",), counts=(7,), positions=pos)
    moments = "  0.1E+01 0.1E+01 0.1E+01 0.1E+01 0.1E+01\n  0.1E+01 0.1E+01\n"
    f7 = read_chgcar(_write(tmp_path, text7 + moments + "  2 3 4\n" + _data_block(np.zeros(24)), "CHG7"))
    assert f7.rho[1, 2, 3] == pytest.approx(3.0)


# --------------------------------------------------------------------------- bad input


def test_truncated_data(tmp_path):
    text = _tiny_text()
    text = "\n".join(text.splitlines()[:-1]) + "\n"  # drop the last data line (4 values)
    _assert_error(_write(tmp_path, text), "truncated")


def test_grid_counts_too_many(tmp_path):
    # header says 2x3x5 = 30 values, the file holds 24
    _assert_error(_write(tmp_path, _tiny_text(grid=(2, 3, 5))), "truncated")


def test_grid_counts_too_few_mid_line(tmp_path):
    # header says 2x3x3 = 18, the file holds 24: the 18th value is mid-line
    _assert_error(_write(tmp_path, _tiny_text(grid=(2, 3, 3))), "more values", "wrong grid")


def test_grid_counts_too_few_on_line_boundary(tmp_path):
    # header says 2x5x2 = 20, the file holds 24 (20 = 4 full lines): a partial line follows
    _assert_error(_write(tmp_path, _tiny_text(grid=(2, 5, 2))), "continue past", "wrong grid")


def test_grid_counts_too_few_full_lines(tmp_path):
    values = np.arange(1, 31, dtype=float)  # 30 values, 6 full lines
    _assert_error(_write(tmp_path, _tiny_text(values=values, grid=(2, 5, 2))), "continue past", "wrong grid")


def test_non_numeric_token(tmp_path):
    text = _tiny_text().replace("1.20000000000E+01", "1.2000000000abc", 1)
    msg = _assert_error(_write(tmp_path, text), "non-numeric")
    assert "abc" in msg


def test_fortran_overflow_stars_are_non_numeric(tmp_path):
    text = _tiny_text().replace("1.20000000000E+01", "*****************", 1)
    _assert_error(_write(tmp_path, text), "non-numeric")


@pytest.mark.parametrize("token", ["NaN", "nan", "Infinity", "-inf"])
def test_nan_and_inf_in_data(tmp_path, token):
    text = _tiny_text().replace("1.20000000000E+01", token, 1)
    _assert_error(_write(tmp_path, text), "nan or inf")


def test_zero_scale_gives_zero_volume(tmp_path):
    _assert_error(_write(tmp_path, _tiny_text(scale="0.0")), "volume")


def test_degenerate_lattice(tmp_path):
    lattice = ((1.0, 0, 0), (2.0, 0, 0), (0, 0, 1.0))  # a2 parallel to a1
    _assert_error(_write(tmp_path, _tiny_text(lattice=lattice)), "degenerate", "volume")


def test_degenerate_lattice_with_negative_scale(tmp_path):
    lattice = ((1.0, 0, 0), (2.0, 0, 0), (0, 0, 1.0))
    _assert_error(_write(tmp_path, _tiny_text(lattice=lattice, scale="-10")), "volume")


def test_nan_in_lattice(tmp_path):
    lattice = ((float("nan"), 0, 0), (0, 1.0, 0), (0, 0, 1.0))
    _assert_error(_write(tmp_path, _tiny_text(lattice=lattice)), "nan or inf")


def test_empty_file(tmp_path):
    _assert_error(_write(tmp_path, ""), "empty")


def test_blank_file(tmp_path):
    _assert_error(_write(tmp_path, "\n\n   \n"), "empty")


def test_directory(tmp_path):
    d = tmp_path / "CHGCAR"
    d.mkdir()
    _assert_error(d, "directory")


def test_missing_file(tmp_path):
    _assert_error(tmp_path / "does-not-exist.CHGCAR", "no such file")


def test_binary_file(tmp_path):
    p = tmp_path / "CHGCAR"
    p.write_bytes(b"\x89HDF\r\n\x1a\n\xff\xfe" * 10)
    _assert_error(p, "not a text file")


def test_header_only(tmp_path):
    text = _header()  # ends at the grid line
    _assert_error(_write(tmp_path, text), "truncated")


def test_missing_grid_line(tmp_path):
    text = _header().rsplit("\n", 2)[0] + "\n"  # header without the grid line
    _assert_error(_write(tmp_path, text), "grid line", "ends before")


def test_vasp4_header_rejected(tmp_path):
    text = _tiny_text().replace("  Cu\n", "", 1)
    _assert_error(_write(tmp_path, text), "species")


def test_counts_do_not_match_species(tmp_path):
    text = _tiny_text(species=("Na", "Cl"), counts=(1,))
    _assert_error(_write(tmp_path, text), "do not match")


def test_unknown_element(tmp_path):
    _assert_error(_write(tmp_path, _tiny_text(species=("Xx",))), "species")


def test_positions_cut_short(tmp_path):
    text = _tiny_text(species=("Na",), counts=(3,), positions=((0, 0, 0),))
    with pytest.raises(FileFormatError) as info:
        read_chgcar(_write(tmp_path, text))
    assert str(tmp_path / "CHGCAR") in str(info.value)


# --------------------------------------------------------------------------- jarvis-tools


def test_jarvis_chgcar_reads_in_c_order(tmp_path):
    """jarvis-tools' Chgcar reshapes the x-fastest data in C order (the io docstring's warning)."""
    try:
        from jarvis.io.vasp.outputs import Chgcar
    except Exception as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"jarvis-tools not importable: {exc}")

    field = _synthetic_field()
    path = write_chgcar(field, tmp_path / "CHGCAR")
    ours = read_chgcar(path).rho
    theirs = np.asarray(Chgcar(filename=str(path)).chg)[0]

    assert theirs.shape == ours.shape == GRID  # same shape ...
    assert not np.allclose(theirs, ours)  # ... different voxel order
    # exactly: the file order reshaped in C order
    np.testing.assert_allclose(theirs.ravel(order="C"), ours.ravel(order="F"), rtol=1e-10)
    assert np.allclose(theirs.sum(), ours.sum())  # same numbers, only moved around

    # cubic grid: C-order reshape is a transpose (x <-> z)
    cubic = _synthetic_field((4, 4, 4))
    p2 = write_chgcar(cubic, tmp_path / "CHGCAR_cubic")
    t2 = np.asarray(Chgcar(filename=str(p2)).chg)[0]
    np.testing.assert_allclose(t2, read_chgcar(p2).rho.transpose(2, 1, 0), rtol=1e-10)


def test_grid_counts_too_many_before_augmentation(tmp_path):
    # header says 2x3x5 = 30, the block holds 24 and augmentation occupancies follow
    text = _tiny_text(grid=(2, 3, 5)) + AUG
    _assert_error(_write(tmp_path, text), "truncated")


def test_grid_counts_too_few_in_spin_polarised_chg(tmp_path):
    # 2x5x2 = 20 of 24 values, then a moment line and the (wrong) grid line: not a moment block
    text = _tiny_text(grid=(2, 5, 2)) + "  0.25E+01\n  2 5 2\n" + _data_block(np.zeros(24))
    _assert_error(_write(tmp_path, text), "continue past", "wrong grid")
