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


# --------------------------------------------------------------------------- the rest of the format
#
# Files written the way VASP writes them: the real Li CHG that ASE ships, edited (scale
# line, extra images, extra data sets), and synthetic fields through write_chgcar plus
# VASP's spin-polarised layout: total | augmentation | per-atom moments (5E20.12) |
# grid line | magnetisation | augmentation, once per magnetisation component.

needs_li = pytest.mark.skipif(not ASE_LI_CHG.is_file(), reason=f"ASE test file not installed: {ASE_LI_CHG}")


def _vasp_aug(natoms: int, count: int = 6) -> str:
    """Augmentation occupancies as VASP writes them: ('A,2I4') header, then 5E15.7."""
    out = []
    for ion in range(1, natoms + 1):
        out.append(f"augmentation occupancies{ion:4d}{count:4d}")
        vals = [0.1 * ion * (k + 1) * (-1) ** k for k in range(count)]
        out += ["".join(f"{v:15.7E}" for v in vals[s : s + 5]) for s in range(0, count, 5)]
    return "\n".join(out) + "\n"


def _vasp_moments(moments) -> str:
    """The per-atom moment line(s) VASP writes before each magnetisation block (5E20.12)."""
    m = list(moments)
    return "\n".join("".join(f"{v:20.12E}" for v in m[s : s + 5]) for s in range(0, len(m), 5)) + "\n"


def _magnetic_chgcar(tmp_path, field: ECDField, components, name="CHGCAR", aug=True) -> pathlib.Path:
    """``field`` (total) followed by the magnetisation ``components`` (μB/Å³ arrays), VASP layout."""
    path = write_chgcar(field, tmp_path / name)
    natoms = len(field.atoms)
    grid_line = " " + " ".join(f"{n:4d}" for n in field.shape) + "\n"
    text = path.read_text() + (_vasp_aug(natoms) if aug else "")
    for c, m in enumerate(components):
        moments = 1.5 * np.cos(np.arange(natoms) + c)  # synthetic per-atom moments
        text += _vasp_moments(moments) + grid_line + _data_block(np.asarray(m).ravel(order="F") * field.volume)
        text += _vasp_aug(natoms) if aug else ""
    path.write_text(text)
    return path


def _li_image(rho_factor: float, a_factor: float, scale_line: str = "   1.00000000000000") -> str:
    """The real Li CHG with its lattice scaled by ``a_factor`` and its values by ``rho_factor``."""
    lines = ASE_LI_CHG.read_text().splitlines()
    out = [lines[0], scale_line]
    out += ["  " + " ".join(f"{x * a_factor:12.6f}" for x in map(float, lines[k].split())) for k in (2, 3, 4)]
    out += lines[5:11]
    for line in lines[11:]:
        out.append(" " + " ".join(f"{float(v) * rho_factor:#11.5G}" for v in line.split()))
    return "\n".join(out) + "\n"


# ---- 1. three scale factors


@needs_li
@pytest.mark.parametrize("scale_line", ["   1.00000000000000   1.10000000000000   0.90000000000000",
                                        "  0.8 1.3 1.05 ! x y z"])
def test_three_scale_factors_match_ase(tmp_path, scale_line):
    from ase.calculators.vasp import VaspChargeDensity
    from ase.io import read

    path = _write(tmp_path, _li_image(1.0, 1.0, scale_line), "CHG")
    f = read_chgcar(path)
    ref_atoms = read(path, format="vasp")
    np.testing.assert_allclose(f.lattice, ref_atoms.cell[:], rtol=0, atol=1e-12)
    sx, sy, sz = map(float, scale_line.split()[:3])
    assert f.volume == pytest.approx(ref_atoms.get_volume(), rel=1e-12)
    assert f.volume == pytest.approx(abs(np.linalg.det(np.loadtxt(ASE_LI_CHG, skiprows=2, max_rows=3))) * sx * sy * sz)
    ref = VaspChargeDensity(str(path))
    np.testing.assert_allclose(f.rho, ref.chg[-1], rtol=1e-13, atol=0)
    # the same numbers over a different volume: the electron count is unchanged
    assert f.n_electrons == pytest.approx(float(ref.chg[-1].mean() * ref_atoms.get_volume()), rel=1e-12)
    assert f.n_electrons == pytest.approx(1.0, abs=1e-3)
    assert f.meta["chgcar"]["scale"] == [sx, sy, sz]


