"""VASP CHG/CHGCAR files: read into and written from :class:`~leanecd.field.ECDField`.

A CHGCAR stores ``rho * V_cell`` on a periodic grid, x index fastest (Fortran
order). :func:`read_chgcar` divides by the cell volume so that
:attr:`ECDField.rho` is in electrons/Å³ and ``rho.mean() * volume`` is the number
of electrons in the cell (for a magnetisation data set: μB/Å³ and μB).

Note: jarvis-tools' ``Chgcar`` reshapes the data in C order, which swaps the x and z
axes on cubic grids and scrambles non-cubic ones; this reader does not.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

import numpy as np
from ase import Atoms

from .errors import FieldError, FileFormatError
from .field import ECDField  # re-exported: design.md promises ``from leanecd.io import ECDField``
from .store import atomic_path

__all__ = ["ECDField", "WHICH", "read_chgcar", "write_chgcar"]


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


#: The ``which=`` values of :func:`read_chgcar`.
WHICH = ("total", "magnetization", "mx", "my", "mz")
# data sets in a file -> (spin kind, names of the data sets in file order)
_LAYOUT = {
    1: ("none", ("total",)),
    2: ("collinear", ("total", "magnetization")),
    4: ("non-collinear", ("total", "mx", "my", "mz")),
}
_HOLDS = {
    1: "only the total density (not spin-polarised)",
    2: "the total density and the magnetisation (collinear spin-polarised)",
    4: "the total density and the magnetisation components mx, my, mz (non-collinear)",
}


def read_chgcar(path: str | os.PathLike, which: str = "total", image: int = -1) -> ECDField:
    """Read a VASP 5 CHG or CHGCAR file into an :class:`ECDField`.

    ``which``: the data set returned as ``rho``: ``"total"`` (ρ↑ + ρ↓ in e/Å³, the
    default), ``"magnetization"`` (ρ↑ − ρ↓ of a spin-polarised file, μB/Å³) or
    ``"mx"``, ``"my"``, ``"mz"`` (the components of a non-collinear file, μB/Å³); for
    a magnetisation, ``n_electrons`` is the cell's moment in μB.
    ``image``: the image of a multi-image CHG (VASP appends one every few ionic
    steps), Python indexing; the default ``-1`` is the last, the converged density.

    Line 2 may hold one scale factor (negative: the cell volume in Å³) or three (for
    x, y, z), applied as ASE does. Every data set of every image is checked (count,
    numbers, finite), so a truncated or damaged file is never taken as whole;
    augmentation occupancies and per-atom moments are skipped.
    ``meta["chgcar"]`` records ``which``, ``spin`` (``"none"``, ``"collinear"``,
    ``"non-collinear"``), ``data_sets``, ``image`` (0-based), ``n_images`` and
    ``scale``. Raises :class:`~leanecd.errors.FileFormatError` naming the file and the
    problem (also when the file lacks the requested data set or image).
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, not {which!r}")
    if isinstance(image, bool) or not isinstance(image, (int, np.integer)):
        raise ValueError(f"image must be an integer index, not {image!r}")
    image = int(image)
    path = Path(path)
    lines = _read_lines(path)

    keep = deque(maxlen=-image) if image < 0 else None
    chosen = None
    n_sets_first = None
    m, i = 0, 0
    while True:
        img, i, more = _read_image(path, lines, i, m)
        n_sets = len(img["sets"])
        if n_sets_first is None:
            n_sets_first = n_sets
        elif n_sets != n_sets_first:
            raise FileFormatError(
                path, f"image {m + 1} (line {img['line']}) holds {n_sets} data sets, image 1 holds {n_sets_first}"
            )
        if keep is not None:
            keep.append(img)
        elif m == image:
            chosen = img
        m += 1
        if not more:
            break
    n_images = m
    if not -n_images <= image < n_images:
        raise FileFormatError(path, f"image={image} requested, the file holds {n_images} image(s)")
    if keep is not None:
        chosen = keep[0]

    spin, names = _LAYOUT[n_sets_first]
    if which not in names:
        raise FileFormatError(
            path, f"which={which!r} is not in this file: it holds {_HOLDS[n_sets_first]}; choose one of {names}"
        )
    data = chosen["sets"][names.index(which)]
    rho = data.reshape(chosen["grid"], order="F") / chosen["volume"]
    meta = {
        "comment": chosen["comment"],
        "chgcar": {
            "which": which,
            "spin": spin,
            "data_sets": n_sets_first,
            "image": chosen["index"],
            "n_images": n_images,
            "scale": chosen["scale"],
        },
    }
    source = str(path) if which == "total" else f"{path} ({which})"
    return ECDField(rho=rho, lattice=chosen["cell"], atoms=chosen["atoms"], source=source, meta=meta)


def _read_lines(path: Path) -> list[str]:
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
    return lines


