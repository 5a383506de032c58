"""The labels: the columns of ``labels.csv`` and each row from a record, the labels' reliability,
and ``dataset.json`` with the SHA-256 of every data file."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import eos
from ..store import atomic_path, read_json, write_json
from .layout import HISTORY, probe_moment, recompute_failure
from .references import Reference, disagreement, references
from .settings import DATASET_NAME, DATASET_VERSION, DFTSettings, protocol_version, unconverged_reason


def write_dataset_json(out: Path, settings: DFTSettings = DFTSettings()) -> None:
    """Write ``dataset.json`` (name, version, settings, the SHA-256 of every data file) if it changed."""
    meta = {
        "name": DATASET_NAME,
        "version": DATASET_VERSION,
        "settings": asdict(settings),
        "density": "GPAW get_pseudo_density(): pseudo density + PAW compensation charges, e/Å³, "
        "on the calculation's real-space grid; integrates to the number of valence electrons",
        "labels": "GPAW-PBE values (not JARVIS OptB88vdW)",
        "files": file_hashes(out),  # SHA-256 of every data file
    }
    path = out / "dataset.json"
    if not path.exists() or read_json(path) != json.loads(json.dumps(meta)):
        write_json(path, meta)


#: The columns of ``labels.csv``: name -> (unit, meaning). The card's units table is made from this.
LABEL_COLUMNS = {
    "id": ("", "compound id: reduced formula and prototype"),
    "formula": ("", "chemical formula of the stored cell"),
    "prototype": ("", "structure prototype (leanecd.dft.PROTOTYPES)"),
    "spacegroup": ("", "space-group number"),
    "spacegroup_symbol": ("", "Hermann–Mauguin symbol"),
    "n_elements": ("", "number of distinct elements"),
    "natoms": ("atoms", "atoms in the stored cell"),
    "cell": ("", "primitive (FCC lattices) or conventional (simple cubic)"),
    "a0_A": ("Å", "equilibrium conventional lattice constant (Birch–Murnaghan fit)"),
    "bulk_modulus_GPa": ("GPa", "bulk modulus B at V0 (Birch–Murnaghan fit)"),
    "bulk_modulus_prime": ("1", "pressure derivative B′ of the bulk modulus"),
    "energy_per_atom_eV": ("eV/atom", "total energy E0 at V0 per atom (GPAW's reference: isolated PAW atoms)"),
    "fit_rms_meV_per_atom": ("meV/atom", "root-mean-square residual of the E(V) fit"),
    "bulk_modulus_uncertainty_GPa": ("GPa", "largest change of B over leave-one-point-out and B′ = 4 refits"),
    "a0_uncertainty_A": ("Å", "largest change of a0 over the same refits"),
    "reliability": ("", "ok, or uncertain (see reliability_reason)"),
    "reliability_reason": ("", "why a label is uncertain (empty when ok)"),
    "eos_points": ("", "E(V) points in the fit"),
    "ecut_eV": ("eV", "plane-wave cut-off of the production scan"),
    "kpt_density": ("Å", "k-point density (points per Å⁻¹ of reciprocal vector) of the production scan"),
    "magmom_total": ("μB per cell", "total magnetic moment at a0 (0 if spin-paired)"),
    "magmom_max_local": ("μB", "largest local moment at a0 (0 if spin-paired)"),
    "spin_polarized": ("", "whether the production scan was spin-polarised"),
    "n_valence": ("electrons per cell", "valence electrons of the PAW setups"),
    "field_electrons": ("electrons per cell", "integral of the stored density"),
    "field_min": ("e/Å³", "smallest value of the stored density (negative near some cores)"),
    "wall_s": ("s", "wall time of the compound's calculation"),
    "cpu_s": ("s", "CPU time of the compound's single-threaded process (empty where not recorded, protocol 0.1.0)"),
    "n_scf": ("", "SCF calculations run"),
    "protocol": ("", "protocol version the record was computed with (book/changelog.md)"),
    "scan_offset": ("1", "V0 / (centre of the fitted volumes) − 1"),
}


def _fit_points(record: dict) -> tuple[np.ndarray, np.ndarray]:
    """The E(V) points of a record's fit: volumes (Å³) and energies (eV per cell)."""
    v = np.asarray(record["eos_volumes_A3"], float)
    e = np.asarray(record["eos_energies_eV"], float)
    used = np.asarray(record.get("eos_used", [True] * len(v)), bool)
    return v[used], e[used]