def test_three_scale_factors_scale_cartesian_positions_per_axis(tmp_path):
    from ase.io.vasp import read_vasp_configuration  # ase.io.read takes the grid line for velocities here

    def read(path, format):
        with open(path) as fd:
            return read_vasp_configuration(fd)

    text = _tiny_text(
        lattice=((0.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 1.0, 0.0)),
        scale="1.5 2.0 2.5",
        species=("Zn", "S"),
        counts=(1, 1),
        positions=((0, 0, 0), (0.5, 0.5, 0.5)),
        mode="Cartesian",
    )
    path = _write(tmp_path, text)
    f, ref = read_chgcar(path), read(path, format="vasp")
    np.testing.assert_allclose(f.lattice, ref.cell[:], atol=1e-12)
    np.testing.assert_allclose(f.atoms.get_positions(), ref.get_positions(), atol=1e-12)
    np.testing.assert_allclose(f.atoms.get_positions()[1], [0.75, 1.0, 1.25], atol=1e-12)
    assert f.n_electrons == pytest.approx(12.5, rel=1e-12)  # values / V * V


@pytest.mark.parametrize(
    "scale, phrase",
    [("1.0 2.0", "1 or 3 scale factors"), ("1.0 -1.0 1.0", "positive"), ("0.0 1.0 1.0", "positive"), ("x", "1 or 3")],
)
def test_bad_scale_factors(tmp_path, scale, phrase):
    _assert_error(_write(tmp_path, _tiny_text(scale=scale)), phrase)


# ---- 2. spin-polarised and non-collinear files


def test_spin_polarised_magnetization_on_request(tmp_path):
    from ase.calculators.vasp import VaspChargeDensity

    field = _synthetic_field()
    mag = np.sin(np.arange(field.rho.size)).reshape(GRID) * 0.3  # synthetic, both signs, μB/Å³
    path = _magnetic_chgcar(tmp_path, field, [mag])

    total = read_chgcar(path)
    np.testing.assert_allclose(total.rho, field.rho, rtol=1e-10)
    assert total.meta["chgcar"] == {
        "which": "total", "spin": "collinear", "data_sets": 2, "image": 0, "n_images": 1, "scale": [1.0]
    }
    m = read_chgcar(path, which="magnetization")
    np.testing.assert_allclose(m.rho, mag, rtol=1e-10, atol=1e-12)
    assert m.n_electrons == pytest.approx(mag.mean() * field.volume, rel=1e-9)  # the cell's moment, μB
    assert m.meta["chgcar"]["which"] == "magnetization"
    assert "magnetization" in m.source
    np.testing.assert_allclose(m.lattice, total.lattice, atol=0)

    # ASE reads the same two data sets (its chgdiff is the magnetisation)
    ase_chg = VaspChargeDensity(str(path))
    assert ase_chg.is_spin_polarized()
    np.testing.assert_allclose(ase_chg.chgdiff[0], m.rho, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ase_chg.chg[0], total.rho, rtol=1e-12)

    for which in ("mx", "my", "mz"):
        _assert_which_error(path, which, "collinear")


@needs_li
def test_spin_polarised_chg_matches_ase(tmp_path):
    """CHG layout: total, grid line, magnetisation (no augmentation, no moments)."""
    from ase.calculators.vasp import VaspChargeDensity

    li = _li_image(1.0, 1.0)
    body = li.splitlines()[11:]
    mag = "\n".join(" " + " ".join(f"{-0.1 * float(v):#11.5G}" for v in line.split()) for line in body)
    path = _write(tmp_path, li + "   10   10   10\n" + mag + "\n", "CHG")
    ref = VaspChargeDensity(str(path))
    f, m = read_chgcar(path), read_chgcar(path, which="magnetization")
    np.testing.assert_allclose(f.rho, ref.chg[0], rtol=1e-13)
    np.testing.assert_allclose(m.rho, ref.chgdiff[0], rtol=1e-13)
    assert m.n_electrons == pytest.approx(-0.1 * f.n_electrons, rel=1e-4)  # %.5G rounding
    assert f.meta["chgcar"]["spin"] == "collinear"