def _read_image(path, lines: list[str], i: int, m: int) -> tuple[dict, int, bool]:
    """One image (POSCAR block, grid line, 1/2/4 data sets) from line index ``i``.

    Returns the image, the index of the next line and whether another image follows.
    Every data set is read and checked; values are ``rho * V_cell`` (not yet divided).
    """
    first = i
    img = _read_poscar(path, lines, i, m)
    i = _next_nonblank(lines, img.pop("end"))
    if i >= len(lines):
        raise FileFormatError(path, "file ends before the grid line" + (f" of image {m + 1}" if m else ""))
    if not _is_int_line(lines[i], 3):
        raise FileFormatError(path, f"line {i + 1}: expected the grid line 'n1 n2 n3', got {lines[i].strip()!r}")
    grid = tuple(int(n) for n in lines[i].split())
    if min(grid) < 1:
        raise FileFormatError(path, f"line {i + 1}: grid counts must be positive, got {grid}")
    i += 1
    sets = []
    while True:
        what = "data block" if not sets else f"data set {len(sets) + 1} (magnetisation)"
        if m:
            what += f" of image {m + 1}"
        data, i = _read_block(path, lines, i, grid, what)
        sets.append(data)
        i, nxt = _after_block(path, lines, i, grid, img["natoms"])
        if nxt != "set":
            break
    if len(sets) not in _LAYOUT:
        raise FileFormatError(
            path,
            f"{len(sets)} data sets" + (f" in image {m + 1}" if m else "")
            + "; VASP writes 1 (total), 2 (total, magnetisation) or 4 (total, mx, my, mz)",
        )
    img.update(grid=grid, sets=sets, index=m, line=first + 1)
    return img, i, nxt == "image"


def _read_poscar(path, lines: list[str], i0: int, m: int) -> dict:
    """The POSCAR block starting at line index ``i0``: atoms, cell (Å), volume (Å³), ..."""

    def line(k: int) -> str:
        if k >= len(lines):
            raise FileFormatError(path, "file ends inside the header" + (f" of image {m + 1}" if m else ""))
        return lines[k]

    # Line 2: one scale factor (negative: the volume) or three (x, y, z), as ASE reads it.
    scale = []
    for tok in line(i0 + 1).split()[:3]:
        if not _is_number(tok):
            break
        scale.append(float(tok))
    if len(scale) not in (1, 3):
        raise FileFormatError(path, f"line {i0 + 2}: expected 1 or 3 scale factors, got {lines[i0 + 1].strip()!r}")
    if not all(np.isfinite(scale)):
        raise FileFormatError(path, f"line {i0 + 2}: NaN or inf in the scale factor: {lines[i0 + 1].strip()!r}")
    if len(scale) == 3 and min(scale) <= 0:
        raise FileFormatError(path, f"line {i0 + 2}: three scale factors must all be positive, got {scale}")
    cell = np.array(
        [_floats(path, line(i0 + k), i0 + k + 1, f"lattice vector a{k - 1}", 3) for k in (2, 3, 4)]
    )
    det = np.linalg.det(cell)
    if scale[0] < 0:  # VASP: a negative scale is the target cell volume
        if det <= 0:
            raise FileFormatError(path, f"lattice vectors give non-positive volume {det:.6g} Å³")
        factors = np.array([(-scale[0] / det) ** (1.0 / 3.0)])
    else:
        factors = np.array(scale)
    cell = cell * factors  # one factor, or one per Cartesian component
    volume = np.linalg.det(cell)
    if not volume > 0:
        raise FileFormatError(path, f"cell volume is {volume:.6g} Å³ (zero/negative scale or degenerate lattice)")

    # VASP 5: a line of species names, then counts. VASP 4 files lack the names.
    i = i0 + 5
    species_tokens = line(i).split()
    if species_tokens and not _is_int_line(lines[i]):
        # VASP 6.4 may write POTCAR labels such as "Li_sv/1a2b3c4d": keep the element.
        species = [t.split("/")[0].split("_")[0] for t in species_tokens]
        i += 1
    else:
        raise FileFormatError(path, f"line {i + 1}: no species names (VASP 4 format is not supported; add the names)")
    if not _is_int_line(line(i)):
        raise FileFormatError(path, f"line {i + 1}: expected atom counts, got {lines[i].strip()!r}")
    counts = [int(c) for c in lines[i].split()]
    if len(counts) != len(species) or any(c < 0 for c in counts) or sum(counts) == 0:
        raise FileFormatError(path, f"line {i + 1}: counts {counts} do not match species {species}")
    i += 1
    if line(i).strip()[:1].lower() == "s":  # Selective dynamics
        i += 1
    mode = line(i).strip()[:1].lower()
    if mode not in ("d", "c", "k"):
        raise FileFormatError(path, f"line {i + 1}: expected 'Direct' or 'Cartesian', got {lines[i].strip()!r}")
    i += 1
    natoms = sum(counts)
    if len(lines) < i + natoms:
        raise FileFormatError(path, "file ends inside the atomic positions" + (f" of image {m + 1}" if m else ""))
    pos = np.array([_floats(path, lines[i + k], i + k + 1, "an atomic position", 3) for k in range(natoms)])
    i += natoms
    symbols = [s for s, c in zip(species, counts) for _ in range(c)]
    try:
        if mode == "d":
            atoms = Atoms(symbols, scaled_positions=pos, cell=cell, pbc=True)
        else:
            atoms = Atoms(symbols, positions=pos * factors, cell=cell, pbc=True)
    except (KeyError, ValueError) as exc:
        raise FileFormatError(path, f"bad species name in {species}: {exc}") from None
    return dict(
        atoms=atoms, cell=cell, volume=float(volume), natoms=natoms, comment=lines[i0].strip(), scale=scale, end=i
    )


