"""The paper's source, JARVIS-DFT ``dft_3d``: download, selection, densities, labels.

``load_dataset("jarvis", chgcar_dir=...)`` / ``load_dataset("jarvis", root)`` call
:func:`load_jarvis`. The metadata (a list of entries with ``jid``, ``spg_number``,
``bulk_modulus_kv``, ``optb88vdw_total_energy``, ``atoms``) come from ``entries=``
(already in memory), ``jarvis_json=`` (a file), a single ``*.json`` in ``root``, or
else are downloaded with jarvis-tools into the project's cache
(:func:`fetch_jarvis_entries`: checksummed, resumable, fails at once without a
network). The paper's compounds are selected by :func:`select_paper_compounds`: space
group 225 (Fm-3m), 216 (F-43m) or 221 (Pm-3m), a numeric bulk modulus > 0 GPa and a
numeric total energy (JARVIS writes ``"na"`` when one is missing).
``optb88vdw_total_energy`` is already per atom (eV/atom). The densities are CHGCAR
files in ``chgcar_dir`` (default ``root``) named by JARVIS id: ``<jid>``,
``<jid>.<ext>`` or ``<jid>/CHGCAR``, directly or inside ``CHGCAR/``; the form in which
the paper's files would be shared on request. A selected compound without a CHGCAR is
listed in :attr:`Dataset.skipped` and ``Dataset.info["missing_chgcar"]``, with a
warning giving the count.

Densities computed instead by the project's GPAW generator at the JARVIS structures:
:func:`jarvis_dft_entries` makes its work items, and :func:`with_jarvis_labels` joins
its output (``load_dataset(<output dir>)``) to the JARVIS labels. The densities are
then PBE while the labels are OptB88vdW.

On the command line, ``python -m leanecd.data jarvis`` (:func:`add_command`) fetches,
selects, prints the report and writes the work items.

jarvis-tools is imported inside the two functions that use it: it takes about half a
second to import and only the download route needs it. The module is over 500 lines
on purpose: one home for the JARVIS route (download, selection report, CHGCAR and GPAW
densities, command line), which no other module needs.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.formula import Formula

from .dataset import NOT_CHGCAR, TARGETS, Dataset, is_number, load_chgcar_field
from .dft.compounds import atoms_to_dict
from .download import cached_download, default_cache_dir
from .errors import DownloadError, FileFormatError, LeanECDError
from .store import read_json, write_json

__all__ = ["PAPER_SPACE_GROUPS", "PAPER_COUNTS", "jarvis_source", "jarvis_cache_file", "fetch_jarvis_entries",
           "select_paper_compounds", "SelectionReport", "load_jarvis", "jarvis_atoms_to_ase", "jarvis_dft_entries",
           "with_jarvis_labels", "add_command"]

#: The paper's space groups (§2.1, Fig. 1a): two FCC and one simple cubic.
PAPER_SPACE_GROUPS = {225: "Fm-3m", 216: "F-43m", 221: "Pm-3m"}
#: The paper's dataset (§2.1): compounds, distinct elements, compounds per number of
#: elements. As printed, the per-element counts add up to 1,550, not 1,410.
PAPER_COUNTS = {"compounds": 1410, "elements": 62, "by_n_elements": {1: 15, 2: 494, 3: 947, 4: 93, 5: 1}}
_N_ELEMENT_NAMES = {1: "unary", 2: "binary", 3: "ternary", 4: "quaternary", 5: "quinary", 6: "senary"}


def jarvis_source(dataset: str = "dft_3d") -> tuple[str, str]:
    """``(url, json_name)`` of a JARVIS dataset, from jarvis-tools' own table (``get_db_info``).

    The download is ``<json_name>.zip``, a zip holding ``json_name``.
    """
    from jarvis.db.figshare import get_db_info

    info = get_db_info()
    if dataset not in info:
        raise ValueError(f"jarvis-tools knows no dataset {dataset!r}; it knows {sorted(info)}")
    return info[dataset][0], info[dataset][1]


def jarvis_cache_file(dataset: str = "dft_3d", cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`fetch_jarvis_entries` keeps the download: ``<cache_dir>/<json_name>.zip``.

    ``cache_dir`` defaults to ``$LEANECD_CACHE/jarvis`` or ``~/.cache/leanecd/jarvis``
    (never jarvis-tools' default cache).
    """
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir("jarvis")
    return base / (jarvis_source(dataset)[1] + ".zip")


