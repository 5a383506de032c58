"""Datasets of ECD fields with labels: the embedded one, a CHGCAR directory, JARVIS-DFT.

:func:`load_dataset` returns a :class:`Dataset` whatever the source:

``load_dataset("embedded")``
    The project's own open dataset (``data/embedded`` in the repository, computed with
    GPAW by :mod:`leanecd.dft`). Looked for in ``root`` if given, else in the directory
    named by the environment variable ``LEANECD_DATA`` (the dataset directory itself, or
    a ``data/`` directory holding ``embedded/``), else in ``<repo>/data/embedded`` next
    to this package. Layout::

        dataset.json          name, version, settings, ...
        records/<id>.json     one compound: id, formula, spacegroup, bulk_modulus_GPa,
                              energy_per_atom_eV, field_electrons, status "ok", ...
        fields/<id>.npz       its ECD field (:func:`leanecd.store.save_field` format)
        failures/<id>.json    compounds that failed a quality gate: id, formula,
                              prototype, reason
        labels.csv            a table of the ok records (derived; records are the truth)

``load_dataset("path/to/dir")``
    A directory of VASP CHGCAR files plus ``labels.csv`` with an ``id`` column and
    target columns. The CHGCAR of compound ``id`` is the file named ``id`` or
    ``id.<ext>`` (e.g. ``NaCl.CHGCAR``). A directory holding ``dataset.json`` is read
    as the embedded layout instead.

``load_dataset("jarvis", root)``
    The paper's source, for users who have the data: ``root`` holds the JARVIS-DFT
    ``dft_3d`` JSON file (``*.json``; a list of entries with ``jid``, ``spg_number``,
    ``bulk_modulus_kv``, ``optb88vdw_total_energy``, ``atoms``) and one CHGCAR per
    compound, either ``<root>/CHGCAR/<jid>.CHGCAR`` or ``<root>/<jid>/CHGCAR``. Entries
    are selected as in the paper (§2.1): space group 225 (Fm-3m), 216 (F-43m) or 221
    (Pm-3m), a numeric bulk modulus > 0 GPa and a numeric total energy.
    ``optb88vdw_total_energy`` is already per atom (eV/atom).

Nothing is dropped silently: a selected compound whose CHGCAR is missing (or a CHGCAR
without a label row) is listed in :attr:`Dataset.skipped` with the reason. Malformed
records, label tables and field files raise :class:`~leanecd.errors.FileFormatError`
naming the file.

Fields are loaded lazily: :meth:`Dataset.field` reads one from disk on each call (no
cache), and :meth:`Dataset.items` yields picklable zero-argument loaders, so a feature
store can farm them out to worker processes.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import FileFormatError
from .io import ECDField, read_chgcar
from .store import load_field, read_json

__all__ = ["Dataset", "load_dataset", "TARGETS", "PAPER_SPACE_GROUPS", "default_embedded_root"]

#: Label columns every source provides: bulk modulus (GPa), total energy (eV/atom).
TARGETS = ("bulk_modulus_GPa", "energy_per_atom_eV")
#: The paper's space groups (§2.1, Fig. 1a): two FCC and one simple cubic.
PAPER_SPACE_GROUPS = {225: "Fm-3m", 216: "F-43m", 221: "Pm-3m"}

_RECORD_KEYS = ("id", "formula", "spacegroup", "bulk_modulus_GPa", "energy_per_atom_eV", "status")
_FAILURE_COLUMNS = ["id", "formula", "prototype", "reason"]
# Files in a CHGCAR directory that are never CHGCARs.
_NOT_CHGCAR = {".csv", ".json", ".md", ".txt", ".yaml", ".yml", ".py", ".ipynb", ".npz", ".npy",
               ".log", ".gz", ".bz2", ".xz", ".zip", ".tar", ".h5", ".png", ".pdf"}


# --------------------------------------------------------------------------- Dataset


class Dataset:
    """Compounds with labels and lazily loaded ECD fields.

    Attributes
    ----------
    name, version : dataset name and version string (embedded: from ``dataset.json``;
        CHGCAR directory: ``"local"``; JARVIS: the JSON file's stem, which carries its date).
    source : a one-line description of where the data came from.
    table : :class:`pandas.DataFrame` of labels indexed by ``id`` (one row per compound,
        in :attr:`ids` order); embedded and JARVIS tables have the columns
        ``bulk_modulus_GPa`` (GPa) and ``energy_per_atom_eV`` (eV/atom).
    failures : DataFrame of compounds that failed a quality gate (embedded only;
        columns ``id, formula, prototype, reason``; empty otherwise).
    skipped : ``{id: reason}`` for compounds left out of this dataset and why.
    info : provenance (``dataset.json`` contents, JARVIS selection counts, ...).
    root : the directory the data were read from.
    """

    def __init__(
        self,
        *,
        name: str,
        version: str,
        source: str,
        table: pd.DataFrame,
        loaders: dict[str, Callable[[], ECDField]],
        failures: pd.DataFrame | None = None,
        skipped: dict[str, str] | None = None,
        info: dict | None = None,
        root: Path | None = None,
    ):
        if list(table.index) != list(loaders):
            raise ValueError("Dataset: table index and loaders must list the same ids in the same order")
        self.name = name
        self.version = str(version)
        self.source = source
        self.table = table
        self._loaders = dict(loaders)
        self.failures = failures if failures is not None else pd.DataFrame(columns=_FAILURE_COLUMNS)
        self.skipped = dict(skipped or {})
        self.info = dict(info or {})
        self.root = root

    # ----------------------------------------------------------------- access

    @property
    def ids(self) -> list[str]:
        """Compound ids, in table order."""
        return list(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._loaders

    def field(self, id_: str) -> ECDField:
        """Read the ECD field (rho in e/Å³) of compound ``id_`` from disk."""
        return self._loader(id_)()

    def loader(self, id_: str) -> Callable[[], ECDField]:
        """A picklable zero-argument callable returning the field of ``id_``."""
        return self._loader(id_)

    def items(self) -> Iterator[tuple[str, Callable[[], ECDField]]]:
        """``(id, loader)`` pairs; ``loader()`` reads that compound's :class:`ECDField`."""
        return iter(list(self._loaders.items()))

    def targets(self, names: str | Sequence[str] = TARGETS) -> np.ndarray:
        """Label values as float64: shape ``(n,)`` for one name, ``(n, k)`` for a list.

        Raises ``KeyError`` for an unknown column and ``ValueError`` if a value is
        missing or not numeric (naming the compounds), rather than returning NaN.
        """
        single = isinstance(names, str)
        cols = [names] if single else list(names)
        missing = [c for c in cols if c not in self.table.columns]
        if missing:
            raise KeyError(f"{self.name}: no label column {missing}; columns are {list(self.table.columns)}")
        values = self.table[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            rows = [self.ids[r] for r in np.unique(np.nonzero(bad)[0])][:10]
            raise ValueError(f"{self.name}: missing or non-numeric {cols} for {rows} (first 10 shown)")
        return values[:, 0] if single else values

    def subset(self, ids: Sequence[str]) -> "Dataset":
        """A dataset with only ``ids`` (in the order given); skipped/failures are kept."""
        ids = list(ids)
        unknown = [i for i in ids if i not in self._loaders]
        if unknown:
            raise KeyError(f"{self.name}: unknown ids {unknown[:10]}")
        return Dataset(
            name=self.name,
            version=self.version,
            source=self.source + f" (subset of {len(ids)})",
            table=self.table.loc[ids],
            loaders={i: self._loaders[i] for i in ids},
            failures=self.failures,
            skipped=self.skipped,
            info=self.info,
            root=self.root,
        )

    def _loader(self, id_: str) -> Callable[[], ECDField]:
        try:
            return self._loaders[id_]
        except KeyError:
            why = f" (skipped: {self.skipped[id_]})" if id_ in self.skipped else ""
            raise KeyError(f"{self.name}: no compound {id_!r}{why}") from None

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, version={self.version!r}, {len(self)} compounds, "
            f"{len(self.skipped)} skipped, {len(self.failures)} failures, source={self.source!r})"
        )


# --------------------------------------------------------------------------- entry point


def load_dataset(
    source: str | os.PathLike = "embedded",
    root: str | os.PathLike | None = None,
    *,
    labels: str | os.PathLike | None = None,
    jarvis_json: str | os.PathLike | None = None,
    space_groups: Sequence[int] = tuple(PAPER_SPACE_GROUPS),
) -> Dataset:
    """Load a dataset of ECD fields and labels (see the module docstring).

    Parameters
    ----------
    source : ``"embedded"``, ``"jarvis"``, or a directory (CHGCAR files + ``labels.csv``,
        or an embedded-layout directory with ``dataset.json``).
    root : directory of the data for ``"embedded"`` (optional) and ``"jarvis"`` (required).
    labels : CHGCAR directory only: the label table (default ``<dir>/labels.csv``).
    jarvis_json : JARVIS only: the ``dft_3d`` JSON file, if ``root`` holds several ``*.json``.
    space_groups : JARVIS only: space-group numbers to keep (default the paper's 225, 216, 221).
    """
    if isinstance(source, str) and source == "embedded":
        return _load_embedded(default_embedded_root() if root is None else Path(root))
    if isinstance(source, str) and source == "jarvis":
        if root is None:
            raise ValueError(
                "load_dataset('jarvis') needs root=<directory holding the JARVIS-DFT dft_3d *.json "
                "and the CHGCAR files (<root>/CHGCAR/<jid>.CHGCAR or <root>/<jid>/CHGCAR)>"
            )
        return _load_jarvis(Path(root), jarvis_json, space_groups)
    path = Path(source)
    if not path.is_dir():
        raise FileFormatError(path, "no such directory (source must be 'embedded', 'jarvis' or a directory)")
    if (path / "dataset.json").is_file():
        return _load_embedded(path)
    return _load_chgcar_dir(path, labels)


def default_embedded_root() -> Path:
    """Where ``load_dataset("embedded")`` looks: ``$LEANECD_DATA`` or ``<repo>/data/embedded``."""
    env = os.environ.get("LEANECD_DATA", "").strip()
    if env:
        p = Path(env).expanduser()
        if not (p / "dataset.json").is_file() and (p / "embedded" / "dataset.json").is_file():
            p = p / "embedded"
        return p
    return Path(__file__).resolve().parents[2] / "data" / "embedded"


# --------------------------------------------------------------------------- loaders
# Module-level functions wrapped in functools.partial, so loaders pickle.


def _load_npz(path: Path, id_: str) -> ECDField:
    f = load_field(path)
    f.meta.setdefault("id", id_)
    return f


def _load_chgcar(path: Path, id_: str) -> ECDField:
    f = read_chgcar(path)
    f.meta.setdefault("id", id_)
    return f


# --------------------------------------------------------------------------- embedded


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


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
        if not _is_number(rec[k]):
            raise FileFormatError(path, f"{k} is {rec[k]!r}, not a finite number")
    if not rec["bulk_modulus_GPa"] > 0:
        raise FileFormatError(path, f"bulk_modulus_GPa is {rec['bulk_modulus_GPa']!r}, not positive")
    if not isinstance(rec["spacegroup"], int) or isinstance(rec["spacegroup"], bool):
        raise FileFormatError(path, f"spacegroup is {rec['spacegroup']!r}, not an integer")
    return rec


def _load_embedded(root: Path) -> Dataset:
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
        fpath = root / "fields" / f"{rec['id']}.npz"
        if not fpath.is_file():
            raise FileFormatError(fpath, f"field file missing for record {p}")
        rows.append(rec)
        loaders[rec["id"]] = functools.partial(_load_npz, fpath, rec["id"])
    table = pd.DataFrame(rows).set_index("id", drop=True)

    fail_rows = []
    fail_dir = root / "failures"
    for p in sorted(fail_dir.glob("*.json")) if fail_dir.is_dir() else []:
        f = read_json(p)
        if not isinstance(f, dict) or "id" not in f or "reason" not in f:
            raise FileFormatError(p, "a failure must be a JSON object with at least 'id' and 'reason'")
        fail_rows.append(f)
    failures = pd.DataFrame(fail_rows) if fail_rows else pd.DataFrame(columns=_FAILURE_COLUMNS)
    for c in _FAILURE_COLUMNS:
        if c not in failures.columns:
            failures[c] = None
    failures = failures[_FAILURE_COLUMNS + [c for c in failures.columns if c not in _FAILURE_COLUMNS]]
    both = sorted(set(failures["id"]) & set(loaders))
    if both:
        warnings.warn(f"{root}: ids both in records/ and failures/ (records win): {both}", stacklevel=3)

    name = str(meta.get("name", root.name))
    # The dataset is append-only and grows between releases: the compound count
    # makes the version string identify the content (e.g. "0.1.0+42cpd").
    version = f"{meta.get('version', 'unversioned')}+{len(rows)}cpd"
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
        raise FileFormatError(path, f"empty id on data rows {[int(r) + 2 for r in np.nonzero(df['id'].isna().to_numpy())[0]]}")
    df["id"] = df["id"].str.strip()
    dup = sorted(df.loc[df["id"].duplicated(), "id"].unique())
    if dup:
        raise FileFormatError(path, f"duplicate ids {dup}")
    return df


def _load_chgcar_dir(root: Path, labels: str | os.PathLike | None) -> Dataset:
    lab_path = Path(labels) if labels is not None else root / "labels.csv"
    df = _read_labels(lab_path)

    files = [
        p
        for p in sorted(root.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.resolve() != lab_path.resolve()
        and p.suffix.lower() not in _NOT_CHGCAR
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
        loaders[id_] = functools.partial(_load_chgcar, p, id_)
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


# --------------------------------------------------------------------------- JARVIS-DFT


def _find_jarvis_json(root: Path, jarvis_json) -> Path:
    if jarvis_json is not None:
        p = Path(jarvis_json)
        p = p if p.is_absolute() or p.exists() else root / p
        if not p.is_file():
            raise FileFormatError(p, "no such JARVIS-DFT JSON file")
        return p
    if not root.is_dir():
        raise FileFormatError(root, "no such directory (the JARVIS root holds the dft_3d *.json and CHGCARs)")
    cands = sorted(root.glob("*.json"))
    if len(cands) == 1:
        return cands[0]
    named = [c for c in cands if "dft_3d" in c.name.lower() or "dft3d" in c.name.lower()]
    if len(named) == 1:
        return named[0]
    if not cands:
        raise FileFormatError(root, "no *.json file (expected the JARVIS-DFT dft_3d JSON, e.g. jdft_3d-*.json)")
    raise FileFormatError(root, f"several *.json files {[c.name for c in cands]}; pass jarvis_json=")


def _jarvis_chgcar(root: Path, jid: str) -> Path | None:
    cands = [p for p in (root / "CHGCAR" / f"{jid}.CHGCAR", root / jid / "CHGCAR") if p.is_file()]
    if len(cands) > 1:
        raise FileFormatError(root, f"two CHGCARs for {jid}: {[str(c) for c in cands]}; keep one")
    return cands[0] if cands else None


def _as_int(x) -> int | None:
    try:
        return int(x) if not isinstance(x, bool) else None
    except (TypeError, ValueError):
        return None


def _load_jarvis(root: Path, jarvis_json, space_groups: Sequence[int]) -> Dataset:
    jpath = _find_jarvis_json(root, jarvis_json)
    entries = read_json(jpath)
    if not isinstance(entries, list):
        raise FileFormatError(jpath, f"expected a list of JARVIS-DFT entries, got {type(entries).__name__}")
    wanted = {int(s) for s in space_groups}
    counts = {"entries": len(entries), "in_space_groups": 0, "with_labels": 0, "with_chgcar": 0}
    rows, loaders, skipped, seen = [], {}, {}, set()
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("jid"), str):
            raise FileFormatError(jpath, f"entry {k} is not an object with a string 'jid'")
        jid = e["jid"]
        if jid in seen:
            raise FileFormatError(jpath, f"duplicate jid {jid!r}")
        seen.add(jid)
        spg = _as_int(e.get("spg_number"))
        if spg not in wanted:
            continue
        counts["in_space_groups"] += 1
        b, en = e.get("bulk_modulus_kv"), e.get("optb88vdw_total_energy")
        if not (_is_number(b) and b > 0 and _is_number(en)):
            continue
        counts["with_labels"] += 1
        elements = _jarvis_elements(jpath, jid, e.get("atoms"))
        chg = _jarvis_chgcar(root, jid)
        if chg is None:
            skipped[jid] = f"no CHGCAR at {root / 'CHGCAR' / (jid + '.CHGCAR')} or {root / jid / 'CHGCAR'}"
            continue
        counts["with_chgcar"] += 1
        rows.append(
            {
                "id": jid,
                "formula": e.get("formula") or _formula(elements),
                "spacegroup": spg,
                "spacegroup_symbol": e.get("spg_symbol", PAPER_SPACE_GROUPS.get(spg)),
                "n_elements": len(set(elements)),
                "elements": sorted(set(elements)),
                "natoms": len(elements),
                "bulk_modulus_GPa": float(b),
                "energy_per_atom_eV": float(en),
            }
        )
        loaders[jid] = functools.partial(_load_chgcar, chg, jid)
    columns = ["id", "formula", "spacegroup", "spacegroup_symbol", "n_elements", "elements", "natoms", *TARGETS]
    table = pd.DataFrame(rows, columns=columns).set_index("id", drop=True)
    return Dataset(
        name="jarvis-dft-3d",
        version=jpath.stem,
        source=f"JARVIS-DFT {jpath.name} with CHGCARs under {root} (space groups {sorted(wanted)})",
        table=table,
        loaders=loaders,
        skipped=skipped,
        info={"json": str(jpath), "selection": counts, "space_groups": sorted(wanted)},
        root=root,
    )


def _jarvis_elements(jpath: Path, jid: str, atoms) -> list[str]:
    if not isinstance(atoms, dict) or not isinstance(atoms.get("elements"), list) or not atoms["elements"]:
        raise FileFormatError(jpath, f"{jid}: 'atoms' lacks a non-empty 'elements' list")
    return [str(s).strip() for s in atoms["elements"]]


def _formula(elements: list[str]) -> str:
    from ase.formula import Formula

    return Formula.from_list(elements).reduce()[0].format("metal")