def test_non_collinear_components(tmp_path):
    field = _synthetic_field()
    rng = np.random.default_rng(7)
    comps = [0.2 * rng.standard_normal(GRID) for _ in range(3)]  # synthetic mx, my, mz
    path = _magnetic_chgcar(tmp_path, field, comps)

    total = read_chgcar(path)
    np.testing.assert_allclose(total.rho, field.rho, rtol=1e-10)
    assert total.meta["chgcar"]["spin"] == "non-collinear"
    assert total.meta["chgcar"]["data_sets"] == 4
    for which, c in zip(("mx", "my", "mz"), comps):
        got = read_chgcar(path, which=which)
        np.testing.assert_allclose(got.rho, c, rtol=1e-10, atol=1e-12)
        assert got.meta["chgcar"]["which"] == which
    _assert_which_error(path, "magnetization", "mx")


@needs_li
def test_magnetization_of_a_non_spin_file_is_refused():
    _assert_which_error(ASE_LI_CHG, "magnetization", "not spin-polarised")
    f = read_chgcar(ASE_LI_CHG)
    assert f.meta["chgcar"]["spin"] == "none" and f.meta["chgcar"]["data_sets"] == 1


def test_unknown_which_and_image_arguments(tmp_path):
    path = _write(tmp_path, _tiny_text())
    with pytest.raises(ValueError, match="which"):
        read_chgcar(path, which="up")
    with pytest.raises(ValueError, match="image"):
        read_chgcar(path, image="last")


def _assert_which_error(path, which, phrase):
    with pytest.raises(FileFormatError) as info:
        read_chgcar(path, which=which)
    msg = str(info.value)
    assert str(path) in msg and phrase in msg, msg


# ---- 3. multi-image CHG


@needs_li
def test_multi_image_chg_returns_last_image_by_default(tmp_path):
    """Three images as VASP appends them to CHG (each a full POSCAR block + grid + data)."""
    from ase.calculators.vasp import VaspChargeDensity

    factors = [(1.0, 1.0), (1.1, 0.99), (1.2, 0.98)]  # (values, lattice) per image: a shrinking cell
    path = _write(tmp_path, "".join(_li_image(r, a) for r, a in factors), "CHG")
    ref = VaspChargeDensity(str(path))
    assert len(ref.chg) == 3

    last = read_chgcar(path)
    np.testing.assert_allclose(last.rho, ref.chg[2], rtol=1e-13)
    np.testing.assert_allclose(last.lattice, ref.atoms[2].cell[:], atol=1e-12)
    assert last.meta["chgcar"]["n_images"] == 3 and last.meta["chgcar"]["image"] == 2
    assert last.n_electrons == pytest.approx(1.2, abs=2e-3)

    for image, k in ((0, 0), (1, 1), (-3, 0), (-2, 1), (2, 2)):
        f = read_chgcar(path, image=image)
        np.testing.assert_allclose(f.rho, ref.chg[k], rtol=1e-13)
        np.testing.assert_allclose(f.lattice, ref.atoms[k].cell[:], atol=1e-12)
        assert f.meta["chgcar"]["image"] == k
    for image in (3, -4):
        with pytest.raises(FileFormatError, match="holds 3 image"):
            read_chgcar(path, image=image)