def _check_jarvis_zip(path: Path, member: str) -> str | None:
    """None if ``path`` is a zip whose ``member`` decompresses with a good CRC and looks like a JSON list."""
    first = last = b""
    try:
        with zipfile.ZipFile(path) as zf:
            if member not in zf.namelist():
                return f"the zip lacks {member} (it holds {zf.namelist()[:5]})"
            with zf.open(member) as fh:  # reading to the end checks the CRC-32
                for block in iter(lambda: fh.read(1 << 20), b""):
                    first = first or block.lstrip()[:1]
                    last = block.rstrip()[-1:] or last
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        return f"not a readable zip ({type(exc).__name__}: {exc})"
    if (first, last) != (b"[", b"]"):
        return f"{member} is not a JSON list"
    return None


def fetch_jarvis_entries(dataset: str = "dft_3d", cache_dir: str | os.PathLike | None = None) -> list[dict]:
    """The JARVIS-DFT entries (a list of dicts), downloaded once into the project's cache.

    :func:`leanecd.download.cached_download` fetches jarvis-tools' file (resumable,
    checksummed, atomic; fails at once without a network, naming the embedded
    dataset), then ``jarvis.db.figshare.data(dataset, store_dir=<cache>)`` reads it.
    The file is ``<cache>/<json_name>.zip`` (see :func:`jarvis_cache_file`); one
    copied there by hand is validated and used, so a machine without internet
    can use a file downloaded elsewhere.
    """
    from jarvis.db.figshare import data as jarvis_data

    url, member = jarvis_source(dataset)
    path = jarvis_cache_file(dataset, cache_dir)
    cached_download(
        url,
        path,
        validate=functools.partial(_check_jarvis_zip, member=member),
        offline_hint=(
            'Without a network use the embedded dataset: load_dataset("embedded"). Or download the file '
            f"on a machine with internet and copy it to {path}; it is checked and used."
        ),
    )
    try:
        entries = jarvis_data(dataset, store_dir=str(path.parent))
    except (ValueError, KeyError, EOFError, OSError, zipfile.BadZipFile) as exc:
        for p in (path, path.with_name(path.name + ".sha256")):
            p.unlink(missing_ok=True)
        raise DownloadError(f"{path}: unreadable ({type(exc).__name__}: {exc}); deleted, the next call "
                            "downloads it again") from None
    if not isinstance(entries, list):
        raise FileFormatError(path, f"expected a list of JARVIS-DFT entries, got {type(entries).__name__}")
    return entries


def _as_int(x) -> int | None:
    try:
        return int(x) if not isinstance(x, bool) else None
    except (TypeError, ValueError):
        return None


def _jarvis_elements(where, jid: str, atoms) -> list[str]:
    if not isinstance(atoms, dict) or not isinstance(atoms.get("elements"), list) or not atoms["elements"]:
        raise FileFormatError(where, f"{jid}: 'atoms' lacks a non-empty 'elements' list")
    return [str(s).strip() for s in atoms["elements"]]


def _formula(elements: list[str]) -> str:
    return Formula.from_list(elements).reduce()[0].format("metal")