def _read_block(path, lines: list[str], i: int, grid: tuple[int, int, int], what: str) -> tuple[np.ndarray, int]:
    """``n1*n2*n3`` numbers from line index ``i``, checked: count, numeric, finite."""
    n = grid[0] * grid[1] * grid[2]
    values: list[str] = []
    start = i
    while len(values) < n and i < len(lines):
        toks = lines[i].split()
        if toks and toks[0][0].isalpha() and not _is_number(toks[0]):
            break  # text: augmentation occupancies or the next image's header
        if len(toks) == 3 and _is_grid_line(lines[i], grid):
            break  # the next data set's grid line
        values.extend(toks)
        i += 1
    if len(values) < n:
        ends = "at the end of the file" if i >= len(lines) else f"at line {i + 1}"
        raise FileFormatError(
            path,
            f"{what} truncated: grid {grid} needs {n} values, found {len(values)} "
            f"(from line {start + 1}, ending {ends})",
        )
    if len(values) > n:
        raise FileFormatError(path, f"line {i}: more values than the grid {grid} holds ({n}); wrong grid counts?")
    try:
        data = np.array(values, dtype=np.float64)
    except ValueError:
        bad = next(v for v in values if not _is_number(v))
        raise FileFormatError(path, f"non-numeric value {bad!r} in the {what} (from line {start + 1})") from None
    if not np.all(np.isfinite(data)):
        k = int(np.flatnonzero(~np.isfinite(data))[0])
        raise FileFormatError(path, f"NaN or inf in the {what} (value {k + 1} of {n}, from line {start + 1})")
    return data, i


def _after_block(path, lines: list[str], i: int, grid, natoms: int) -> tuple[int, str]:
    """What follows a data set: ``"end"``, another ``"set"`` (index after its grid
    line) or the next ``"image"`` (index of its first line). Allowed between data sets:
    augmentation occupancies, the per-atom magnetic moments (natoms numbers, possibly
    wrapped), the grid line again."""
    n = grid[0] * grid[1] * grid[2]
    j = _next_nonblank(lines, i)
    if j >= len(lines):
        return j, "end"
    if lines[j].lstrip().lower().startswith("augmentation"):
        j = _skip_augmentation(path, lines, j, grid)
        if j >= len(lines):
            return j, "end"
        if _is_grid_line(lines[j], grid):
            return j + 1, "set"
        raise FileFormatError(path, f"line {j + 1}: unexpected {lines[j].strip()!r} after the augmentation occupancies")
    if _is_grid_line(lines[j], grid):
        return j + 1, "set"
    if _all_numbers(lines[j]):
        count, k = 0, j
        while k < len(lines) and count < natoms and (not lines[k].strip() or _all_numbers(lines[k])):
            count += len(lines[k].split())
            k += 1
        k = _next_nonblank(lines, k)
        if count != natoms or k >= len(lines) or not _is_grid_line(lines[k], grid):
            raise FileFormatError(
                path, f"line {j + 1}: data continue past the grid {grid} ({n} values); wrong grid counts?"
            )
        return k + 1, "set"
    return j, "image"


def _skip_augmentation(path, lines: list[str], j: int, grid) -> int:
    """Skip augmentation occupancies (and the moments after them) from line index ``j``;
    each ``augmentation occupancies <ion> <count>`` header must be followed by at least
    ``count`` numbers. Returns the index of the first line that is neither."""
    header, need, got = None, 0, 0

    def check():
        if header is not None and got < need:
            raise FileFormatError(
                path, f"line {header + 1}: augmentation occupancies truncated: {need} values announced, found {got}"
            )

    while j < len(lines):
        s = lines[j]
        if not s.strip():
            j += 1
            continue
        if s.lstrip().lower().startswith("augmentation"):
            check()
            toks = s.split()
            header, got = j, 0
            need = int(toks[-1]) if len(toks) >= 3 and _is_int_line(toks[-1]) else 0
        elif _is_grid_line(s, grid) or not _all_numbers(s):
            break
        else:
            got += len(s.split())
        j += 1
    check()
    return j


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
    The file is written through :func:`leanecd.store.atomic_path`, so an interrupted
    write never leaves a half file under ``path``.
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
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