def magnetic_transition(record: dict, settings: DFTSettings = DFTSettings()) -> str:
    """A reason if the E(V) points of a record's fit mix spin-paired and magnetic SCFs (largest local
    moment below and at or above ``settings.spin_collapse_muB``): one Birch–Murnaghan curve then
    spans two magnetic states. "" otherwise, or without moments per volume (before 0.7.0)."""
    moments = record.get("eos_max_local_moments_muB")
    if not moments or not record.get("spin_polarized"):
        return ""
    used = record.get("eos_used", [True] * len(moments))
    m = [x for x, u in zip(moments, used) if u]
    magnetic = [x >= settings.spin_collapse_muB for x in m]
    if all(magnetic) or not any(magnetic):
        return ""
    return (f"the scan mixes spin-paired and magnetic points ({sum(magnetic)} of {len(m)} magnetic, up to "
            f"{max(m):.2f} μB): E(V) spans two magnetic states")


def label_reliability(record: dict, settings: DFTSettings = DFTSettings(),
                      refs: list[Reference] = (), failure: dict | None = None,
                      probe: dict | None = None) -> tuple[str, str]:
    """(``ok`` | ``uncertain``, reason) of a record's labels (:func:`leanecd.eos.reliability`); also
    ``uncertain`` when their E(V) spans two magnetic states (:func:`magnetic_transition`), when they
    miss the targets against a GPAW-PBE reference in ``refs``
    (:func:`leanecd.dft.references.disagreement`), when ``failure``, their recomputation under
    this protocol (:func:`leanecd.dft.layout.recompute_failure`), failed, or when ``probe``, a spin
    probe of the spin-paired record (:func:`leanecd.dft.layout.probe_moment`), found a moment."""
    v, e = _fit_points(record)
    unc = eos.uncertainty(v, e)
    flag, why = eos.reliability(record["bulk_modulus_prime"], record["fit_rms_meV_per_atom"], unc,
                                record["bulk_modulus_GPa"], unconverged_reason(record, settings))
    mixed = magnetic_transition(record, settings)
    off = disagreement(record, list(refs))
    failed = f"its recomputation under protocol {DATASET_VERSION} failed: {failure['reason']}" if failure else ""
    magnetised = (f"a spin probe found a local moment of {probe['max_local_moment_muB']:.2f} μB at a = "
                  f"{probe['a_A']:.3f} Å; these labels are spin-paired (protocol {protocol_version(record)}) "
                  f"until the compound is recomputed") if probe else ""
    more = [w for w in (mixed, off, failed, magnetised) if w]
    return ("uncertain", "; ".join(w for w in (why, *more) if w)) if more else (flag, why)


def label_row(record: dict, refs: list[Reference] = (), failure: dict | None = None,
              probe: dict | None = None) -> dict:
    """One row of ``labels.csv`` (:data:`LABEL_COLUMNS`) from a record; ``refs``, ``failure`` and
    ``probe``: the independent references, the failed recomputation and the spin probe its flag is
    checked against (:func:`label_reliability`)."""
    v, e = _fit_points(record)
    unc = eos.uncertainty(v, e)
    flag, why = label_reliability(record, refs=refs, failure=failure, probe=probe)
    return {**record, "protocol": protocol_version(record), "scan_offset": scan_offset(record),
            "bulk_modulus_uncertainty_GPa": unc.b_spread_GPa, "a0_uncertainty_A": unc.a0_spread * record["a0_A"],
            "reliability": flag, "reliability_reason": why, "eos_points": len(v),
            "ecut_eV": record["settings"]["ecut_eV"], "kpt_density": record["settings"]["kpt_density"],
            "magmom_max_local": record.get("magmom_max_local", 0.0)}


def write_labels(out: str | os.PathLike) -> Path:
    """Regenerate ``labels.csv`` (one row per good compound) from ``records/``, and the
    SHA-256 of every file in ``dataset.json``."""
    out = Path(out)
    rows = [read_json(p) for p in sorted((out / "records").glob("*.json"))]
    refs = references(out.parent)
    with atomic_path(out / "labels.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=LABEL_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow(label_row(r, refs, recompute_failure(out, r), probe_moment(out, r)))  # full precision
    write_dataset_json(out)
    return out / "labels.csv"


def file_hashes(out: str | os.PathLike) -> dict[str, str]:
    """SHA-256 (hex) of every data file of the dataset in ``out``, by path relative to it
    (records, fields, failures, history, labels.csv; not dataset.json itself, logs or claims)."""
    out = Path(out)
    paths = [p for d in ("records", "fields", "failures", HISTORY) for p in sorted((out / d).glob("*")) if p.is_file()
             and not p.name.startswith(".")]
    paths += [out / "labels.csv"] if (out / "labels.csv").exists() else []
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def scan_offset(record: dict) -> float:
    """V0 / (centre of the fitted volumes) − 1: how far the production scan sat from the
    minimum it found. Scans more than 2 % off-centre (versions 0.1–0.3 only) can bias B
    by several per cent."""
    v = np.asarray(record["eos_volumes_A3"], float)
    if "eos_used" in record:
        v = v[np.asarray(record["eos_used"], bool)]
    mult = 4 if record.get("cell") == "primitive" else 1
    return float(record["a0_A"] ** 3 / mult / ((v.min() + v.max()) / 2) - 1)