class SelectionReport:
    """What :func:`select_paper_compounds` kept and dropped, next to the paper's numbers.

    Attributes
    ----------
    space_groups : the space-group numbers selected.
    funnel : counts after each step: ``entries``, ``in_space_groups``,
        ``with_bulk_modulus``, ``with_both_labels``, ``selected``.
    excluded : ``{reason: [jid, ...]}`` for entries in the space groups that were dropped.
    table : one row per selected compound: ``jid, formula, spacegroup, n_elements,
        bulk_modulus_GPa`` (GPa), ``energy_per_atom_eV`` (eV/atom).
    duplicate_formulas : ``{formula: [jid, ...]}`` for reduced formulas selected more
        than once (polymorphs in different space groups, or repeated JARVIS
        calculations); all are kept.
    """

    def __init__(self, space_groups, funnel, excluded, table, duplicate_formulas):
        self.space_groups = list(space_groups)
        self.funnel = dict(funnel)
        self.excluded = dict(excluded)
        self.table = table
        self.duplicate_formulas = dict(duplicate_formulas)

    @property
    def by_space_group(self) -> dict[int, int]:
        """Selected compounds per space-group number."""
        counts = self.table["spacegroup"].value_counts()
        return {int(s): int(counts.get(s, 0)) for s in self.space_groups}

    @property
    def by_n_elements(self) -> dict[int, int]:
        """Selected compounds per number of distinct elements."""
        return {int(k): int(v) for k, v in self.table["n_elements"].value_counts().sort_index().items()}

    @property
    def elements(self) -> list[str]:
        """Distinct elements in the selection, sorted."""
        return sorted({e for els in self.table["elements"] for e in els})

    def comparison(self) -> pd.DataFrame:
        """This selection next to the paper (§2.1): compounds, per number of elements, elements."""
        ours, paper = self.by_n_elements, PAPER_COUNTS["by_n_elements"]
        ks = sorted(set(ours) | set(paper))
        rows = [("compounds", len(self.table), PAPER_COUNTS["compounds"])]
        rows += [(f"{_N_ELEMENT_NAMES.get(k, f'{k} elements')} ({k})", ours.get(k, 0), paper.get(k, 0)) for k in ks]
        rows += [("sum over numbers of elements", sum(ours.values()), sum(paper.values())),
                 ("distinct elements", len(self.elements), PAPER_COUNTS["elements"])]
        table = pd.DataFrame(rows, columns=["", "this selection", "paper"]).set_index("")
        table.index.name = None
        return table

    def as_dict(self) -> dict:
        """The counts as plain JSON-able types (no per-compound table)."""
        return {
            "space_groups": self.space_groups,
            "funnel": self.funnel,
            "excluded": {k: len(v) for k, v in self.excluded.items()},
            "by_space_group": self.by_space_group,
            "by_n_elements": self.by_n_elements,
            "elements": len(self.elements),
            "duplicate_formulas": len(self.duplicate_formulas),
            "entries_with_duplicate_formula": sum(len(v) for v in self.duplicate_formulas.values()),
        }

    def __str__(self) -> str:
        f = self.funnel
        lines = [
            f"{f['entries']:,} entries -> {f['in_space_groups']:,} in space groups {self.space_groups} -> "
            f"{f['with_bulk_modulus']:,} with bulk_modulus_kv -> {f['with_both_labels']:,} also with "
            f"optb88vdw_total_energy -> {f['selected']:,} selected",
            "per space group: " + ", ".join(f"{PAPER_SPACE_GROUPS.get(s, s)} ({s}) {n:,}"
                                            for s, n in self.by_space_group.items()),
        ]
        lines += [f"dropped, {reason}: {len(jids):,}" for reason, jids in self.excluded.items() if jids]
        lines.append(f"formulas selected more than once: {len(self.duplicate_formulas):,} "
                     f"({sum(len(v) for v in self.duplicate_formulas.values()):,} compounds, all kept)")
        lines.append(self.comparison().to_string())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SelectionReport({self.funnel['selected']} selected of {self.funnel['entries']} entries)"


def select_paper_compounds(
    entries: Sequence[dict],
    space_groups: Sequence[int] = tuple(PAPER_SPACE_GROUPS),
    *,
    positive_bulk_modulus: bool = True,
    source: str | os.PathLike | None = None,
) -> tuple[list[dict], SelectionReport]:
    """Select the paper's compounds (§2.1) from JARVIS-DFT ``dft_3d`` entries.

    The rule: ``spg_number`` in ``space_groups`` (225 Fm-3m, 216 F-43m, 221 Pm-3m),
    ``bulk_modulus_kv`` (Voigt bulk modulus from the elastic tensor, GPa) and
    ``optb88vdw_total_energy`` (eV/atom) both numbers (JARVIS writes ``"na"`` for a
    missing value), and, with ``positive_bulk_modulus``, a bulk modulus > 0 GPa (a
    value ≤ 0 comes from an unstable elastic tensor; the report counts them). Entries
    with the same formula are all kept and counted in the report.

    Returns the selected entries (the input dicts, in input order) and a
    :class:`SelectionReport`. ``source`` names the file in error messages.
    Raises :class:`FileFormatError` for an entry without a string ``jid``, a
    duplicate ``jid``, or a selected entry without ``atoms.elements``.
    """
    wanted = [int(s) for s in space_groups]
    reasons = ("bulk_modulus_kv missing", "optb88vdw_total_energy missing", "bulk_modulus_kv <= 0 GPa")
    excluded: dict[str, list[str]] = {r: [] for r in reasons}
    funnel = dict.fromkeys(("entries", "in_space_groups", "with_bulk_modulus", "with_both_labels", "selected"), 0)
    funnel["entries"] = len(entries)
    selected, rows, seen = [], [], set()
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("jid"), str):
            raise FileFormatError(source, f"entry {k} is not an object with a string 'jid'")
        jid = e["jid"]
        if jid in seen:
            raise FileFormatError(source, f"duplicate jid {jid!r}")
        seen.add(jid)
        spg = _as_int(e.get("spg_number"))
        if spg not in wanted:
            continue
        funnel["in_space_groups"] += 1
        b, en = e.get("bulk_modulus_kv"), e.get("optb88vdw_total_energy")
        if not is_number(b):
            excluded[reasons[0]].append(jid)
            continue
        funnel["with_bulk_modulus"] += 1
        if not is_number(en):
            excluded[reasons[1]].append(jid)
            continue
        funnel["with_both_labels"] += 1
        if positive_bulk_modulus and not b > 0:
            excluded[reasons[2]].append(jid)
            continue
        funnel["selected"] += 1
        elements = _jarvis_elements(source, jid, e.get("atoms"))
        selected.append(e)
        rows.append({"jid": jid, "formula": _formula(elements), "spacegroup": spg,
                     "n_elements": len(set(elements)), "elements": sorted(set(elements)),
                     "bulk_modulus_GPa": float(b), "energy_per_atom_eV": float(en)})
    table = pd.DataFrame(rows, columns=["jid", "formula", "spacegroup", "n_elements", "elements",
                                        "bulk_modulus_GPa", "energy_per_atom_eV"])
    groups = table.groupby("formula", sort=True)["jid"].apply(list)
    duplicates = {f: jids for f, jids in groups.items() if len(jids) > 1}
    return selected, SelectionReport(wanted, funnel, excluded, table, duplicates)