def test_multi_image_spin_polarised_chg_written_by_ase(tmp_path):
    from ase.calculators.vasp import VaspChargeDensity

    out = VaspChargeDensity(None)
    for k in range(2):
        atoms = bulk("Fe", "bcc", a=2.87 - 0.02 * k)
        out.atoms.append(atoms)
        rng = np.random.default_rng(k)
        out.chg.append(1.0 + rng.random((4, 5, 6)))
        out.chgdiff.append(0.1 * rng.standard_normal((4, 5, 6)))
    path = tmp_path / "CHG"
    out.write(str(path), format="chg")
    for k in (0, 1):
        f = read_chgcar(path, image=k)
        m = read_chgcar(path, image=k, which="magnetization")
        np.testing.assert_allclose(f.rho, out.chg[k], rtol=1e-4)  # CHG keeps 5 digits
        np.testing.assert_allclose(m.rho, out.chgdiff[k], rtol=1e-4, atol=1e-5)
        assert f.meta["chgcar"] == {
            "which": "total", "spin": "collinear", "data_sets": 2, "image": k, "n_images": 2, "scale": [1.0]
        }
    assert read_chgcar(path).volume == pytest.approx(out.atoms[1].get_volume(), rel=1e-9)


# ---- 4. damaged later data sets and images


def _spin_file(tmp_path, aug=True) -> tuple[pathlib.Path, str]:
    field = _synthetic_field()
    path = _magnetic_chgcar(tmp_path, field, [-0.5 * field.rho], aug=aug)
    return path, path.read_text()


@pytest.mark.parametrize("aug", [True, False], ids=["CHGCAR", "CHG"])
def test_truncated_magnetization_block(tmp_path, aug):
    path, text = _spin_file(tmp_path, aug)
    lines = text.splitlines()
    if aug:  # the magnetisation block loses its last line, and its occupancies are gone
        first_aug = [k for k, line in enumerate(lines) if line.startswith("augmentation occupancies   1 ")]
        lines = lines[: first_aug[1] - 1]
    else:
        lines = lines[:-1]
    path.write_text("\n".join(lines) + "\n")
    msg = _assert_error(path, "truncated")
    assert "data set 2" in msg
    # the total density alone is not returned either
    with pytest.raises(FileFormatError):
        read_chgcar(path, which="total")


@pytest.mark.parametrize("token", ["NaN", "-Infinity", "*****************"])
def test_damaged_value_in_magnetization_block(tmp_path, token):
    path, text = _spin_file(tmp_path, aug=False)
    lines = text.splitlines()
    parts = lines[-3].split()
    parts[1] = token
    lines[-3] = " " + " ".join(parts)
    path.write_text("\n".join(lines) + "\n")
    msg = _assert_error(path, "nan or inf", "non-numeric")
    assert "data set 2" in msg


def test_truncated_augmentation_after_the_last_block(tmp_path):
    path, text = _spin_file(tmp_path, aug=True)
    path.write_text("\n".join(text.splitlines()[:-1]) + "\n")  # the last ion's occupancies lose a line
    _assert_error(path, "augmentation occupancies truncated")


def test_three_data_sets_refused(tmp_path):
    field = _synthetic_field()
    path = _magnetic_chgcar(tmp_path, field, [field.rho, field.rho])
    _assert_error(path, "3 data sets")


@needs_li
def test_multi_image_chg_with_a_truncated_last_image(tmp_path):
    text = _li_image(1.0, 1.0) + _li_image(1.1, 0.99)
    text = "\n".join(text.splitlines()[:-3]) + "\n"  # VASP killed while appending image 2
    path = _write(tmp_path, text, "CHG")
    msg = _assert_error(path, "truncated")
    assert "image 2" in msg
    with pytest.raises(FileFormatError):
        read_chgcar(path, image=0)  # the file is damaged, whichever image is asked for
    # cut inside the second header
    path.write_text(_li_image(1.0, 1.0) + "\n".join(_li_image(1.1, 0.99).splitlines()[:7]) + "\n")
    _assert_error(path, "image 2")


@needs_li
def test_images_with_different_data_sets_refused(tmp_path):
    li2 = _li_image(1.1, 0.99)
    mag = "   10   10   10\n" + "\n".join(li2.splitlines()[11:]) + "\n"
    _assert_error(_write(tmp_path, _li_image(1.0, 1.0) + li2 + mag, "CHG"), "image 2", "data sets")
