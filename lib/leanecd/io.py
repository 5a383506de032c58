"""ECD fields and VASP CHG/CHGCAR files.

A CHGCAR stores ``rho * V_cell`` on a periodic grid, x index fastest (Fortran
order). :func:`read_chgcar` divides by the cell volume so that
:attr:`ECDField.rho` is in electrons/Å³ and ``rho.mean() * volume`` is the number
of electrons in the cell.

Note: jarvis-tools' ``Chgcar`` reshapes the data in C order, which swaps the x and z
axes on cubic grids and scrambles non-cubic ones; this reader does not.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field as dc_field
from pathlib import Path

import numpy as np

from .errors import FieldError, FileFormatError

__all__ = ["ECDField", "read_chgcar", "write_chgcar"]


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

    def with_rho(self, rho: np.ndarray, **changes) -> "ECDField":
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


# --------------------------------------------------------------------------- reading


def _floats(path, line: str, lineno: int, what: str, count: int | None = None) -> list[float]:
    parts = line.split()
    if count is not None and len(parts) < count:
        raise FileFormatError(path, f"line {lineno}: expected {count} numbers for {what}, got {line.strip()!r}")
    try:
        vals = [float(p) for p in (parts[:count] if count else parts)]
    except ValueError:
        raise FileFormatError(path, f"line {lineno}: non-numeric value in {what}: {line.strip()!r}") from None
    if not all(np.isfinite(vals)):
        raise FileFormatError(path, f"line {lineno}: NaN or inf in {what}: {line.strip()!r}")
    return vals


def _is_int_line(line: str, count: int | None = None) -> bool:
    parts = line.split()
    if not parts or (count is not None and len(parts) != count):
        return False
    try:
        [int(p) for p in parts]
    except ValueError:
        return False
    return True


def read_chgcar(path: str | os.PathLike) -> ECDField:
    """Read a VASP 5 CHG or CHGCAR file into an :class:`ECDField` (rho in e/Å³).

    Spin-polarised and non-collinear files: the first data set, the total density,
    is returned. Augmentation occupancies and later data sets are skipped. Raises
    :class:`~leanecd.errors.FileFormatError` naming the file and the problem for
    malformed input; nothing is reshaped or clipped to make a file fit.
    """
    from ase import Atoms

    path = Path(path)
    if path.is_dir():
        raise FileFormatError(path, "is a directory, not a CHGCAR file")
    if not path.exists():
        raise FileFormatError(path, "no such file")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise FileFormatError(path, "not a text file (cannot decode as UTF-8)") from None
    lines = text.splitlines()
    if not text.strip():
        raise FileFormatError(path, "file is empty")
    if len(lines) < 9:
        raise FileFormatError(path, f"too short for a CHGCAR header ({len(lines)} lines)")

    scale = _floats(path, lines[1], 2, "the scale factor", 1)[0]
    cell = np.array([_floats(path, lines[i], i + 1, f"lattice vector a{i - 1}", 3) for i in (2, 3, 4)])
    det = np.linalg.det(cell)
    if scale < 0:  # VASP: a negative scale is the target cell volume
        if det <= 0:
            raise FileFormatError(path, f"lattice vectors give non-positive volume {det:.6g} Å³")
        s_eff = (-scale / det) ** (1.0 / 3.0)
    else:
        s_eff = scale
    cell *= s_eff
    volume = np.linalg.det(cell)
    if not volume > 0:
        raise FileFormatError(path, f"cell volume is {volume:.6g} Å³ (zero/negative scale or degenerate lattice)")

    # VASP 5: a line of species names, then counts. VASP 4 files lack the names.
    i = 5
    species_tokens = lines[i].split()
    if species_tokens and not _is_int_line(lines[i]):
        # VASP 6.4 may write POTCAR labels such as "Li_sv/1a2b3c4d": keep the element.
        species = [t.split("/")[0].split("_")[0] for t in species_tokens]
        i += 1
    else:
        raise FileFormatError(path, "line 6: no species names (VASP 4 format is not supported; add the names)")
    if not _is_int_line(lines[i]):
        raise FileFormatError(path, f"line {i + 1}: expected atom counts, got {lines[i].strip()!r}")
    counts = [int(c) for c in lines[i].split()]
    if len(counts) != len(species) or any(c < 0 for c in counts) or sum(counts) == 0:
        raise FileFormatError(path, f"line {i + 1}: counts {counts} do not match species {species}")
    i += 1
    if lines[i].strip()[:1].lower() == "s":  # Selective dynamics
        i += 1
    mode = lines[i].strip()[:1].lower()
    if mode not in ("d", "c", "k"):
        raise FileFormatError(path, f"line {i + 1}: expected 'Direct' or 'Cartesian', got {lines[i].strip()!r}")
    i += 1
    natoms = sum(counts)
    if len(lines) < i + natoms:
        raise FileFormatError(path, "file ends inside the atomic positions")
    pos = np.array([_floats(path, lines[i + k], i + k + 1, "an atomic position", 3) for k in range(natoms)])
    i += natoms
    symbols = [s for s, c in zip(species, counts) for _ in range(c)]
    try:
        if mode == "d":
            atoms = Atoms(symbols, scaled_positions=pos, cell=cell, pbc=True)
        else:
            atoms = Atoms(symbols, positions=pos * s_eff, cell=cell, pbc=True)
    except (KeyError, ValueError) as exc:
        raise FileFormatError(path, f"bad species name in {species}: {exc}") from None

    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines):
        raise FileFormatError(path, "file ends before the grid line")
    if not _is_int_line(lines[i], 3):
        raise FileFormatError(path, f"line {i + 1}: expected the grid line 'n1 n2 n3', got {lines[i].strip()!r}")
    grid = tuple(int(n) for n in lines[i].split())
    if min(grid) < 1:
        raise FileFormatError(path, f"line {i + 1}: grid counts must be positive, got {grid}")
    i += 1

    n = grid[0] * grid[1] * grid[2]
    values: list[str] = []
    start = i
    while len(values) < n and i < len(lines):
        if lines[i].lstrip().lower().startswith("augmentation"):
            break  # a CHGCAR's next section: the block is short
        values.extend(lines[i].split())
        i += 1
    if len(values) < n:
        raise FileFormatError(
            path, f"data block truncated: grid {grid} needs {n} values, found {len(values)} (from line {start + 1})"
        )
    if len(values) > n:
        raise FileFormatError(
            path, f"line {i}: more values than the grid {grid} holds ({n}); wrong grid counts?"
        )
    # What follows the data must not continue the block. Allowed: nothing, text
    # (augmentation occupancies, the next CHG header), the grid line again, or the
    # per-atom magnetic moments of a spin-polarised file (natoms numbers, possibly
    # wrapped over several lines) followed by the grid line again.
    j = _next_nonblank(lines, i)
    if j < len(lines) and _all_numbers(lines[j]) and not _is_grid_line(lines[j], grid):
        count, k = 0, j
        while k < len(lines) and count < natoms and (not lines[k].strip() or _all_numbers(lines[k])):
            count += len(lines[k].split())
            k += 1
        k = _next_nonblank(lines, k)
        if count != natoms or k >= len(lines) or not _is_grid_line(lines[k], grid):
            raise FileFormatError(
                path, f"line {j + 1}: data continue past the grid {grid} ({n} values); wrong grid counts?"
            )
    try:
        data = np.array(values, dtype=np.float64)
    except ValueError:
        bad = next(v for v in values if not _is_number(v))
        raise FileFormatError(path, f"non-numeric value {bad!r} in the data block (from line {start + 1})") from None
    if not np.all(np.isfinite(data)):
        raise FileFormatError(path, "NaN or inf in the data block")
    rho = data.reshape(grid, order="F") / volume
    return ECDField(rho=rho, lattice=cell, atoms=atoms, source=str(path), meta={"comment": lines[0].strip()})


def _next_nonblank(lines: list[str], i: int) -> int:
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i


def _all_numbers(line: str) -> bool:
    parts = line.split()
    return bool(parts) and all(_is_number(t) for t in parts)


def _is_grid_line(line: str, grid: tuple[int, int, int]) -> bool:
    return _is_int_line(line, 3) and tuple(int(t) for t in line.split()) == grid


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- writing


def write_chgcar(field: ECDField, path: str | os.PathLike, comment: str | None = None, per_line: int = 5) -> Path:
    """Write ``field`` as a VASP 5 CHGCAR (values ``rho * V_cell``, x fastest).

    Values are written with 11 significant decimals (``%.11E``), as VASP does.
    The file is written to a temporary name and renamed, so an interrupted write
    never leaves a half file under ``path``.
    """
    path = Path(path)
    atoms = field.atoms
    if atoms is None:
        raise FieldError(f"{field.source or 'ECDField'}: cannot write a CHGCAR without atoms")
    symbols = atoms.get_chemical_symbols()
    species = list(dict.fromkeys(symbols))
    order = sorted(range(len(symbols)), key=lambda k: species.index(symbols[k]))
    frac = np.linalg.solve(field.lattice.T, atoms.get_positions().T).T[order]
    out = [(comment or (atoms.get_chemical_formula() + " " + (field.source or "")).strip()).replace("\n", " ")]
    out.append("   1.00000000000000")
    out += ["  " + " ".join(f"{x:21.15f}" for x in row) for row in field.lattice]
    out.append("   " + "   ".join(species))
    out.append("   " + "   ".join(str(symbols.count(s)) for s in species))
    out.append("Direct")
    out += [" " + " ".join(f"{x:19.15f}" for x in row) for row in frac]
    out.append("")
    out.append(" " + " ".join(f"{n:4d}" for n in field.shape))
    data = (field.rho * field.volume).ravel(order="F")
    body = []
    for s in range(0, data.size, per_line):
        body.append(" " + " ".join(f"{v:.11E}" for v in data[s : s + per_line]))
    text = "\n".join(out + body) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