# ----------------------------------------------------------------- JARVIS: densities from CHGCAR files


def _chgcar_index(root: Path) -> dict[str, list[Path]]:
    """CHGCAR files under ``root`` by the id they are named after.

    Recognised: ``<id>``, ``<id>.<ext>`` (e.g. ``JVASP-1002.CHGCAR``), ``<id>/CHGCAR``, and
    the same names inside ``<root>/CHGCAR/``.
    """
    index: dict[str, list[Path]] = {}
    for base in (root, root / "CHGCAR"):
        if not base.is_dir():
            continue
        for p in sorted(base.iterdir()):
            if p.name.startswith("."):
                continue
            if p.is_file() and p.suffix.lower() not in NOT_CHGCAR:
                index.setdefault(p.stem if p.suffix else p.name, []).append(p)
            elif p.is_dir() and (p / "CHGCAR").is_file():
                index.setdefault(p.name, []).append(p / "CHGCAR")
    return index


def _find_jarvis_json(root: Path | None, jarvis_json) -> Path:
    if jarvis_json is not None:
        p = Path(jarvis_json)
        p = p if p.is_absolute() or p.exists() or root is None else root / p
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


def _jarvis_entries_for(root, jarvis_json, entries, dataset, cache_dir) -> tuple[list, str, str]:
    """``(entries, where they came from, version)`` for :func:`load_jarvis`."""
    if entries is not None:
        return list(entries), "entries given in memory", "entries"
    if root is not None or jarvis_json is not None:
        jpath = _find_jarvis_json(None if root is None else Path(root), jarvis_json)
        data = read_json(jpath)
        if not isinstance(data, list):
            raise FileFormatError(jpath, f"expected a list of JARVIS-DFT entries, got {type(data).__name__}")
        return data, str(jpath), jpath.stem
    path = jarvis_cache_file(dataset, cache_dir)
    return fetch_jarvis_entries(dataset, cache_dir), str(path), Path(jarvis_source(dataset)[1]).stem


