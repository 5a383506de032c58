"""PBE references for the stored labels (independent ones and the convergence study's dense runs), and the rule
that flags a label far from one.

Three sources computed outside this project's protocol, and this project's own converged runs:

* the Δ-project's all-electron (WIEN2k) equations of state of the fcc elements
  (Lejaeghere et al., Science 351, aad3000, 2016): :data:`DELTA_WIEN2K`;
* dense 7-point GPAW-PBE scans at 700–800 eV of four ionic compounds, from the audit behind
  protocol 0.7.0 (B only): :data:`AUDIT_B_GPA`;
* the ACWF verification study (Bosoni et al., Nat. Rev. Phys. 6, 45, 2024): GPAW with the
  PAW setups 0.9.20000, and the mean of the all-electron codes WIEN2k and FLEUR, for the
  compounds of this dataset it holds (``<data>/references/acwf-pbe.json``, :data:`ACWF_FILE`);
* the dense reference runs of the convergence study (``benchmarks/dft_settings_study.py``, in
  ``<data>/convergence/``, :data:`STUDY_DIR`): the same code and setups at a higher cut-off and
  k-point density than the protocol's, so a label far from one is not converged.

A label is flagged ``uncertain`` when it misses :data:`VALIDATION_TARGETS` against a reference
computed with GPAW-PBE (same code and PAW setups): that is a disagreement of two calculations of
the same model, not a difference between PAW and all-electron physics.

Units: a0 Å (conventional cubic edge), B GPa, volumes Å³ per atom.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from .. import eos
from ..eos import EV_PER_A3_IN_GPA
from ..store import read_json
from .compounds import PROTOTYPES, cells_per_cube

#: the fcc elements of the Δ-project: V0 per atom (Å³) and B (GPa), all-electron WIEN2k PBE
DELTA_WIEN2K = {"Al": (16.48, 78.0), "Cu": (11.95, 141.3), "Ag": (17.85, 90.1), "Au": (17.97, 139.1),
                "Pd": (15.31, 168.6), "Pt": (15.64, 248.7), "Ni": (10.89, 200.4), "Ca": (42.20, 17.1),
                "Sr": (54.23, 11.3), "Pb": (32.00, 39.7), "Rh": (14.04, 257.5), "Ir": (14.50, 347.5)}
#: B (GPa) of dense 7-point GPAW-PBE E(V) scans at 700-800 eV from the audit behind protocol 0.7.0
AUDIT_B_GPA = {"LiF-rocksalt": 69.5, "MgO-rocksalt": 150.7, "NaF-rocksalt": 45.8, "SrF2-fluorite": 63.6}
#: what a stored label must reach against an independent reference: B within 5 %, a0 within 0.5 %
VALIDATION_TARGETS = {"B": 0.05, "a0": 0.005}
#: the ACWF study's equations of state, in ``<data>/references/``
ACWF_FILE = "acwf-pbe.json"
#: the ACWF study's all-electron codes; their mean is the all-electron reference
ACWF_ALL_ELECTRON = ("wien2k", "fleur")
#: the convergence study's runs, ``<data>/convergence/<id>/<cut-off>eV-k<density>[-w<width>].json``
STUDY_DIR = "convergence"


@dataclass(frozen=True)
class Reference:
    """One independent value of one compound: a0 (Å, NaN when the source gives none) and B (GPa);
    ``gpaw``: computed with GPAW-PBE, the labels' own code and setups."""

    id: str
    source: str
    a0_A: float
    B_GPa: float
    gpaw: bool


def a0_from_volume(cid: str, volume_per_atom: float) -> float:
    """Conventional cubic edge (Å) of compound ``cid`` ("<formula>-<prototype>") at a volume per atom (Å³)."""
    prototype = cid.split("-", 1)[1]
    return (len(PROTOTYPES[prototype].sites) * cells_per_cube(prototype) * volume_per_atom) ** (1 / 3)


