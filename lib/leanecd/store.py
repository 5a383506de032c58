"""On-disk storage shared by the pipeline: atomic writes and compressed fields.

Everything the project writes (dataset entries, feature caches, checkpoints,
results) goes through :func:`atomic_path`, so an interrupted run never leaves a
half-written file under a good name: the data are written to a temporary file in
the same directory and renamed into place.

A field file (``.npz``, zlib-compressed, lossless) holds

* ``rho`` - float32 ``[n1, n2, n3]``, e/Å³, axis i along lattice vector a_i;
* ``lattice`` - float64 ``(3, 3)``, Å, rows a1, a2, a3;
* ``numbers`` - int atomic numbers; ``scaled_positions`` - float64 ``(n_atoms, 3)``;
* ``meta`` - a JSON string of provenance.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from ase import Atoms

from .errors import FileFormatError
from .field import ECDField

__all__ = ["atomic_path", "write_json", "read_json", "save_field", "load_field"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n")
    return Path(path)


def read_json(path: str | os.PathLike):
    """Read JSON, raising :class:`FileFormatError` naming the file if it is malformed."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise FileFormatError(path, f"malformed JSON: {exc}") from None


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def save_field(path: str | os.PathLike, field: ECDField) -> Path:
    """Store ``field`` as a compressed ``.npz`` (rho as float32), atomically."""
    atoms = field.atoms
    numbers = atoms.get_atomic_numbers() if atoms is not None else np.zeros(0, int)
    spos = atoms.get_scaled_positions(wrap=False) if atoms is not None else np.zeros((0, 3))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                rho=field.rho.astype(np.float32),
                lattice=field.lattice,
                numbers=numbers,
                scaled_positions=spos,
                meta=np.array(json.dumps(field.meta, default=_json_default)),
            )
    return Path(path)


def load_field(path: str | os.PathLike) -> ECDField:
    """Load a field written by :func:`save_field` (rho returned as float64)."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, "no such field file")
    try:
        with np.load(path, allow_pickle=False) as z:
            rho = z["rho"].astype(np.float64)
            lattice = z["lattice"]
            numbers = z["numbers"]
            spos = z["scaled_positions"]
            meta = json.loads(str(z["meta"]))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise FileFormatError(path, f"unreadable field file ({type(exc).__name__}: {exc})") from None
    atoms = Atoms(numbers=numbers, scaled_positions=spos, cell=lattice, pbc=True) if len(numbers) else None
    return ECDField(rho=rho, lattice=lattice, atoms=atoms, source=str(path), meta=meta)