def load_jarvis(
    root: str | os.PathLike | None = None,
    *,
    chgcar_dir: str | os.PathLike | None = None,
    jarvis_json: str | os.PathLike | None = None,
    entries: Sequence[dict] | None = None,
    jarvis_dataset: str = "dft_3d",
    cache_dir: str | os.PathLike | None = None,
    space_groups: Sequence[int] = tuple(PAPER_SPACE_GROUPS),
) -> Dataset:
    """The paper's JARVIS-DFT compounds with their CHGCARs (see the module docstring); the
    options are those :func:`leanecd.data.load_dataset` documents as JARVIS-only."""
    if root is None and chgcar_dir is None:
        raise ValueError(
            "load_dataset('jarvis') needs the charge densities: chgcar_dir=<directory of CHGCAR files named by "
            "JARVIS id> (or root=<directory holding the dft_3d *.json and the CHGCARs>). For the metadata "
            "alone use select_paper_compounds(fetch_jarvis_entries()); to compute the densities with GPAW "
            "see jarvis_dft_entries()."
        )
    chg_root = Path(chgcar_dir if chgcar_dir is not None else root)
    if not chg_root.is_dir():
        raise FileFormatError(chg_root, "no such directory (expected CHGCAR files named by JARVIS id)")
    raw, where, version = _jarvis_entries_for(root, jarvis_json, entries, jarvis_dataset, cache_dir)
    selected, report = select_paper_compounds(raw, space_groups, source=where)
    index = _chgcar_index(chg_root)
    rows, loaders, missing = [], {}, []
    for e in selected:
        jid = e["jid"]
        files = index.get(jid, [])
        if len(files) > 1:
            raise FileFormatError(chg_root, f"several CHGCAR files for {jid}: {[str(p) for p in files]}; keep one")
        if not files:
            missing.append(jid)
            continue
        elements = _jarvis_elements(where, jid, e["atoms"])
        spg = _as_int(e["spg_number"])
        rows.append({
            "id": jid,
            "formula": e.get("formula") or _formula(elements),
            "spacegroup": spg,
            "spacegroup_symbol": e.get("spg_symbol", PAPER_SPACE_GROUPS.get(spg)),
            "n_elements": len(set(elements)),
            "elements": sorted(set(elements)),
            "natoms": len(elements),
            "bulk_modulus_GPa": float(e["bulk_modulus_kv"]),
            "energy_per_atom_eV": float(e["optb88vdw_total_energy"]),
        })
        loaders[jid] = functools.partial(load_chgcar_field, files[0], jid)
    if missing:
        warnings.warn(f"{len(missing)} of {len(selected)} selected JARVIS compounds have no CHGCAR in {chg_root} "
                      "(listed in Dataset.info['missing_chgcar'] and Dataset.skipped)",
                      stacklevel=4)  # the caller of load_dataset: load_dataset -> Source.load -> here
    selected_ids = {e["jid"] for e in selected}
    columns = ["id", "formula", "spacegroup", "spacegroup_symbol", "n_elements", "elements", "natoms", *TARGETS]
    return Dataset(
        name="jarvis-dft-3d",
        version=version,
        source=f"JARVIS-DFT {where} with CHGCARs under {chg_root} (space groups {report.space_groups})",
        table=pd.DataFrame(rows, columns=columns).set_index("id", drop=True),
        loaders=loaders,
        skipped={jid: f"no CHGCAR named {jid}, {jid}.<ext> or {jid}/CHGCAR in {chg_root}" for jid in missing},
        info={
            "json": where,
            "selection": report.as_dict(),
            "space_groups": report.space_groups,
            "with_chgcar": len(loaders),
            "missing_chgcar": missing,
            "chgcar_outside_selection": sorted(set(index) - selected_ids),
        },
        root=chg_root,
    )


# ----------------------------------------------------------------- JARVIS: densities from GPAW


