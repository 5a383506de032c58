"""The file-based dataset sources: the embedded dataset and a directory of CHGCAR files.

Both are registered in :data:`leanecd.registry.SOURCES` and reached through
:func:`leanecd.data.load_dataset`.

:func:`load_embedded` (``"embedded"``)
    The project's own open dataset (``data/embedded`` in the repository, computed with
    GPAW by :mod:`leanecd.dft`). Looked for in ``root`` if given, else in the directory
    named by the environment variable ``LEANECD_DATA`` (the dataset directory itself, or
    a ``data/`` directory holding ``embedded/``), else in ``<repo>/data/embedded`` next
    to this package. Layout::

        dataset.json          name, version, settings, ...
        records/<id>.json     one compound: id, formula, spacegroup, bulk_modulus_GPa,
                              energy_per_atom_eV, field_electrons, status "ok", ...
        fields/<id>.npz       its ECD field (:func:`leanecd.store.save_field` format); a
                              recomputed compound's record names its own (``field_file``)
        history/<id>@<v>.json the record a recomputation superseded (protocol v)
        failures/<id>.json    compounds that failed a quality gate: id, formula,
                              prototype, reason
        labels.csv            a table of the ok records (derived; records are the truth)

:func:`load_chgcar_dir` (``"chgcar-dir"``, or any directory path)
    A directory of VASP CHGCAR files plus ``labels.csv`` with an ``id`` column and
    target columns. The CHGCAR of compound ``id`` is the file named ``id`` or
    ``id.<ext>`` (e.g. ``NaCl.CHGCAR``); a file without a label row, or a label row
    without a file, is listed in :attr:`Dataset.skipped` with the reason.

Malformed records, label tables and field files raise
:class:`~leanecd.errors.FileFormatError` naming the file.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import FAILURE_COLUMNS, NOT_CHGCAR, TARGETS, Dataset, embedded_version, is_number, load_chgcar_field
from .dft.labels import label_row
from .dft.layout import probe_moment, recompute_failure
from .dft.references import references
from .dft.settings import protocol_version
from .errors import FileFormatError
from .field import ECDField
from .store import load_field, read_json

__all__ = ["default_embedded_root", "load_embedded", "load_chgcar_dir"]

_RECORD_KEYS = ("id", "formula", "spacegroup", "bulk_modulus_GPa", "energy_per_atom_eV", "status")
# Warnings name the caller of load_dataset: load_dataset -> Source.load -> the loader.
_STACKLEVEL = 4


# --------------------------------------------------------------------------- embedded


def default_embedded_root() -> Path:
    """Where ``load_dataset("embedded")`` looks: ``$LEANECD_DATA`` or ``<repo>/data/embedded``."""
    env = os.environ.get("LEANECD_DATA", "").strip()
    if env:
        p = Path(env).expanduser()
        if not (p / "dataset.json").is_file() and (p / "embedded" / "dataset.json").is_file():
            p = p / "embedded"
        return p
    return Path(__file__).resolve().parents[2] / "data" / "embedded"


def _load_npz(path: Path, id_: str) -> ECDField:
    """The field file at ``path`` with ``meta["id"]`` set; module-level, so its partial pickles."""
    f = load_field(path)
    f.meta.setdefault("id", id_)
    return f


def _check_record(path: Path, rec) -> dict:
    if not isinstance(rec, dict):
        raise FileFormatError(path, f"a record must be a JSON object, got {type(rec).__name__}")
    missing = [k for k in _RECORD_KEYS if k not in rec]
    if missing:
        raise FileFormatError(path, f"record lacks keys {missing}")
    if rec["id"] != path.stem:
        raise FileFormatError(path, f"record id {rec['id']!r} does not match the file name")
    if rec["status"] != "ok":
        raise FileFormatError(path, f"status is {rec['status']!r}, not 'ok' (failed compounds belong in failures/)")
    for k in TARGETS:
        if not is_number(rec[k]):
            raise FileFormatError(path, f"{k} is {rec[k]!r}, not a finite number")
    if not rec["bulk_modulus_GPa"] > 0:
        raise FileFormatError(path, f"bulk_modulus_GPa is {rec['bulk_modulus_GPa']!r}, not positive")
    if not isinstance(rec["spacegroup"], int) or isinstance(rec["spacegroup"], bool):
        raise FileFormatError(path, f"spacegroup is {rec['spacegroup']!r}, not an integer")
    return rec


def load_embedded(root: str | os.PathLike | None = None) -> Dataset:
    """The embedded dataset in ``root`` (default :func:`default_embedded_root`); see the module docstring."""
    root = default_embedded_root() if root is None else Path(root)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise FileFormatError(
            root,
            "no embedded dataset here (dataset.json missing); pass root=, set LEANECD_DATA, "
            "or generate it (see the appendix 'making-the-dataset')",
        )
    meta = read_json(meta_path)
    if not isinstance(meta, dict):
        raise FileFormatError(meta_path, "must be a JSON object")
    rec_dir = root / "records"
    rec_paths = sorted(rec_dir.glob("*.json")) if rec_dir.is_dir() else []
    if not rec_paths:
        raise FileFormatError(rec_dir, "no records (records/<id>.json)")
    rows, loaders = [], {}
    for p in rec_paths:
        rec = _check_record(p, read_json(p))
        fpath = root / rec.get("field_file", f"fields/{rec['id']}.npz")  # recomputed: fields/<id>@<protocol>.npz
        if not fpath.is_file():
            raise FileFormatError(fpath, f"field file missing for record {p}")
        rows.append(rec)
        loaders[rec["id"]] = functools.partial(_load_npz, fpath, rec["id"])
    # the derived columns of labels.csv, computed from the records themselves
    derived = ("protocol", "reliability", "reliability_reason", "bulk_modulus_uncertainty_GPa", "a0_uncertainty_A")
    refs = references(root.parent)   # the independent references a flag is checked against, as labels.csv's
    for r in rows:  # records without their E(V) scan (hand-made datasets) get no flag
        if {"eos_volumes_A3", "eos_energies_eV", "settings", "bulk_modulus_prime", "fit_rms_meV_per_atom"} <= set(r):
            row = label_row(r, refs, recompute_failure(root, r), probe_moment(root, r))
            r.update({k: row[k] for k in derived})
        elif "protocol" in r or "settings" in r:
            r["protocol"] = protocol_version(r)
    table = pd.DataFrame(rows).set_index("id", drop=True)

    fail_rows = []
    fail_dir = root / "failures"
    for p in sorted(fail_dir.glob("*.json")) if fail_dir.is_dir() else []:
        f = read_json(p)
        if not isinstance(f, dict) or "id" not in f or "reason" not in f:
            raise FileFormatError(p, "a failure must be a JSON object with at least 'id' and 'reason'")
        fail_rows.append(f)
    failures = pd.DataFrame(fail_rows) if fail_rows else pd.DataFrame(columns=FAILURE_COLUMNS)
    for c in FAILURE_COLUMNS:
        if c not in failures.columns:
            failures[c] = None
    failures = failures[FAILURE_COLUMNS + [c for c in failures.columns if c not in FAILURE_COLUMNS]]
    both = sorted(set(failures["id"]) & set(loaders))
    if both:
        warnings.warn(f"{root}: ids both in records/ and failures/ (records win): {both}", stacklevel=_STACKLEVEL)

    name = str(meta.get("name", root.name))
    version = embedded_version(meta, rows)
    return Dataset(
        name=name,
        version=version,
        source=f"embedded dataset {name} v{version} at {root}",
        table=table,
        loaders=loaders,
        failures=failures,
        skipped={},
        info=meta,
        root=root,
    )


# --------------------------------------------------------------------------- CHGCAR directory


def _read_labels(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileFormatError(path, "no label table (a CSV with an 'id' column and target columns)")
    try:
        df = pd.read_csv(path, dtype={"id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise FileFormatError(path, f"unreadable CSV ({type(exc).__name__}: {exc})") from None
    if "id" not in df.columns:
        raise FileFormatError(path, f"no 'id' column (columns: {list(df.columns)})")
    if df["id"].isna().any():
        rows = [int(r) + 2 for r in np.nonzero(df["id"].isna().to_numpy())[0]]
        raise FileFormatError(path, f"empty id on data rows {rows}")
    df["id"] = df["id"].str.strip()
    dup = sorted(df.loc[df["id"].duplicated(), "id"].unique())
    if dup:
        raise FileFormatError(path, f"duplicate ids {dup}")
    return df


def load_chgcar_dir(path: str | os.PathLike | None, labels: str | os.PathLike | None = None) -> Dataset:
    """The CHGCAR files in directory ``path`` with the label table ``labels`` (default
    ``<path>/labels.csv``); see the module docstring."""
    if path is None:
        raise ValueError("the 'chgcar-dir' source needs root=<directory of CHGCAR files with a labels.csv>")
    root = Path(path)
    if not root.is_dir():
        raise FileFormatError(root, "no such directory (expected CHGCAR files and a labels.csv)")
    lab_path = Path(labels) if labels is not None else root / "labels.csv"
    df = _read_labels(lab_path)

    files = [
        p
        for p in sorted(root.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.resolve() != lab_path.resolve()
        and p.suffix.lower() not in NOT_CHGCAR
    ]
    by_name = {p.name: p for p in files}
    by_stem: dict[str, list[Path]] = {}
    for p in files:
        if p.suffix:
            by_stem.setdefault(p.stem, []).append(p)

    loaders, keep, skipped, used = {}, [], {}, set()
    for id_ in df["id"]:
        if id_ in by_name:
            p = by_name[id_]
        elif len(by_stem.get(id_, [])) == 1:
            p = by_stem[id_][0]
        elif len(by_stem.get(id_, [])) > 1:
            raise FileFormatError(root, f"several CHGCAR files for id {id_!r}: {[q.name for q in by_stem[id_]]}")
        else:
            skipped[id_] = f"no CHGCAR file named {id_!r} or '{id_}.<ext>' in {root}"
            continue
        loaders[id_] = functools.partial(load_chgcar_field, p, id_)
        keep.append(id_)
        used.add(p)
    for p in files:
        if p not in used:
            skipped[p.stem if p.suffix else p.name] = f"file {p.name} has no row in {lab_path.name}"

    table = df.set_index("id", drop=True).loc[keep]
    return Dataset(
        name=root.name,
        version="local",
        source=f"CHGCAR directory {root} with labels {lab_path}",
        table=table,
        loaders=loaders,
        skipped=skipped,
        info={"labels": str(lab_path)},
        root=root,
    )