def acwf_references(path: str | os.PathLike) -> list[Reference]:
    """The ACWF study's GPAW and all-electron (mean of WIEN2k and FLEUR) references in ``path``."""
    refs = []
    for cid, codes in read_json(path)["compounds"].items():
        g = codes["gpaw"]
        refs.append(Reference(cid, "ACWF GPAW", a0_from_volume(cid, g["V0_A3_per_atom"]),
                              g["B0_eV_per_A3"] * EV_PER_A3_IN_GPA, True))
        ae = [codes[c] for c in ACWF_ALL_ELECTRON]
        v = sum(c["V0_A3_per_atom"] for c in ae) / len(ae)
        b = sum(c["B0_eV_per_A3"] for c in ae) / len(ae) * EV_PER_A3_IN_GPA
        refs.append(Reference(cid, "ACWF all-electron", a0_from_volume(cid, v), b, False))
    return refs


def study_fit(run: dict) -> tuple[float, eos.Fit] | None:
    """A convergence-study run's Birch–Murnaghan fit (:func:`leanecd.eos.fit`) and its a0 (Å,
    conventional cubic edge), or None where the fit finds no minimum."""
    f = eos.fit(run["eos_volumes_A3"], run["eos_energies_eV"])
    if f is None:
        return None
    return (f.v0 * cells_per_cube(run["id"].split("-", 1)[1])) ** (1 / 3), f


def study_references(path: str | os.PathLike) -> list[Reference]:
    """The convergence study's reference runs in ``path`` (:data:`STUDY_DIR`), one per compound (the
    densest where there are several), as GPAW references."""
    best = {}
    for p in sorted(Path(path).glob("*/*.json")):
        run = read_json(p)
        if not run["reference"] or (fitted := study_fit(run)) is None:
            continue
        key = (float(run["ecut_eV"]), float(run["kpt_density"]))
        if run["id"] not in best or key > best[run["id"]][0]:
            source = f"study {key[0]:.0f} eV, k {key[1]:g} Å"
            best[run["id"]] = key, Reference(run["id"], source, fitted[0], fitted[1].b, True)
    return [ref for _, ref in best.values()]


def references(data_dir: str | os.PathLike | None = None) -> list[Reference]:
    """Every reference: the Δ-project's, the audit's and, when ``<data_dir>`` holds them, the ACWF
    study's (``references/``) and the convergence study's reference runs (``convergence/``);
    ``data_dir``: the folder above the dataset, e.g. ``data``."""
    refs = [Reference(f"{el}-fcc", "Δ-project WIEN2k", a0_from_volume(f"{el}-fcc", v), b, False)
            for el, (v, b) in DELTA_WIEN2K.items()]
    refs += [Reference(cid, "audit GPAW 700–800 eV", math.nan, b, True) for cid, b in AUDIT_B_GPA.items()]
    if data_dir is not None:
        if (acwf := Path(data_dir) / "references" / ACWF_FILE).is_file():
            refs += acwf_references(acwf)
        refs += study_references(Path(data_dir) / STUDY_DIR)
    return refs


def deviation(record: dict, ref: Reference) -> tuple[float, float, bool]:
    """(ΔB, Δa0) of a record from a reference as fractions (Δa0 NaN without a reference a0), and
    whether both meet :data:`VALIDATION_TARGETS`."""
    db = record["bulk_modulus_GPa"] / ref.B_GPa - 1
    da = record["a0_A"] / ref.a0_A - 1
    within = abs(db) <= VALIDATION_TARGETS["B"] and not abs(da) > VALIDATION_TARGETS["a0"]
    return db, da, bool(within)


def disagreement(record: dict, refs: list[Reference]) -> str:
    """Why a record misses the targets against a GPAW-PBE reference of the same compound, or ""."""
    why = []
    for ref in refs:
        if ref.id != record["id"] or not ref.gpaw:
            continue
        db, da, within = deviation(record, ref)
        if not within:
            a = "" if math.isnan(da) else f", a0 {100 * da:+.2f} %"
            why.append(f"B {100 * db:+.1f} %{a} from {ref.source} (targets "
                       f"{VALIDATION_TARGETS['B']:.0%}, {VALIDATION_TARGETS['a0']:.1%})")
    return "; ".join(why)