def jarvis_atoms_to_ase(atoms: dict):
    """An ``ase.Atoms`` from a JARVIS ``atoms`` dict (``lattice_mat`` in Å, ``coords``,
    ``elements``, ``cartesian``: whether ``coords`` are Cartesian Å or fractional)."""
    try:
        cell = np.asarray(atoms["lattice_mat"], dtype=float)
        coords = np.asarray(atoms["coords"], dtype=float)
        elements = [str(s).strip() for s in atoms["elements"]]
        cartesian = bool(atoms.get("cartesian", False))
    except (KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(None, f"malformed JARVIS atoms dict ({type(exc).__name__}: {exc})") from None
    if cell.shape != (3, 3) or coords.shape != (len(elements), 3):
        raise FileFormatError(None, f"JARVIS atoms: lattice_mat {cell.shape} must be 3x3 and coords "
                                    f"{coords.shape} one row of 3 per element ({len(elements)})")
    where = {"positions": coords} if cartesian else {"scaled_positions": coords}
    return Atoms(symbols=elements, cell=cell, pbc=True, **where)


def jarvis_dft_entries(selected: Sequence[dict]) -> list[dict]:
    """Work items for the project's GPAW generator, one per selected JARVIS entry.

    Each is ``{"id": jid, "structure": {"numbers", "cell" (Å), "scaled_positions",
    "pbc"}, "meta": {jid, formula, spg_number, spg_symbol, bulk_modulus_kv (GPa),
    optb88vdw_total_energy (eV/atom), source}}``. Write them with
    ``leanecd.store.write_json("entries.json", ...)`` and run (on a Dask cluster)::

        python -m leanecd.dft run --entries entries.json --out data/jarvis-gpaw \\
            --scheduler tcp://host:8786

    The generator runs the embedded dataset's protocol at each JARVIS structure: its
    densities and labels are GPAW-PBE. :func:`with_jarvis_labels` swaps in the
    JARVIS OptB88vdW labels.
    """
    items = []
    for e in selected:
        atoms = jarvis_atoms_to_ase(e["atoms"])
        items.append({
            "id": e["jid"],
            "structure": atoms_to_dict(atoms),
            "meta": {
                "jid": e["jid"],
                "formula": e.get("formula") or _formula(atoms.get_chemical_symbols()),
                "spg_number": _as_int(e.get("spg_number")),
                "spg_symbol": e.get("spg_symbol"),
                "bulk_modulus_kv": e.get("bulk_modulus_kv"),
                "optb88vdw_total_energy": e.get("optb88vdw_total_energy"),
                "source": "JARVIS-DFT dft_3d",
            },
        })
    return items


def with_jarvis_labels(ds: Dataset, entries: Sequence[dict]) -> Dataset:
    """``ds`` (the GPAW generator's output on JARVIS structures) with the JARVIS labels.

    Joined by id = ``jid``: ``bulk_modulus_GPa`` becomes JARVIS ``bulk_modulus_kv``
    (Voigt average of the OptB88vdW elastic tensor, GPa) and ``energy_per_atom_eV``
    becomes ``optb88vdw_total_energy`` (eV/atom); the GPAW-PBE values move to
    ``pbe_bulk_modulus_GPa`` (Birch–Murnaghan fit) and ``pbe_energy_per_atom_eV``.
    Compounds without a JARVIS entry with numeric labels are left out and listed in
    :attr:`Dataset.skipped`. The densities stay PBE.
    """
    by_jid = {e["jid"]: e for e in entries if isinstance(e, dict) and "jid" in e}
    keep, skipped = [], dict(ds.skipped)
    labels = {}
    for id_ in ds.ids:
        e = by_jid.get(id_)
        if e is None:
            skipped[id_] = "no JARVIS entry with this jid"
        elif not (is_number(e.get("bulk_modulus_kv")) and is_number(e.get("optb88vdw_total_energy"))):
            skipped[id_] = "JARVIS entry lacks bulk_modulus_kv or optb88vdw_total_energy"
        else:
            keep.append(id_)
            labels[id_] = (float(e["bulk_modulus_kv"]), float(e["optb88vdw_total_energy"]))
    table = ds.table.loc[keep].copy()
    for col in TARGETS:
        table["pbe_" + col] = table[col]
    table["bulk_modulus_GPa"] = [labels[i][0] for i in keep]
    table["energy_per_atom_eV"] = [labels[i][1] for i in keep]
    return Dataset(
        name=f"{ds.name}+jarvis-labels",
        version=ds.version,
        source=f"{ds.source}; labels from JARVIS-DFT OptB88vdW (densities GPAW-PBE)",
        table=table,
        loaders={i: ds.loader(i) for i in keep},
        failures=ds.failures,
        skipped=skipped,
        info={**ds.info, "labels": "JARVIS-DFT OptB88vdW: bulk_modulus_kv (GPa), optb88vdw_total_energy (eV/atom); "
                                   "densities GPAW-PBE; GPAW-PBE labels in pbe_* columns"},
        root=ds.root,
    )


# --------------------------------------------------------------------------- command line


def add_command(subparsers) -> None:
    """Add ``jarvis`` to ``python -m leanecd.data``: fetch, select, print the report and
    (``--entries entries.json``) write the GPAW generator's work items."""
    p = subparsers.add_parser("jarvis", help="select the paper's compounds from JARVIS-DFT and print the report",
                              description="The JARVIS route (needs a network the first time; the download is cached).")
    p.add_argument("--entries", default=None, help="write the GPAW generator's work items to this JSON file")
    p.add_argument("--dataset", default="dft_3d", help="jarvis-tools dataset name (default dft_3d)")
    p.add_argument("--cache", default=None, help="download cache (default $LEANECD_CACHE/jarvis or "
                   "~/.cache/leanecd/jarvis)")
    p.set_defaults(run=_command)


def _command(args: argparse.Namespace) -> int:
    try:
        selected, report = select_paper_compounds(fetch_jarvis_entries(args.dataset, args.cache))
    except LeanECDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report)
    if args.entries:
        print(write_json(args.entries, jarvis_dft_entries(selected)), f"({len(selected)} work items)")
    return 0
