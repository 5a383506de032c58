"""The project's own dataset: GPAW plane-wave DFT of cubic crystals.

For every compound this module

1. builds the structure from a cubic prototype (FCC-lattice prototypes in their
   **primitive** cell, as JARVIS stores them);
2. finds the equilibrium lattice constant: a cheap bracketing scan at coarse
   settings (3 points on the grid a_guess × 1.04^k, extended one point at a time
   until the minimum is inside; the guess is calibrated per prototype), then a production
   scan of 7 volumes around it (5 before protocol 0.7.0) with the **k-point mesh held
   fixed** for all volumes, re-centred again if the minimum is at an edge; the cut-off and
   k-point density depend on the chemistry (:meth:`DFTSettings.for_species`, 0.7.0);
   Compounds with an open d or f shell (Mn, Fe, Co, Ni or Cr only before 0.7.0) start the
   coarse scan spin-polarised from a ferromagnetic start; if no local moment survives it (all < 0.05 μB) near the
   coarse minimum (coarse points within 5 % of its lattice constant, since protocol
   0.6.0), the production scan runs spin-paired (the same solution, at half the cost);
   a moment seen only away from the minimum is first checked by one spin-polarised
   production SCF at the largest volume (0.6.1).
   Each spin-paired SCF of a scan starts from the wave functions and density of the
   previous volume (GPAW's plane-wave morph; same cutoff and k mesh, so the converged
   energy is the same as from scratch; since compound 167), and since protocol 0.5.0
   each spin-polarised one too, from the previous magnetised density, when that SCF
   kept a local moment;
3. fits a Birch–Murnaghan E(V) (ASE) for a0 (Å), B (GPa), B′ and E0;
4. runs one more SCF at a0 and stores its charge density and total energy per atom
   (since protocol 0.4.0 the production scan leaves out its centre volume and this
   SCF, at the a0 of the 4 other volumes, is the fit's fifth point; the field is
   recomputed at the final a0 if they differ by more than ``field_a_tolerance``);
5. checks the quality gates and writes ``fields/<id>.npz`` then
   ``records/<id>.json`` atomically (the record is the commit marker), or
   ``failures/<id>.json`` with the reason.

The stored field is GPAW's ``get_pseudo_density()``: the smooth pseudo density plus
the PAW compensation charges, on the calculation's real-space grid, in e/Å³. It is
GPAW's analogue of a VASP CHGCAR (pseudo density plus augmentation charges): it
integrates to the number of valence electrons, and like a CHGCAR it can be
negative near the cores, which is what the renormalisation chapter is for.

Run a batch with ``leanecd-dft run --out data/embedded --limit 200 --workers 2``;
it resumes where it stopped. ``leanecd-dft recompute`` recomputes the stored compounds
the current protocol changes (:func:`recompute_plan`; ``--which probe``: spin probes,
``--which retry``: failed compounds from another start), appending files and keeping the
earlier records in ``history/``. Requires the ``dft`` extra (GPAW).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import DFTError
from .field import ECDField
from .store import read_json, save_field, write_json

DATASET_NAME = "leanecd-gpaw-cubic"
DATASET_VERSION = "0.7.0"  #: the protocol's version; the loaded data's is "<this>+<n>cpd"

#: The protocol's versions: (version, what changed). A record's version is ``record["protocol"]``
#: (from 0.3.0), else told by its settings (see :func:`protocol_version`).
PROTOCOL_HISTORY = [
    ("0.1.0", "every SCF from scratch; the spin rule and the SCF retry added after compound 53, "
              "CPU times recorded after compound 69"),
    ("0.2.0", "spin-paired SCFs of a scan start from the previous volume's wave functions (same energies, "
              "16 % less CPU on NiPbTi); the computing order weighted toward the paper's composition"),
    ("0.3.0", "coarse scan on a 4 % grid extended one point at a time, from a guess calibrated per prototype "
              "(ternary guesses were 10-15 % too large: 9-11 coarse SCFs)"),
    ("0.4.0", "the field SCF is the production scan's centre point: 4 volumes, a preliminary a0 from them, "
              "the field there, the fit on all 5 (one SCF fewer); the field is recomputed at the final a0 "
              "if the two differ by more than 0.2 %; the scan is re-centred on the fitted V0 when that is "
              "more than 2 % from its centre (rule added after the first 5 compounds of 0.4.0, whose settings lack "
              "recentre_volume; one of them, GaNi3N, sits 3 % off-centre)"),
    ("0.5.0", "spin-polarised SCFs of a scan start from the previous volume's magnetised density and wave "
              "functions when its local moment survived (same energies and moments; 19 % less CPU on Co2InZr)"),
    ("0.6.0", "spin polarisation decided by the coarse points within 5 % of the coarse minimum's lattice "
              "constant (the production scan's volumes), not by every coarse point: a moment found only at "
              "an expanded guess no longer makes a non-magnetic compound spin-polarised (FeNbN: same B, "
              "359 → 165 CPU-s)"),
    ("0.6.1", "a moment that the coarse scan saw only away from its minimum is checked by one spin-polarised "
              "production SCF at the scan's largest volume (ferromagnetic start): if it survives there the "
              "scan is spin-polarised and that SCF is one of its points, else the SCF is dropped"),
    ("0.6.2", "every SCF attempt but the last (damped) one stops after 120 iterations, not 300 (the 1,686 "
              "converged SCFs in the GPAW logs of 425 compounds took at most 39, and no SCF that ran past 60 "
              "converged), so a stalled SCF reaches the damped retry ~20 min sooner and every SCF that "
              "converges gives the same result; the GPAW log of a compound keeps all its SCFs (it was "
              "restarted by each new calculator)"),
    ("0.7.0", "settings per chemistry from the convergence study (benchmarks/dft_settings_study.py): compounds "
              "with O, N or F at a higher cut-off (DFTSettings.hard_ecut_eV); 7 E(V) points (V/V_est 0.91 … 1.09) "
              "instead of 5; every compound with an open d or f shell gets a spin probe (spin_rule "
              "'open-shell'); E(V) moments per volume stored; labels carry an uncertainty and a reliability "
              "flag. Older records that need it are recomputed from their a0 (no coarse scan; "
              "recompute_plan), the earlier record kept in history/"),
]


def scan_offset(record: dict) -> float:
    """V0 / (centre of the fitted volumes) − 1: how far the production scan sat from the
    minimum it found. Scans more than 2 % off-centre (versions 0.1–0.3 only) can bias B
    by several per cent."""
    v = np.asarray(record["eos_volumes_A3"], float)
    if "eos_used" in record:
        v = v[np.asarray(record["eos_used"], bool)]
    mult = 4 if record.get("cell") == "primitive" else 1
    return float(record["a0_A"] ** 3 / mult / ((v.min() + v.max()) / 2) - 1)


def protocol_version(record: dict) -> str:
    """Protocol version a record was computed with (``record["protocol"]``, else from its settings)."""
    if "protocol" in record:
        return record["protocol"]  # from 0.3.0 on
    return "0.2.0" if "reuse_wavefunctions" in record.get("settings", {}) else "0.1.0"


#: Elements whose compounds start spin-polarised from a ferromagnetic start (as JARVIS), with these
#: initial moments (μB). The production scan and the field stay spin-polarised only if some local
#: moment of the coarse scan near its minimum (``DFTSettings.spin_window``) reaches
#: ``DFTSettings.spin_collapse_muB``; otherwise they are spin-paired (:func:`spin_decision`).
MAGNETIC = {"Mn": 3.0, "Fe": 3.0, "Co": 2.0, "Ni": 1.0, "Cr": 3.0}

#: Elements with an open d or f shell (3d Sc–Ni, 4d Y–Rh, 5d Hf–Ir, 4f Ce–Yb): since protocol 0.7.0 every
#: compound holding one gets a spin probe (``DFTSettings.spin_rule = "open-shell"``), from
#: :data:`MAGNETIC`'s moment where it lists one, else ``OPEN_SHELL_MOMENT``.
OPEN_SHELL = ("Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh",
              "Hf", "Ta", "W", "Re", "Os", "Ir", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho",
              "Er", "Tm", "Yb")
OPEN_SHELL_MOMENT = 1.0  #: initial moment (μB) of an open-shell element not in :data:`MAGNETIC`


def initial_moments(symbols, rule: str = "open-shell", scale: float = 1.0, antiferro: bool = False) -> list[float]:
    """Starting moments (μB) of a spin-polarised SCF, one per atom: ferromagnetic, times ``scale``;
    ``antiferro``: the moments of successive magnetic atoms alternate in sign (a cell with one
    magnetic atom stays ferromagnetic).

    ``rule``: "list" (versions ≤ 0.6.2: only :data:`MAGNETIC`) or "open-shell"."""
    if rule == "list":
        m = [MAGNETIC.get(s, 0.0) for s in symbols]
    else:
        m = [MAGNETIC.get(s, OPEN_SHELL_MOMENT if s in OPEN_SHELL else 0.0) for s in symbols]
    m = [x * scale for x in m]
    if antiferro:
        k = 0
        for i, x in enumerate(m):
            if x:
                m[i], k = (x if k % 2 == 0 else -x), k + 1
    return m


def is_magnetic_candidate(symbols, rule: str = "open-shell") -> bool:
    """Whether a compound gets a spin-polarised start (``rule`` as in :func:`initial_moments`)."""
    return any(m > 0 for m in initial_moments(symbols, rule))


@dataclass(frozen=True)
class DFTSettings:
    """Settings fixed for the whole dataset (chosen by the convergence study)."""

    ecut_eV: float = 450.0  #: plane-wave cutoff
    kpt_density: float = 4.0  #: k-points per Å⁻¹ along each reciprocal vector (ASE rule), Γ-centred
    smearing_eV: float = 0.1  #: Fermi–Dirac width; energies are extrapolated to zero width
    xc: str = "PBE"
    coarse_ecut_eV: float = 250.0  #: bracketing scan only
    coarse_kpt_density: float = 2.0  #: bracketing scan only
    #: production scan, V / V_est (7 points since 0.7.0; 0.90 … 1.10 in 5 points before)
    volume_steps: tuple = (0.91, 0.94, 0.97, 1.0, 1.03, 1.06, 1.09)
    bracket_steps: tuple = (0.96, 1.0, 1.04)  #: bracketing scan, a / a_guess
    max_fit_rms_meV: float = 2.0  #: gate: BM fit residual per atom
    max_electron_error: float = 1e-3  #: gate: |∫ρ − N_valence| / N_valence
    spin_collapse_muB: float = 0.05  #: spin-paired production if every local moment of the coarse scan near its minimum is below this (μB)
    #: only coarse points with |a / a_coarse_min − 1| ≤ this decide the spin (the production scan spans
    #: ±3.3 % in a); 0: every coarse point, versions 0.1–0.5
    spin_window: float = 0.05
    #: a moment the coarse scan saw only outside ``spin_window`` is checked by one spin-polarised SCF at
    #: production settings and the scan's largest volume before the scan runs spin-paired (False: 0.1–0.6.0)
    spin_probe: bool = True
    maxiter: int = 300  #: SCF iteration cap of the last (damped-mixer) attempt
    #: SCF iteration cap of every earlier attempt (0: ``maxiter``, versions 0.1–0.6.1); the converged SCFs
    #: in the logs of 425 compounds took ≤ 39 iterations, so only SCFs that would not converge are cut short
    maxiter_first: int = 120
    #: spin-paired SCFs of a scan start from the previous volume's wave functions and density
    #: (GPAW's plane-wave "morph"; same k mesh and cutoff, so the converged energy is unchanged);
    #: spin-polarised SCFs follow ``reuse_magnetic``. False before compound 167.
    reuse_wavefunctions: bool = True
    #: coarse scan on the grid a_guess × (bracket_steps[2] / bracket_steps[1])^k, extended one point
    #: at a time toward the minimum (False: re-centred 3-point brackets, versions 0.1–0.2)
    bracket_grid: bool = True
    #: prototype compounds start from the covalent-radii guess × GUESS_SCALE[prototype] (False: unscaled,
    #: versions 0.1–0.2). Only where the scan starts changes, not what it finds.
    calibrated_guess: bool = True
    #: the production scan skips its centre volume; the field SCF at the a0 of a fit to the other
    #: volumes takes its place in the final fit (one SCF fewer). False: versions 0.1–0.3
    field_in_fit: bool = True
    #: field recomputed at the final a0 if |a_field / a0 − 1| exceeds this
    field_a_tolerance: float = 0.002
    #: with field_in_fit: the production scan is re-centred on the fitted V0 if it lies further
    #: than this (fraction of the volume) from the scan's centre
    recentre_volume: float = 0.02
    #: spin-polarised SCFs of a scan start from the previous volume's wave functions, density and
    #: magnetisation when that SCF kept a local moment of at least ``spin_collapse_muB`` (a collapsed
    #: moment never propagates: the next SCF then starts from the ferromagnetic guess). False: 0.1–0.4
    reuse_magnetic: bool = True
    #: compounds holding one of these get ``hard_ecut_eV`` (since 0.7.0; their E(V) jitters at 450 eV)
    hard_elements: tuple = ("O", "N", "F")
    #: cut-off (eV) for compounds with ``hard_elements``; 0: ``ecut_eV`` for all (versions ≤ 0.6.2)
    hard_ecut_eV: float = 750.0
    #: k-point density (Å) of elemental crystals (since 0.7.0: the E(V) of Ca and Sr is jagged at
    #: ``kpt_density``); 0: ``kpt_density`` for all (versions ≤ 0.6.2)
    element_kpt_density: float = 8.0
    #: which compounds start spin-polarised: "list" (:data:`MAGNETIC`, ≤ 0.6.2) or "open-shell" (0.7.0)
    spin_rule: str = "open-shell"
    #: starting moments × this (a retry of a failed magnetic compound uses a lower-moment start)
    moment_scale: float = 1.0
    #: starting moments of successive magnetic atoms alternate in sign (a retry's antiferromagnetic start)
    antiferro: bool = False

    def for_species(self, symbols) -> "DFTSettings":
        """These settings resolved for one compound: ``ecut_eV`` is ``hard_ecut_eV`` if it holds a hard
        element, ``kpt_density`` is ``element_kpt_density`` if it has one element only."""
        from dataclasses import replace

        out = self
        if self.hard_ecut_eV and set(symbols) & set(self.hard_elements):
            out = replace(out, ecut_eV=max(self.ecut_eV, self.hard_ecut_eV))
        if self.element_kpt_density and len(set(symbols)) == 1:
            out = replace(out, kpt_density=max(self.kpt_density, self.element_kpt_density))
        return out


#: The settings of protocol 0.6.2 (every compound at 450 eV, 5 volumes, the magnetic list)
SETTINGS_062 = DFTSettings(volume_steps=(0.90, 0.95, 1.0, 1.05, 1.10), hard_ecut_eV=0.0, element_kpt_density=0.0,
                           spin_rule="list")


# --------------------------------------------------------------------------- prototypes


@dataclass(frozen=True)
class Prototype:
    name: str
    spacegroup: int
    symbol: str
    lattice: str  # "fcc" (stored primitive) or "sc"
    sites: tuple  # fractional positions in the conventional cube, one per FCC coset
    description: str


_Q = 0.25
PROTOTYPES = {
    p.name: p
    for p in [
        Prototype("diamond", 227, "Fd-3m", "fcc", ((0, 0, 0), (_Q, _Q, _Q)), "A4 (Si); validation only, not in the dataset's space groups"),
        Prototype("fcc", 225, "Fm-3m", "fcc", ((0, 0, 0),), "A1 element"),
        Prototype("rocksalt", 225, "Fm-3m", "fcc", ((0, 0, 0), (0.5, 0.5, 0.5)), "B1 AX (NaCl)"),
        Prototype("fluorite", 225, "Fm-3m", "fcc", ((0, 0, 0), (_Q, _Q, _Q), (0.75, 0.75, 0.75)), "C1 AX2 (CaF2); antifluorite A2X has A on the X sites"),
        Prototype("heusler", 225, "Fm-3m", "fcc", ((0, 0, 0), (0.5, 0.5, 0.5), (_Q, _Q, _Q), (0.75, 0.75, 0.75)), "L2_1 X2YZ (Cu2MnAl): Y, Z, X, X"),
        Prototype("elpasolite", 225, "Fm-3m", "fcc",
                  ((0, 0, 0), (0.5, 0.5, 0.5), (_Q, _Q, _Q), (0.75, 0.75, 0.75),
                   (0.25, 0, 0), (0.75, 0, 0), (0, 0.25, 0), (0, 0.75, 0), (0, 0, 0.25), (0, 0, 0.75)),
                  "A2BB'X6 (K2NaAlF6): B, B', A, A, X×6 (X at x=0.25 of B)"),
        Prototype("zincblende", 216, "F-43m", "fcc", ((0, 0, 0), (_Q, _Q, _Q)), "B3 AX (ZnS)"),
        Prototype("half-heusler", 216, "F-43m", "fcc", ((0, 0, 0), (0.5, 0.5, 0.5), (_Q, _Q, _Q)), "C1_b XYZ (MgAgAs): Z at 4a, X at 4b, Y at 4c"),
        Prototype("inverse-heusler", 216, "F-43m", "fcc", ((0, 0, 0), (_Q, _Q, _Q), (0.5, 0.5, 0.5), (0.75, 0.75, 0.75)), "X2YZ (Hg2CuTi): X, X, Y, Z"),
        Prototype("quaternary-heusler", 216, "F-43m", "fcc", ((0, 0, 0), (0.5, 0.5, 0.5), (_Q, _Q, _Q), (0.75, 0.75, 0.75)), "XX'YZ (LiMgPdSn): Z, Y, X, X'"),
        Prototype("cscl", 221, "Pm-3m", "sc", ((0, 0, 0), (0.5, 0.5, 0.5)), "B2 AB (CsCl)"),
        Prototype("l12", 221, "Pm-3m", "sc", ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)), "L1_2 A3B (Cu3Au): B, A, A, A"),
        Prototype("reo3", 221, "Pm-3m", "sc", ((0, 0, 0), (0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5)), "D0_9 BX3 (ReO3): B, X, X, X"),
        Prototype("perovskite", 221, "Pm-3m", "sc", ((0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)), "E2_1 ABX3 (SrTiO3): A, B, X, X, X"),
        Prototype("antiperovskite", 221, "Pm-3m", "sc", ((0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)), "A3BX (Fe3SnC, Li3OCl): B, X, A, A, A"),
    ]
}

FCC_PRIMITIVE = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


def build_atoms(prototype: str, species: tuple, a: float):
    """Atoms of ``prototype`` with one symbol per site (see :data:`PROTOTYPES`), edge ``a`` Å.

    FCC-lattice prototypes come in the primitive cell a1 = (0, a/2, a/2), … .
    """
    from ase import Atoms

    p = PROTOTYPES[prototype]
    if len(species) != len(p.sites):
        raise ValueError(f"{prototype} has {len(p.sites)} sites, got {species}")
    cart = np.array(p.sites, dtype=float) * a
    cell = FCC_PRIMITIVE * a if p.lattice == "fcc" else np.eye(3) * a
    atoms = Atoms(list(species), positions=cart, cell=cell, pbc=True)
    atoms.wrap()
    return atoms


# --------------------------------------------------------------------------- composition rules

ALKALI = ["Li", "Na", "K", "Rb", "Cs"]
ALKALINE_EARTH = ["Mg", "Ca", "Sr", "Ba"]
HALOGEN = ["F", "Cl", "Br", "I"]
CHALCOGEN = ["O", "S", "Se", "Te"]
GROUP = {  # valence electrons counted as group number (s+d for TMs, s+p for main group)
    "Li": 1, "Na": 1, "K": 1, "Rb": 1, "Cs": 1, "Be": 2, "Mg": 2, "Ca": 2, "Sr": 2, "Ba": 2,
    "Sc": 3, "Y": 3, "Ti": 4, "Zr": 4, "Hf": 4, "V": 5, "Nb": 5, "Ta": 5, "Cr": 6, "Mo": 6, "W": 6,
    "Mn": 7, "Re": 7, "Fe": 8, "Ru": 8, "Os": 8, "Co": 9, "Rh": 9, "Ir": 9, "Ni": 10, "Pd": 10, "Pt": 10,
    "Cu": 11, "Ag": 11, "Au": 11, "Zn": 12, "Cd": 12, "Hg": 12, "B": 3, "Al": 3, "Ga": 3, "In": 3, "Tl": 3,
    "C": 4, "Si": 4, "Ge": 4, "Sn": 4, "Pb": 4, "N": 5, "P": 5, "As": 5, "Sb": 5, "Bi": 5,
    "O": 6, "S": 6, "Se": 6, "Te": 6, "F": 7, "Cl": 7, "Br": 7, "I": 7,
}


def candidate_compounds() -> list[tuple[str, tuple]]:
    """All (prototype, species-per-site) pairs allowed by the documented rules.

    Ionic prototypes are charge balanced with common oxidation states; intermetallic
    prototypes follow the usual electron-count rules (half-Heusler 8/18 electrons).
    """
    out: list[tuple[str, tuple]] = []
    add = lambda proto, *sp: out.append((proto, tuple(sp)))  # noqa: E731
    # A1: elements whose ground state is fcc (ASE reference states), no noble gases or f elements
    for el in ["Al", "Ni", "Cu", "Rh", "Pd", "Ag", "Ir", "Pt", "Au", "Pb", "Ca", "Sr"]:
        add("fcc", el)
    # B1 rock salt: A+X-, A2+X2-, and refractory carbides/nitrides M(C,N)
    for A, X in itertools.product(ALKALI, HALOGEN):
        add("rocksalt", A, X)
    for A, X in itertools.product(ALKALINE_EARTH, ["O", "S", "Se", "Te"]):
        add("rocksalt", A, X)
    for A, X in itertools.product(["Sc", "Ti", "V", "Zr", "Nb", "Hf", "Ta"], ["C", "N"]):
        add("rocksalt", A, X)
    # C1 fluorite AX2 (A2+ with F/Cl, A4+ with O) and antifluorite A2X (A+ with chalcogen)
    for A, X in itertools.product(["Ca", "Sr", "Ba", "Cd", "Pb"], ["F", "Cl"]):
        add("fluorite", A, X, X)
    for A in ["Zr", "Hf", "Ti"]:
        add("fluorite", A, "O", "O")
    for A, X in itertools.product(["Li", "Na", "K", "Rb"], CHALCOGEN):
        add("fluorite", X, A, A)
    # B3 zinc blende: III-V, II-VI, I-VII, IV-IV
    for A, X in itertools.product(["B", "Al", "Ga", "In"], ["N", "P", "As", "Sb"]):
        add("zincblende", A, X)
    for A, X in itertools.product(["Be", "Zn", "Cd"], ["O", "S", "Se", "Te"]):
        add("zincblende", A, X)
    for A, X in itertools.product(["Cu", "Ag"], ["Cl", "Br", "I"]):
        add("zincblende", A, X)
    add("zincblende", "Si", "C")
    # B2 CsCl: a group 8-11 transition metal with a group 2-4, 12 or 13 metal
    for A, B in itertools.product(["Fe", "Co", "Ni", "Cu", "Ru", "Rh", "Pd", "Ag", "Au", "Pt"],
                                  ["Be", "Mg", "Sc", "Ti", "Zr", "Hf", "Zn", "Al", "Ga", "In"]):
        add("cscl", A, B)
    # L1_2 A3B: late transition metal A (groups 9-11), B a main-group or early TM metal
    for A, B in itertools.product(["Ni", "Pd", "Pt", "Cu", "Au", "Ir", "Rh"],
                                  ["Al", "Ga", "In", "Ge", "Sn", "Si", "Ti", "Zr", "Hf", "V", "Nb", "Ta", "Sc", "Mg", "Zn"]):
        add("l12", B, A, A, A)
    # ReO3-type: B6+ O3 and B3+ F3
    for B in ["W", "Re", "Mo"]:
        add("reo3", B, "O", "O", "O")
    for B in ["Al", "Sc", "Ga", "In", "Fe", "Cr", "V", "Ti"]:
        add("reo3", B, "F", "F", "F")
    # perovskite ABX3: A+B5+O3, A2+B4+O3, A+B2+F3
    for A, B in itertools.product(["Na", "K", "Rb"], ["Nb", "Ta", "V"]):
        add("perovskite", A, B, "O", "O", "O")
    for A, B in itertools.product(["Ca", "Sr", "Ba"], ["Ti", "Zr", "Hf", "Sn", "Ge"]):
        add("perovskite", A, B, "O", "O", "O")
    for A, B in itertools.product(["Na", "K", "Rb", "Cs"], ["Mg", "Zn", "Ca", "Cd", "Mn", "Fe", "Co", "Ni"]):
        add("perovskite", A, B, "F", "F", "F")
    # anti-perovskite A3BX: TM3 M (C, N) like Fe3SnC, and ionic Li3OCl-type
    for A, B, X in itertools.product(["Mn", "Fe", "Co", "Ni"], ["Al", "Ga", "Zn", "Sn", "In", "Ge", "Mg", "Cu"], ["C", "N"]):
        add("antiperovskite", B, X, A, A, A)
    for A, B in itertools.product(["Li", "Na", "K"], ["Cl", "Br", "I"]):
        add("antiperovskite", B, "O", A, A, A)
    # L2_1 full Heusler X2YZ
    for X, Y, Z in itertools.product(["Co", "Fe", "Ni", "Cu", "Rh", "Pd"], ["Ti", "V", "Cr", "Mn", "Zr", "Hf", "Nb"],
                                     ["Al", "Ga", "In", "Si", "Ge", "Sn", "Sb"]):
        add("heusler", Y, Z, X, X)
    # inverse Heusler X2YZ (Hg2CuTi type): X lighter than Y among 3d metals
    for X, Y, Z in itertools.product(["Sc", "Ti", "V", "Cr", "Mn"], ["Fe", "Co", "Ni", "Cu"], ["Al", "Ga", "In", "Si", "Ge", "Sn"]):
        add("inverse-heusler", X, X, Y, Z)
    # half-Heusler XYZ with 8 or 18 valence electrons (Z at 4a, X at 4b, Y at 4c)
    for X, Y, Z in itertools.product(["Li", "Na", "Sc", "Ti", "Zr", "Hf", "V", "Nb", "Ta", "Mg"],
                                     ["Mg", "Zn", "Co", "Rh", "Ir", "Ni", "Pd", "Pt", "Fe", "Cu"],
                                     ["N", "P", "As", "Sb", "Bi", "Si", "Ge", "Sn", "Pb"]):
        vec = GROUP[X] + GROUP[Y] + GROUP[Z]
        if X != Y and vec in (8, 18):
            add("half-heusler", Z, X, Y)
    # LiMgPdSn-type quaternary Heusler XX'YZ with 21-24 valence electrons (Slater-Pauling)
    for X, X2 in itertools.combinations(["Co", "Fe", "Ni", "Cu", "Mn"], 2):
        for Y, Z in itertools.product(["Ti", "V", "Cr", "Mn", "Zr"], ["Al", "Ga", "Si", "Ge", "Sn"]):
            vec = GROUP[X] + GROUP[X2] + GROUP[Y] + GROUP[Z]
            if Y not in (X, X2) and 21 <= vec <= 24:
                add("quaternary-heusler", Z, Y, X, X2)
    # elpasolite A2BB'X6: A, B alkali, B' trivalent, X halogen
    for A, B, B3, X in itertools.product(["K", "Rb", "Cs"], ["Li", "Na", "K"], ["Al", "Sc", "Ga", "In", "Y", "Bi"], ["F", "Cl"]):
        if A != B:
            add("elpasolite", B, B3, A, A, X, X, X, X, X, X)
    return out


def compound_id(prototype: str, species: tuple) -> str:
    """Stable id: reduced formula plus prototype, e.g. ``NaCl-rocksalt``."""
    from ase.formula import Formula

    return f"{Formula(''.join(species)).reduce()[0].format('metal')}-{prototype}"


def cost_weight(prototype: str, species: tuple) -> float:
    """Rough relative cost of one compound (atoms³ × 2.5 if it holds a magnetic element):
    the plan's cost model before :data:`MEASURED_CORE_S` (compounds 1–494)."""
    w = len(species) ** 3
    return w * (2.5 if any(s in MAGNETIC for s in species) else 1.0)


#: Median core-seconds of one compound by (prototype, holds a magnetic element), measured on the
#: 491 compounds of version 0.6.2+491cpd (frozen: benchmarks/dft_cost.py prints the live figures).
#: The plan's cost model from compound 495 on; the atoms³ rule had magnetic Heuslers at 2.5× a
#: spin-paired one where they cost 2.5-3.5× more in practice, and perovskites at 4.6× a half-Heusler
#: where they cost 1.1×.
MEASURED_CORE_S = {
    ("antiperovskite", False): 144, ("antiperovskite", True): 262, ("cscl", False): 65, ("cscl", True): 107,
    ("elpasolite", False): 1138, ("fcc", False): 132, ("fcc", True): 306, ("fluorite", False): 75,
    ("half-heusler", False): 108, ("half-heusler", True): 119, ("heusler", False): 162, ("heusler", True): 408,
    ("inverse-heusler", False): 158, ("inverse-heusler", True): 433, ("l12", False): 137, ("l12", True): 483,
    ("perovskite", False): 120, ("perovskite", True): 329, ("quaternary-heusler", True): 1209,
    ("reo3", False): 102, ("reo3", True): 220, ("rocksalt", False): 46, ("zincblende", False): 52,
}


def expected_core_s(prototype: str, species: tuple) -> float:
    """Expected core-seconds of one compound: :data:`MEASURED_CORE_S` for its kind, else the
    largest measured figure of its prototype (a kind not yet measured is assumed expensive)."""
    magnetic = any(s in MAGNETIC for s in species)
    if (prototype, magnetic) in MEASURED_CORE_S:
        return float(MEASURED_CORE_S[prototype, magnetic])
    return float(max(v for (p, _), v in MEASURED_CORE_S.items() if p == prototype))


#: The paper's compounds by number of elements (15 + 494 + 947 + 93): the plan's target mix.
PAPER_COMPOSITION = {1: 15, 2: 494, 3: 947, 4: 93}


def plan(seed: int = 0) -> list[dict]:
    """Order in which compounds are computed: a seeded shuffle within each prototype,
    interleaved so that each prototype gets core time in proportion to the paper's share of
    its number of elements. Priority of a prototype's k-th compound = k × its
    :func:`expected_core_s` / (that share): cheap compounds come often, a magnetic one waits
    for its extra cost, and the mix of unary / binary / ternary / quaternary compounds moves
    toward the paper's.

    History (what the files in ``data/embedded`` were computed under; compounds already done
    are skipped, so a new rule only orders what is left): compounds 1–53 with
    k × cost_weight^0.5, 54–166 with k × cost_weight^0.75, both without the composition share;
    167–494 with k × cost_weight^0.75 / share; from 495 on this rule (measured cost), which cut
    the projected cost of the next 109 compounds from 7.3 to 5.9 core-hours."""
    rng = random.Random(seed)
    by_proto: dict[str, list] = {}
    for proto, sp in candidate_compounds():
        by_proto.setdefault(proto, []).append(sp)
    total = sum(PAPER_COMPOSITION.values())
    queue = []
    seen = set()
    for proto, lst in by_proto.items():
        rng.shuffle(lst)
        for rank, sp in enumerate(lst):
            cid = compound_id(proto, sp)
            if cid in seen:
                continue
            seen.add(cid)
            share = PAPER_COMPOSITION[len(set(sp))] / total
            priority = (rank + 1) * expected_core_s(proto, sp) / share
            queue.append((priority, cid, proto, sp))
    queue.sort()
    return [{"id": cid, "prototype": proto, "species": list(sp)} for _, cid, proto, sp in queue]


# --------------------------------------------------------------------------- one compound


#: Median a0 / (covalent-radii guess) of each prototype over the 166 compounds of version 0.1.0,
#: rounded (frozen: computed once by benchmarks/dft_cost.py's data, not refitted as data grow).
#: Ternary prototypes came out 10-15 % smaller than the guess and needed 9-11 coarse SCFs.
GUESS_SCALE = {"antiperovskite": 0.91, "cscl": 0.98, "elpasolite": 0.89, "fcc": 1.02, "fluorite": 1.00,
               "half-heusler": 0.88, "heusler": 0.90, "inverse-heusler": 0.87, "l12": 0.96, "perovskite": 0.88,
               "quaternary-heusler": 0.85, "reo3": 0.90, "rocksalt": 1.01, "zincblende": 1.03}


def guess_lattice_constant(prototype: str, species: tuple) -> float:
    """Edge (Å) at which no pair of atoms is closer than the sum of their covalent radii.

    Only a starting point (typically within ±8 %); the scan finds the minimum."""
    from ase.data import atomic_numbers, covalent_radii

    atoms = build_atoms(prototype, species, 1.0)
    from ase.neighborlist import neighbor_list

    best = 0.0
    i, j, d = neighbor_list("ijd", atoms, 1.0)
    syms = atoms.get_chemical_symbols()
    for ii, jj, dd in zip(i, j, d):
        r = covalent_radii[atomic_numbers[syms[ii]]] + covalent_radii[atomic_numbers[syms[jj]]]
        best = max(best, r / dd)
    return float(best)


def _calculator(settings: DFTSettings, kpts, magnetic: bool, txt, coarse=False, gentle=False):
    """GPAW plane-wave calculator; ``gentle``: a damped density mixer for SCFs that did not converge,
    with ``settings.maxiter`` iterations (otherwise ``settings.maxiter_first``, if set)."""
    from gpaw import GPAW, PW, FermiDirac

    extra = {}
    if gentle:
        from gpaw import Mixer, MixerDif

        # GPAW's advice for hard cases: small mixing fraction, more history, strong metric weight
        extra["mixer"] = MixerDif(0.02, 5, 100.0) if magnetic else Mixer(0.02, 5, 100.0)
    return GPAW(
        mode=PW(settings.coarse_ecut_eV if coarse else settings.ecut_eV),
        xc=settings.xc,
        kpts={"size": tuple(int(k) for k in kpts), "gamma": True},
        occupations=FermiDirac(settings.smearing_eV),
        maxiter=settings.maxiter if gentle or not settings.maxiter_first else settings.maxiter_first,
        txt=txt,
        **extra,
    )


def _kmesh(atoms, density: float) -> list[int]:
    from ase.calculators.calculator import kptdensity2monkhorstpack

    return [int(k) for k in kptdensity2monkhorstpack(atoms, kptdensity=density, even=False)]


def _energy(build, a, settings, kpts, txt, coarse=False, spin=False, previous=None):
    """SCF total energy (eV) of ``build(a)``; spin-polarised from a ferromagnetic start if ``spin``.

    ``previous``: the calculator of the scan's last SCF; a spin-paired SCF starts from its
    wave functions (``settings.reuse_wavefunctions``), a spin-polarised one too if
    ``settings.reuse_magnetic`` and that SCF kept a local moment. An SCF that does not converge
    (within ``settings.maxiter_first`` iterations) is retried from scratch, then with a damped mixer
    and ``settings.maxiter`` iterations (same physics, slower but steadier);
    if every attempt fails, :class:`DFTError` says so. Returns ``(energy, atoms)``; pass
    ``atoms.calc`` as ``previous`` to the next call."""
    attempts = ["default", "damped"]
    if previous is not None and settings.reuse_wavefunctions and (
            not spin or (settings.reuse_magnetic and _local_moment(previous) >= settings.spin_collapse_muB)):
        attempts.insert(0, "reused")
    errors = []
    for how in attempts:
        atoms = build(a)
        if spin:
            atoms.set_initial_magnetic_moments(initial_moments(atoms.get_chemical_symbols(), settings.spin_rule,
                                                               settings.moment_scale, settings.antiferro))
        if how == "reused":
            atoms.calc = previous
        else:
            atoms.calc = _calculator(settings, kpts, spin, txt, coarse, gentle=how == "damped")
        try:
            return atoms.get_potential_energy(), atoms
        except Exception as exc:  # GPAW's KohnShamConvergenceError and friends
            errors.append(f"{how} start: " + f"{type(exc).__name__}: {exc}".rstrip(": "))
    raise DFTError(f"SCF failed at a = {a:.4f} Å ({len(errors)} attempts, the last with a damped mixer): "
                   + "; ".join(errors))


def _local_moment(calc) -> float:
    """Largest |local magnetic moment| (μB) of a converged GPAW calculation (0 if spin-paired)."""
    try:
        return float(np.abs(calc.get_magnetic_moments()).max())
    except Exception:
        return 0.0


def spin_decision(coarse_moments: dict, a_est: float, settings: DFTSettings) -> tuple[bool, float]:
    """Whether the production scan runs spin-polarised, and the moment (μB) that decided it.

    ``coarse_moments``: {conventional edge a (Å): largest |local moment| (μB)} of the coarse
    scan; ``a_est``: its minimum (Å). Only points within ``settings.spin_window`` of ``a_est``
    count (all of them if the window is 0): a moment that exists only at a far-expanded guess
    volume says nothing about the volumes fitted.

    >>> spin_decision({5.4: 0.0, 5.6: 0.01, 6.0: 2.1}, 5.5, DFTSettings())
    (False, 0.01)
    >>> spin_decision({5.4: 0.0, 5.6: 0.01, 6.0: 2.1}, 5.5, DFTSettings(spin_window=0))
    (True, 2.1)
    """
    near = [m for a, m in coarse_moments.items()
            if not settings.spin_window or abs(a / a_est - 1) <= settings.spin_window + 1e-9]
    if not near:  # cannot happen for a bracketed minimum; be safe: keep every point
        near = list(coarse_moments.values())
    moment = float(max(near, default=0.0))
    return moment >= settings.spin_collapse_muB, moment


def _eos_minimum_edge(vols, ens, mult: int) -> float | None:
    """Conventional edge (Å) at the minimum of the Birch–Murnaghan form through E(V) points.

    The BM energy is a cubic polynomial in x = V^(-2/3), so 4 points determine it
    exactly (more: least squares). Returns None if the cubic has no minimum inside
    the sampled volumes. ``vols``: primitive-cell volumes (Å³), ``mult`` cells per cube."""
    vols, ens = np.asarray(vols, float), np.asarray(ens, float)
    if len(vols) < 4:
        return None
    x = vols ** (-2 / 3)
    c = np.polyfit(x, ens, 3)
    d1, d2 = np.polyder(c), np.polyder(c, 2)
    best = None
    for r in np.roots(d1):
        if abs(r.imag) > 1e-12 or not (x.min() < r.real < x.max()) or np.polyval(d2, r.real) <= 0:
            continue
        if best is None or np.polyval(c, r.real) < np.polyval(c, best):
            best = r.real
    if best is None:
        return None
    return float((best ** (-3 / 2) * mult) ** (1 / 3))


def _moments(atoms, spin: bool) -> tuple[float, float]:
    """(total, largest |local|) magnetic moment in μB of a converged calculation (0, 0 if spin-paired)."""
    if not spin:
        return 0.0, 0.0
    calc = atoms.calc
    try:
        total = float(calc.get_magnetic_moment())
    except Exception:
        total = 0.0
    try:
        local = float(np.abs(calc.get_magnetic_moments()).max())
    except Exception:
        local = abs(total)
    return total, local


def scan_energies(prototype: str, species, a_centre: float, volume_steps, settings: DFTSettings,
                  spin: bool = False, kpts=None, txt=os.devnull) -> dict:
    """E(V) of a prototype compound at V = (a_centre³) × each of ``volume_steps``, at production
    settings, the k mesh fixed (from ``a_centre`` unless ``kpts``), each SCF starting from the last.

    The convergence study's unit of work. Returns the volumes (Å³ per stored cell), energies (eV
    per cell), largest local moment of each SCF (μB), k mesh, atoms per cell and CPU seconds."""
    species = tuple(species)
    build = lambda a: build_atoms(prototype, species, a)  # noqa: E731
    c0 = time.process_time()
    kpts = list(kpts) if kpts is not None else _kmesh(build(a_centre), settings.kpt_density)
    vols, ens, moms, prev = [], [], [], None
    for s in volume_steps:
        a = round(a_centre * s ** (1 / 3), 6)
        e, at = _energy(build, a, settings, kpts, txt, spin=spin, previous=prev)
        prev = at.calc
        vols.append(float(at.get_volume()))
        ens.append(float(e))
        moms.append(_moments(at, spin)[1])
    return {"eos_volumes_A3": vols, "eos_energies_eV": ens, "max_local_moments_muB": moms, "kpts": kpts,
            "natoms": len(build(a_centre)), "cpu_s": time.process_time() - c0}


def compute_compound(prototype: str, species, settings: DFTSettings = DFTSettings(), log=None):
    """Run the whole protocol for one prototype compound. Returns ``(record, field)``.

    Raises :class:`~leanecd.errors.DFTError` with the reason when a gate fails.
    """
    species = tuple(species)
    p = PROTOTYPES[prototype]
    mult = 4 if p.lattice == "fcc" else 1
    a_guess = guess_lattice_constant(prototype, species) * (GUESS_SCALE.get(prototype, 1.0) if settings.calibrated_guess else 1.0)
    record, field = _protocol(lambda a: build_atoms(prototype, species, a), a_guess,
                              mult, compound_id(prototype, species), settings, log)
    record.update(_prototype_keys(prototype, species))
    return record, field


def _prototype_keys(prototype: str, species: tuple) -> dict:
    p = PROTOTYPES[prototype]
    elements = sorted(set(species))
    return {"prototype": prototype, "spacegroup": p.spacegroup, "spacegroup_symbol": p.symbol,
            "species": list(species), "elements": elements, "n_elements": len(elements),
            "cell": "primitive" if p.lattice == "fcc" else "conventional"}


def recompute_compound(record: dict, settings: DFTSettings = DFTSettings(), log=None):
    """Recompute a stored prototype compound under ``settings`` (the current protocol).

    No coarse scan: the production scan starts at the record's a0 (re-centred as usual if the
    new settings move the minimum); spin-polarised if the record was, else a magnetic candidate
    of ``settings.spin_rule`` gets the spin probe. Returns ``(record, field)``; the new record
    names the one it supersedes (``supersedes``: its protocol version)."""
    prototype, species = record["prototype"], tuple(record["species"])
    mult = 4 if PROTOTYPES[prototype].lattice == "fcc" else 1
    new, field = _protocol(lambda a: build_atoms(prototype, species, a), float(record["a0_A"]), mult, record["id"],
                           settings, log, a_start=float(record["a0_A"]), spin_start=bool(record.get("spin_polarized")))
    new.update(_prototype_keys(prototype, species))
    new["supersedes"] = protocol_version(record)
    return new, field


def compute_structure(atoms, cid: str, settings: DFTSettings = DFTSettings(), log=None, meta: dict | None = None):
    """Run the same protocol on any cubic structure (ASE ``Atoms``, primitive or conventional cell).

    The structure is scaled isotropically; its own conventional edge is the first guess
    of a0. ``meta`` (e.g. the JARVIS id and labels) is stored under ``record["meta"]``.
    Returns ``(record, field)``; raises :class:`~leanecd.errors.DFTError` when a gate fails.
    """
    from .lattice import find_cubic_cell

    ref = atoms.copy()
    ref.calc = None
    ref.set_initial_magnetic_moments(None)
    cube = find_cubic_cell(ref.cell[:])
    a_ref = float(cube.a)

    def build(a):
        at = ref.copy()
        at.set_cell(ref.cell[:] * (a / a_ref), scale_atoms=True)
        return at

    record, field = _protocol(build, a_ref, cube.multiplicity, cid, settings, log)
    symbols = ref.get_chemical_symbols()
    elements = sorted(set(symbols))
    record.update({
        "prototype": "given",
        "species": symbols,
        "elements": elements,
        "n_elements": len(elements),
        "cell": "primitive" if cube.multiplicity > 1 else "conventional",
        "lattice_kind": cube.kind,
        "meta": dict(meta or {}),
    })
    return record, field


def _protocol(build, a_guess: float, mult: int, cid: str, settings: DFTSettings, log=None, **known):
    """The dataset's protocol for ``build(a)`` (Atoms at conventional edge ``a`` Å, ``mult``
    primitive cells per cube). Returns ``(record, field)`` with the prototype-independent keys.

    ``log``: GPAW's text output of every SCF of the compound, appended to this file (each new GPAW
    calculator given a path would start the file again, losing the coarse scan and failed attempts).
    ``known``: ``a_start`` and ``spin_start`` of a recomputation (:func:`recompute_compound`)."""
    if log is None:
        return _protocol_run(build, a_guess, mult, cid, settings, os.devnull, **known)
    with open(log, "a", encoding="utf-8") as txt:
        return _protocol_run(build, a_guess, mult, cid, settings, txt, **known)


def _protocol_run(build, a_guess: float, mult: int, cid: str, settings: DFTSettings, txt,
                  a_start: float | None = None, spin_start: bool = False):
    """:func:`_protocol` with ``txt`` a path or an open text file for GPAW's output.

    ``a_start``: a known estimate of a0 (Å; a recomputation): no coarse scan, the production scan
    starts there; it is spin-polarised if ``spin_start`` (the earlier record kept a moment), else a
    magnetic candidate gets the spin probe."""
    from ase.eos import EquationOfState
    from ase.units import GPa

    t0, c0 = time.time(), time.process_time()
    n_scf = 0
    atoms_guess = build(a_guess)
    natoms = len(atoms_guess)
    settings = settings.for_species(atoms_guess.get_chemical_symbols())
    magnetic = is_magnetic_candidate(atoms_guess.get_chemical_symbols(), settings.spin_rule)
    # 1. bracketing at coarse settings, extended (or re-centred) until the minimum is inside.
    ck = _kmesh(atoms_guess, settings.coarse_kpt_density)
    pts, coarse_moms = {}, {}  # coarse scan: energy and largest |local moment| (μB) by edge a
    prev = None  # the last SCF's calculator (its wave functions start the next spin-paired SCF)

    def coarse_point(a):
        nonlocal prev, n_scf
        if a not in pts:
            e, at = _energy(build, a, settings, ck, txt, coarse=True, spin=magnetic, previous=prev)
            prev = at.calc
            pts[a] = e
            coarse_moms[a] = _moments(at, magnetic)[1]
            n_scf += 1

    def interior_minimum():
        a_sorted = sorted(pts)
        e_sorted = [pts[a] for a in a_sorted]
        k = int(np.argmin(e_sorted))
        if 0 < k < len(a_sorted) - 1:
            c2, c1, _ = np.polyfit(a_sorted[k - 1 : k + 2], e_sorted[k - 1 : k + 2], 2)
            return (-c1 / (2 * c2) if c2 > 0 else a_sorted[k]), k, a_sorted
        return None, k, a_sorted

    a_est = None
    if a_start is not None:
        a_est = float(a_start)
    elif settings.bracket_grid:
        ratio = settings.bracket_steps[2] / settings.bracket_steps[1]
        grid = lambda k: round(a_guess * ratio**k, 6)  # noqa: E731
        lo, hi = -1, 1
        for k in (lo, 0, hi):
            coarse_point(grid(k))
        for _ in range(8):
            a_est, k, _ = interior_minimum()
            if a_est is not None:
                break
            if k == 0:  # lowest at the small edge: one more point below
                lo -= 1
                coarse_point(grid(lo))
            else:
                hi += 1
                coarse_point(grid(hi))
        else:
            a_est, _, _ = interior_minimum()
    else:
        centre = a_guess
        for _ in range(8):
            for s in settings.bracket_steps:
                coarse_point(round(centre * s, 6))
            a_est, k, a_sorted = interior_minimum()
            if a_est is not None:
                break
            centre = a_sorted[k]
    if a_est is None:
        raise DFTError(f"no energy minimum found between a = {min(pts):.3f} and {max(pts):.3f} Å (coarse scan)")
    # spin polarisation only where a moment survives the coarse scan near its minimum
    spin, window_local = spin_decision(coarse_moms, a_est, settings)
    spin = magnetic and spin
    coarse_local = max(coarse_moms.values(), default=0.0)
    if a_start is not None:  # no coarse scan: the earlier record decides, else the probe below
        spin, window_local, coarse_local = magnetic and bool(spin_start), None, None
    # 2. production scan, k mesh fixed for all volumes.
    kpts = _kmesh(build(a_est), settings.kpt_density)
    v_est = a_est**3
    vols, ens, edges, moments, totals = [], [], [], [], []  # moments: largest |local|, totals: total (μB) per SCF
    prev = None  # coarse and production differ in cutoff and k mesh: nothing to reuse
    # with field_in_fit the centre volume is left out: the field SCF takes its place below
    steps = [s for s in settings.volume_steps if not (settings.field_in_fit and abs(s - 1) < 1e-9)]
    probe_moment = None  # largest |local moment| (μB) of the spin probe, if one ran
    if magnetic and not spin and settings.spin_probe and (coarse_local is None or coarse_local >= settings.spin_collapse_muB):
        # the coarse scan saw a moment only far from its minimum: does one survive at production
        # settings at the largest volume of the scan (where a moment is likeliest)?
        a = round((v_est * max(steps)) ** (1 / 3), 6)
        e, at = _energy(build, a, settings, kpts, txt, spin=True)
        n_scf += 1
        probe_total, probe_moment = _moments(at, True)
        if probe_moment >= settings.spin_collapse_muB:  # it does: the scan is spin-polarised, this SCF a point
            spin, prev = True, at.calc
            edges.append(a)
            vols.append(at.get_volume())
            ens.append(e)
            moments.append(probe_moment)
            totals.append(probe_total)
    a_pre = None  # with field_in_fit: the BM minimum through the final scan's points (conventional edge, Å)
    for attempt in range(4):
        for s in steps:
            target = v_est * s  # conventional-cell volume, Å³
            if settings.field_in_fit and any(abs(x**3 / target - 1) <= 0.01 for x in edges):
                continue  # a point within 1 % in volume is already there (re-centred scans)
            a = round(target ** (1 / 3), 6)
            if a in edges:
                continue
            e, at = _energy(build, a, settings, kpts, txt, spin=spin, previous=prev)
            prev = at.calc
            n_scf += 1
            edges.append(a)
            vols.append(build(a).get_volume())
            ens.append(e)
            moments.append(_moments(at, spin)[1])
            totals.append(_moments(at, spin)[0])
        order = np.argsort(vols)
        k = int(np.argmin(np.array(ens)[order]))
        if not 0 < k < len(vols) - 1:
            v_est = np.array(edges)[order][k] ** 3  # minimum at an edge: re-centre on the lowest point
            continue
        if settings.field_in_fit:
            # the coarse minimum can sit a few % off (hard O/N/F atoms at 250 eV): re-centre on the
            # fitted minimum so that the points stay balanced around it (benchmarks/dft_eos_window.py)
            window = np.abs(np.array(edges) ** 3 / v_est - 1) <= 0.11
            a_pre = _eos_minimum_edge(np.array(vols)[window], np.array(ens)[window], mult)
            if a_pre is not None and abs(a_pre**3 / v_est - 1) > settings.recentre_volume:
                v_est = a_pre**3
                continue
        break
    else:
        raise DFTError("production scan not centred on its minimum after 4 re-centrings")
    field = None  # (a, energy, atoms) of the field SCF when it is a point of the fit
    if a_pre is not None:  # the minimum found on the final scan (field_in_fit only)
        a_pre = round(a_pre, 6)
        e, at = _energy(build, a_pre, settings, kpts, txt, spin=spin, previous=prev)
        prev = at.calc
        n_scf += 1
        edges.append(a_pre)
        vols.append(at.get_volume())
        ens.append(e)
        moments.append(_moments(at, spin)[1])
        totals.append(_moments(at, spin)[0])
        field = (a_pre, e, at)
    vols_a, ens_a = np.array(vols), np.array(ens)
    # fit on the final scan: the points within ±11 % in volume of its centre
    sel = np.abs(np.array(edges) ** 3 / v_est - 1) <= 0.11

    def gate(message: str) -> DFTError:
        """A failed fit gate, with the scan that failed it (kept in the failure record)."""
        return DFTError(message, details={"eos_volumes_A3": vols_a.tolist(), "eos_energies_eV": ens_a.tolist(),
                                          "eos_used": sel.tolist(), "max_local_moments_muB": moments,
                                          "spin_polarized": bool(spin), "kpts": kpts, "natoms": natoms,
                                          "n_scf": n_scf})

    eos = EquationOfState(vols_a[sel], ens_a[sel], eos="birchmurnaghan")
    try:
        v0, e0, B = eos.fit()
    except Exception as exc:
        raise gate(f"Birch–Murnaghan fit failed: {exc}") from None
    Bp = float(eos.eos_parameters[2]) if hasattr(eos, "eos_parameters") else float("nan")
    resid = ens_a[sel] - eos.func(vols_a[sel], *eos.eos_parameters)
    rms_meV = float(np.sqrt(np.mean(resid**2)) / natoms * 1000)
    B_GPa = float(B / GPa)
    if not (vols_a[sel].min() < v0 < vols_a[sel].max()):
        raise gate(f"fitted V0 = {v0:.3f} Å³ outside the scan [{vols_a.min():.3f}, {vols_a.max():.3f}]")
    if not B_GPa > 0:
        raise gate(f"bulk modulus {B_GPa:.2f} GPa is not positive")
    if rms_meV > settings.max_fit_rms_meV:
        raise gate(f"fit residual {rms_meV:.3f} meV/atom exceeds {settings.max_fit_rms_meV}")
    a0 = float((v0 * mult) ** (1 / 3))
    # 3. the field at equilibrium (the fit's centre point if it lies within the tolerance of a0)
    if field is not None and abs(field[0] / a0 - 1) <= settings.field_a_tolerance:
        a_field, e_eq, atoms = field
    else:
        a_field = a0
        e_eq, atoms = _energy(build, a0, settings, kpts, txt, spin=spin, previous=prev)
        n_scf += 1
    calc = atoms.calc
    rho = calc.get_pseudo_density()  # pseudo density + compensation charges, e/Å³
    n_val = float(calc.get_number_of_electrons())
    n_field = float(rho.mean() * atoms.get_volume())
    if abs(n_field - n_val) / n_val > settings.max_electron_error:
        raise DFTError(f"stored field holds {n_field:.5f} electrons, expected {n_val}")
    magmom, local = _moments(atoms, spin)
    record = {
        "id": cid,
        "formula": atoms.get_chemical_formula(mode="metal"),
        "natoms": natoms,
        "a0_A": a0,
        "a_field_A": float(a_field),  # edge of the stored field's cell (a0 within field_a_tolerance)
        "field_in_fit": field is not None and a_field == field[0],
        "a_guess_A": a_guess,
        "bulk_modulus_GPa": B_GPa,
        "bulk_modulus_prime": Bp,
        "energy_per_atom_eV": float(e0 / natoms),
        "scf_energy_at_a0_per_atom_eV": float(e_eq / natoms),
        "fit_rms_meV_per_atom": rms_meV,
        "eos_volumes_A3": vols_a.tolist(),
        "eos_energies_eV": ens_a.tolist(),
        "eos_points_used": int(sel.sum()),
        "eos_used": sel.tolist(),
        "eos_max_local_moments_muB": moments,  # largest |local moment| of each E(V) point's SCF (μB)
        "eos_total_moments_muB": totals,  # total moment per cell of each E(V) point's SCF (μB)
        "magmom_total": magmom,
        "magmom_max_local": local,
        "spin_polarized": bool(spin),
        "magnetic_candidate": bool(magnetic),
        "coarse_max_local_moment": None if coarse_local is None else float(coarse_local),
        "coarse_window_local_moment": window_local,  # the moment that decided spin (spin_window)
        "spin_probe_moment": probe_moment,  # the production-settings check of a far moment (0.6.1), or None
        "a_start_A": a_start,  # a recomputation's starting a0 (no coarse scan), or None
        "kpts": kpts,
        "grid": list(rho.shape),
        "n_valence": n_val,
        "field_electrons": n_field,
        "field_min": float(rho.min()),
        "n_scf": n_scf,
        "wall_s": time.time() - t0,
        "cpu_s": time.process_time() - c0,  # CPU seconds of this (single-threaded) process
        "settings": asdict(settings),
        "code": _code_versions(),
        "status": "ok",
        "protocol": DATASET_VERSION,
    }
    field = ECDField(rho=rho, lattice=atoms.cell[:], atoms=atoms.copy(), source=f"{DATASET_NAME}:{cid}",
                     meta={"id": cid, "density": "GPAW pseudo density + compensation charges (get_pseudo_density)"})
    field.atoms.calc = None
    return record, field


def _code_versions() -> dict:
    import ase

    import gpaw

    from importlib.metadata import PackageNotFoundError, version

    try:
        setups = version("gpaw-data")  # the PAW setups' package
    except PackageNotFoundError:
        setups = None
    return {"gpaw": gpaw.__version__, "gpaw_data": setups, "ase": ase.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}


# --------------------------------------------------------------------------- the batch


def atoms_to_dict(atoms) -> dict:
    """JSON-able form of a structure for a batch entry's ``"structure"`` key."""
    return {"numbers": [int(z) for z in atoms.numbers], "cell": np.asarray(atoms.cell[:]).tolist(),
            "scaled_positions": (atoms.get_scaled_positions(wrap=False) + 0.0).tolist(), "pbc": [True, True, True]}  # no -0.0


def atoms_from_dict(d: dict):
    """Inverse of :func:`atoms_to_dict`."""
    from ase import Atoms

    return Atoms(numbers=d["numbers"], cell=d["cell"], scaled_positions=d["scaled_positions"], pbc=d.get("pbc", True))


def _done_ids(out: Path) -> set[str]:
    ids = {p.stem for p in (out / "records").glob("*.json")}
    ids |= {p.stem for p in (out / "failures").glob("*.json")}
    return ids


#: Superseded records and failed recomputations: ``history/<id>@<protocol>.json`` (the earlier
#: record, unchanged) and ``history/<id>@<protocol>-failed.json``. A recomputed field is stored as
#: ``fields/<id>@<protocol>.npz`` (named by the record's ``field_file``): no file is rewritten.
HISTORY = "history"


def _is_done(out: Path, entry: dict) -> bool:
    """Whether ``entry`` needs no more work in ``out``: a new compound with a record or a
    failure; a recomputation (``entry["recompute"]``) with a record or failure at this protocol."""
    cid = entry["id"]
    rec_path = out / "records" / f"{cid}.json"
    if entry.get("retry"):
        return rec_path.exists() or (out / HISTORY / f"{cid}@{DATASET_VERSION}-{entry['retry']}-failed.json").exists()
    if entry.get("probe"):
        return ((out / PROBES / f"{cid}@{DATASET_VERSION}.json").exists()
                or (out / HISTORY / f"{cid}@{DATASET_VERSION}-probe-failed.json").exists())
    if not entry.get("recompute"):
        return rec_path.exists()
    if (out / HISTORY / f"{cid}@{DATASET_VERSION}-failed.json").exists():
        return True
    return rec_path.exists() and protocol_version(read_json(rec_path)) == DATASET_VERSION


PROBE_REASON = "the spin probe found a moment"  #: recompute_plan's reason after :func:`probe_plan`'s probe
#: spin probes of stored compounds (:func:`probe_plan`): ``probes/<id>@<protocol>.json``
PROBES = "probes"
#: the starts a failed magnetic compound is retried from (:func:`retry_plan`): settings changes
RETRY_STARTS = {"antiferro": {"antiferro": True}, "low-moment": {"moment_scale": 0.3}, "converged-settings": {}}


def retry_plan(out: str | os.PathLike = "data/embedded", settings: DFTSettings = DFTSettings()) -> list[dict]:
    """Failed prototype compounds to try again: those with a magnetic candidate from another magnetic
    start (antiferromagnetic where the cell holds two or more magnetic atoms, else a lower-moment,
    0.3 ×, ferromagnetic start), the others holding a hard element at the converged cut-off of
    ``settings`` ("converged-settings"). Cheapest kind first."""
    todo = []
    for p in sorted((Path(out) / "failures").glob("*.json")):
        f = read_json(p)
        sp = f.get("species")
        if f.get("prototype") not in PROTOTYPES or not sp:
            continue
        if is_magnetic_candidate(sp, settings.spin_rule):
            n_mag = sum(m > 0 for m in initial_moments(sp, settings.spin_rule))
            start = "antiferro" if n_mag >= 2 else "low-moment"
        elif settings.hard_ecut_eV and set(sp) & set(settings.hard_elements):
            start = "converged-settings"
        else:
            continue
        todo.append((expected_core_s(f["prototype"], tuple(sp)), f["id"],
                     {"id": f["id"], "prototype": f["prototype"], "species": sp, "retry": start}))
    return [e for *_, e in sorted(todo, key=lambda t: t[:2])]


def probe_plan(out: str | os.PathLike = "data/embedded", settings: DFTSettings = DFTSettings()) -> list[dict]:
    """Stored spin-paired prototype compounds that ``settings.spin_rule`` makes magnetic candidates but
    that never had a spin-polarised SCF near their minimum (the coarse scan ran spin-paired, or its
    only moment was outside the window and never checked): each gets one spin probe."""
    todo = []
    for p in sorted((Path(out) / "records").glob("*.json")):
        r = read_json(p)
        if r.get("prototype") not in PROTOTYPES or r.get("spin_polarized") or r.get("spin_probe_moment") is not None:
            continue
        if not is_magnetic_candidate(r["species"], settings.spin_rule):
            continue
        if unconverged_reason(r, settings):
            continue  # recompute_plan recomputes it, with the spin probe
        was_candidate = is_magnetic_candidate(r["species"], r["settings"].get("spin_rule", "list"))
        far = (r.get("coarse_max_local_moment") or 0) >= settings.spin_collapse_muB
        if was_candidate and not far:
            continue  # its coarse scan was spin-polarised and no moment survived anywhere
        todo.append((expected_core_s(r["prototype"], tuple(r["species"])), r["id"],
                     {"id": r["id"], "prototype": r["prototype"], "species": r["species"], "probe": True}))
    return [e for *_, e in sorted(todo, key=lambda t: t[:2])]


def spin_probe(record: dict, settings: DFTSettings = DFTSettings(), log=os.devnull) -> dict:
    """One spin-polarised SCF of a stored compound at production settings, ferromagnetic start, at
    the largest volume of a 0.7.0 scan around its a0 (where a moment is likeliest). Returns the
    probe's record: largest local and total moment (μB), and the energy (eV per cell)."""
    prototype, species = record["prototype"], tuple(record["species"])
    settings = settings.for_species(species)
    build = lambda a: build_atoms(prototype, species, a)  # noqa: E731
    a = round(float(record["a0_A"]) * max(settings.volume_steps) ** (1 / 3), 6)
    kpts = _kmesh(build(float(record["a0_A"])), settings.kpt_density)
    c0 = time.process_time()
    e, at = _energy(build, a, settings, kpts, log, spin=True)
    total, local = _moments(at, True)
    return {"id": record["id"], "a_A": a, "kpts": kpts, "energy_eV": float(e), "max_local_moment_muB": local,
            "total_moment_muB": total, "moment_found": local >= settings.spin_collapse_muB,
            "initial_moments_muB": initial_moments(species, settings.spin_rule), "cpu_s": time.process_time() - c0,
            "settings": asdict(settings), "protocol": DATASET_VERSION, "code": _code_versions()}


def recompute_plan(out: str | os.PathLike = "data/embedded", settings: DFTSettings = DFTSettings()) -> list[dict]:
    """The stored compounds that protocol :data:`DATASET_VERSION` recomputes, cheapest kind first.

    A compound is recomputed if its record is of an older protocol and its settings are not
    converged for its chemistry (:func:`unconverged_reason`), its label is not ``ok``
    (:func:`label_reliability`) or its spin probe found a moment (:func:`probe_plan`). Order:
    fewer elements first (the common compounds an independent reference is likeliest to hold),
    then :func:`expected_core_s`, then id."""
    from . import eos

    out = Path(out)
    todo = []
    for p in sorted((out / "records").glob("*.json")):
        r = read_json(p)
        if protocol_version(r) == DATASET_VERSION or r.get("prototype", "given") not in PROTOTYPES:
            continue
        unconverged = unconverged_reason(r, settings)
        flag, why = label_reliability(r, settings)
        probe = out / PROBES / f"{r['id']}@{DATASET_VERSION}.json"
        magnetised = probe.exists() and read_json(probe)["moment_found"]
        if unconverged or flag != "ok" or magnetised:
            kind = "settings" if unconverged else ("flagged" if flag != "ok" else "probe")
            reason = unconverged or (why if flag != "ok" else PROBE_REASON)
            todo.append((r["n_elements"], expected_core_s(r["prototype"], tuple(r["species"])), r["id"],
                         {"id": r["id"], "prototype": r["prototype"], "species": r["species"], "recompute": reason,
                          "kind": kind}))
    return [e for *_, e in sorted(todo, key=lambda t: t[:3])]


def run_one(entry: dict, out: str | os.PathLike, settings: DFTSettings = DFTSettings()) -> dict:
    """Compute one compound and write it (field first, record last, both atomic).

    A gate failure or crash is written to ``failures/<id>.json``; returns a summary.
    """
    out = Path(out)
    cid = entry["id"]
    t0 = time.time()
    if _is_done(out, entry):
        return {"id": cid, "status": "skipped", "reason": "already computed"}
    if (out / STOP_FILE).exists():
        return {"id": cid, "status": "skipped", "reason": f"stop requested ({out / STOP_FILE})"}
    claim = _claim(out, cid)
    if claim is None:
        return {"id": cid, "status": "skipped", "reason": "in progress in another process"}
    try:
        return _run_one_claimed(entry, out, settings, t0)
    finally:
        claim.unlink(missing_ok=True)


#: ``leanecd-dft stop`` writes this file in the output directory: the running batch starts no
#: new compound, finishes those in flight and returns; the next ``run`` removes it.
STOP_FILE = ".stop"


def request_stop(out: str | os.PathLike) -> Path:
    """Ask the batch running on ``out`` to stop after the compounds in flight (nothing is lost)."""
    path = Path(out) / STOP_FILE
    path.write_text(f"stop requested at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    return path


def _claim(out: Path, cid: str) -> Path | None:
    """Mark ``cid`` as in progress (``out/.claims/<id>.pid``, created exclusively), so that
    two batches on one directory never compute the same compound; a claim whose process
    is gone (killed batch) is taken over. Returns the claim file, or None if it is held."""
    d = out / ".claims"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{cid}.pid"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text().strip() or 0)
                os.kill(pid, 0)
                return None  # alive: someone else is computing it
            except (ValueError, ProcessLookupError, FileNotFoundError):
                path.unlink(missing_ok=True)  # stale claim of a killed process
                continue
            except PermissionError:
                return None
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return path
    return None


def _run_one_claimed(entry: dict, out: Path, settings: DFTSettings, t0: float) -> dict:
    cid = entry["id"]
    logdir = out / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    if entry.get("probe"):
        res = spin_probe(read_json(out / "records" / f"{cid}.json"), settings, log=str(logdir / f"{cid}.txt"))
        write_json(out / PROBES / f"{cid}@{DATASET_VERSION}.json", res)
        return {"id": cid, "status": "ok", "wall_s": time.time() - t0, "moment_found": res["moment_found"]}
    if entry.get("retry"):
        from dataclasses import replace

        settings = replace(settings, **RETRY_STARTS[entry["retry"]])
    old = read_json(out / "records" / f"{cid}.json") if entry.get("recompute") else None
    try:
        if old is not None:
            record, fld = recompute_compound(old, settings, log=str(logdir / f"{cid}.txt"))
        elif "structure" in entry:
            record, fld = compute_structure(atoms_from_dict(entry["structure"]), cid, settings,
                                            log=str(logdir / f"{cid}.txt"), meta=entry.get("meta"))
        else:
            record, fld = compute_compound(entry["prototype"], entry["species"], settings, log=str(logdir / f"{cid}.txt"))
    except DFTError as exc:
        fail = {"id": cid, "prototype": entry.get("prototype", "given"), "species": entry.get("species"),
                "meta": entry.get("meta"), "reason": str(exc), **({"details": exc.details} if exc.details else {}),
                "wall_s": time.time() - t0, "settings": asdict(settings), "status": "failed",
                "protocol": DATASET_VERSION}
        if old is not None:  # the earlier record stays; the failure is kept beside it
            fail["supersedes"] = protocol_version(old)
            write_json(out / HISTORY / f"{cid}@{DATASET_VERSION}-failed.json", fail)
        elif entry.get("retry"):  # the first failure stays in failures/; this one beside the history
            fail["start"] = entry["retry"]
            write_json(out / HISTORY / f"{cid}@{DATASET_VERSION}-{entry['retry']}-failed.json", fail)
        else:
            write_json(out / "failures" / f"{cid}.json", fail)
        return fail
    if entry.get("retry"):  # it worked: the earlier failure moves to the history, unchanged
        first = out / "failures" / f"{cid}.json"
        if first.exists():
            earlier = read_json(first)
            record["start"], record["retried_failure"] = entry["retry"], earlier.get("reason")
            write_json(out / HISTORY / f"{cid}@{earlier.get('protocol') or '0.1.0'}-failed.json", earlier)
    if old is None:
        save_field(out / "fields" / f"{cid}.npz", fld)
    else:  # append only: a new field file, the earlier record kept in history/ before it is replaced
        record["field_file"] = f"fields/{cid}@{DATASET_VERSION}.npz"
        save_field(out / record["field_file"], fld)
        kept = out / HISTORY / f"{cid}@{protocol_version(old)}.json"
        if not kept.exists():
            write_json(kept, old)
    write_json(out / "records" / f"{cid}.json", record)
    if entry.get("retry"):
        (out / "failures" / f"{cid}.json").unlink(missing_ok=True)
    return {"id": cid, "status": "ok", "wall_s": record["wall_s"]}


def _run_one_subprocess(entry: dict, out: str, settings_json: str, timeout_s: float) -> dict:
    """Run :func:`run_one` in a fresh single-threaded Python process (isolates GPAW/MPI)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "leanecd.dft", "one", json.dumps(entry), "--out", out, "--settings", settings_json]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"id": entry["id"], "status": "timeout"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"id": entry["id"], "status": "crashed", "reason": " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_batch(out: str | os.PathLike, limit: int | None = None, workers: int = 2, scheduler: str | None = None,
              settings: DFTSettings = DFTSettings(), seed: int = 0, timeout_s: float = 3600,
              entries: list[dict] | None = None, progress: bool = True) -> list[dict]:
    """Compute the next ``limit`` compounds of :func:`plan` not yet done in ``out``.

    Each compound runs in its own single-threaded process, scheduled by
    ``dask.distributed`` (a local cluster of ``workers`` processes, or the scheduler
    at address ``scheduler``). Finished compounds are skipped on restart; killing the
    batch loses only the compounds in flight, :func:`request_stop` (``leanecd-dft stop``)
    not even those: it lets them finish and starts no more.
    """
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / STOP_FILE).unlink(missing_ok=True)  # a new run: a stop asked of an earlier batch is done
    write_dataset_json(out, settings)
    todo_all = entries if entries is not None else plan(seed)
    finished = _done_ids(out)
    done = {e["id"] for e in todo_all if (_is_done(out, e) if e.get("recompute") else e["id"] in finished)}
    todo = [e for e in todo_all if e["id"] not in done]
    if limit is not None:
        todo = todo[: max(0, limit - len(done))]
    if not todo:
        return []
    sj = json.dumps(asdict(settings))
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None)
        client = Client(cluster)
    results = []
    try:
        by_id = {e["id"]: e for e in todo}
        # dask does not run independent tasks in submission order: the priority keeps the plan's order
        futs = [client.submit(_run_one_subprocess, e, str(out), sj, timeout_s, key=f"dft-{e['id']}", pure=False,
                              priority=len(todo) - i) for i, e in enumerate(todo)]
        bar = tqdm(total=len(futs), desc="DFT compounds", unit="cpd", disable=not progress)
        for fut in as_completed(futs):
            res = fut.result()
            results.append(res)
            bar.set_postfix_str(f"{res['id']}: {res['status']}")
            bar.update()
            if res["status"] in ("timeout", "crashed"):
                entry = by_id[res["id"]]
                reason = res.get("reason") or (f"timeout: not finished within {timeout_s:g} s wall"
                                               if res["status"] == "timeout" else res["status"])
                fail = {**res, "reason": reason, "prototype": entry.get("prototype", "given"),
                        "species": entry.get("species"), "settings": asdict(settings), "protocol": DATASET_VERSION}
                kind = next((k for k in ("recompute", "retry", "probe") if entry.get(k)), None)
                if kind is None:
                    write_json(out / "failures" / f"{res['id']}.json", fail)
                else:  # a stored compound (or an earlier failure) stays as it is; this attempt is kept beside it
                    tag = {"recompute": "", "retry": f"-{entry.get('retry')}", "probe": "-probe"}[kind]
                    write_json(out / HISTORY / f"{res['id']}@{DATASET_VERSION}{tag}-failed.json", fail)
        bar.close()
    finally:
        client.close()
        if not scheduler:
            cluster.close()
    write_labels(out)
    return results


def write_dataset_json(out: Path, settings: DFTSettings = DFTSettings()) -> None:
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
    "protocol": ("", "protocol version the record was computed with (PROTOCOL_HISTORY)"),
    "scan_offset": ("1", "V0 / (centre of the fitted volumes) − 1"),
}


def _fit_points(record: dict) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(record["eos_volumes_A3"], float)
    e = np.asarray(record["eos_energies_eV"], float)
    used = np.asarray(record.get("eos_used", [True] * len(v)), bool)
    return v[used], e[used]


def unconverged_reason(record: dict, settings: DFTSettings = DFTSettings()) -> str:
    """Why a record's settings are not converged for its chemistry by the current protocol, or ""."""
    ecut, kd = record["settings"]["ecut_eV"], record["settings"]["kpt_density"]
    hard = sorted(set(record["species"]) & set(settings.hard_elements))
    why = []
    if hard and settings.hard_ecut_eV and ecut < settings.hard_ecut_eV:
        why.append(f"{', '.join(hard)} at {ecut:g} eV (converged: {settings.hard_ecut_eV:g} eV)")
    if len(set(record["species"])) == 1 and settings.element_kpt_density and kd < settings.element_kpt_density:
        why.append(f"an element at k density {kd:g} Å (converged: {settings.element_kpt_density:g} Å)")
    return "; ".join(why)


def label_reliability(record: dict, settings: DFTSettings = DFTSettings()) -> tuple[str, str]:
    """(``ok`` | ``uncertain``, reason) of a record's labels (:func:`leanecd.eos.reliability`)."""
    from . import eos

    v, e = _fit_points(record)
    unc = eos.uncertainty(v, e)
    return eos.reliability(record["bulk_modulus_prime"], record["fit_rms_meV_per_atom"], unc,
                           record["bulk_modulus_GPa"], unconverged_reason(record, settings))


def label_row(record: dict) -> dict:
    """One row of ``labels.csv`` (:data:`LABEL_COLUMNS`) from a record."""
    from . import eos

    v, e = _fit_points(record)
    unc = eos.uncertainty(v, e)
    flag, why = label_reliability(record)
    return {**record, "protocol": protocol_version(record), "scan_offset": scan_offset(record),
            "bulk_modulus_uncertainty_GPa": unc.b_spread_GPa, "a0_uncertainty_A": unc.a0_spread * record["a0_A"],
            "reliability": flag, "reliability_reason": why, "eos_points": len(v),
            "ecut_eV": record["settings"]["ecut_eV"], "kpt_density": record["settings"]["kpt_density"],
            "magmom_max_local": record.get("magmom_max_local", 0.0)}


def write_labels(out: str | os.PathLike) -> Path:
    """Regenerate ``labels.csv`` (one row per good compound) from ``records/``, and the
    SHA-256 of every file in ``dataset.json``."""
    import csv

    out = Path(out)
    rows = [read_json(p) for p in sorted((out / "records").glob("*.json"))]
    from .store import atomic_path

    with atomic_path(out / "labels.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=LABEL_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow(label_row(r))  # full precision
    write_dataset_json(out)
    return out / "labels.csv"


def file_hashes(out: str | os.PathLike) -> dict[str, str]:
    """SHA-256 (hex) of every data file of the dataset in ``out``, by path relative to it
    (records, fields, failures, history, labels.csv; not dataset.json itself, logs or claims)."""
    import hashlib

    out = Path(out)
    paths = [p for d in ("records", "fields", "failures", HISTORY) for p in sorted((out / d).glob("*")) if p.is_file()
             and not p.name.startswith(".")]
    paths += [out / "labels.csv"] if (out / "labels.csv").exists() else []
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


# --------------------------------------------------------------------------- command line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="leanecd-dft", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_plan = sub.add_parser("plan", help="list the compounds in computing order")
    p_plan.add_argument("--limit", type=int, default=None)
    p_run = sub.add_parser("run", help="compute the next compounds (resumes)")
    p_run.add_argument("--out", default="data/embedded")
    p_run.add_argument("--limit", type=int, default=None, help="stop when this many compounds are done in --out")
    p_run.add_argument("--workers", type=int, default=2)
    p_run.add_argument("--scheduler", default=None, help="dask scheduler address (default: local cluster)")
    p_run.add_argument("--timeout", type=float, default=3600, help="seconds per compound")
    p_run.add_argument("--entries", default=None,
                       help="JSON file with a list of entries ({id, structure, meta} or {id, prototype, species}) "
                            "to compute instead of the built-in plan, e.g. from leanecd.data.jarvis_dft_entries")
    p_one = sub.add_parser("one", help="(internal) compute one compound given as JSON")
    p_one.add_argument("entry")
    p_one.add_argument("--out", required=True)
    p_one.add_argument("--settings", default=None)
    p_re = sub.add_parser("recompute", help="recompute the stored compounds the current protocol changes (resumes)")
    p_re.add_argument("--out", default="data/embedded")
    p_re.add_argument("--limit", type=int, default=None, help="recompute at most this many (in plan order)")
    p_re.add_argument("--workers", type=int, default=2)
    p_re.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per compound")
    p_re.add_argument("--list", action="store_true", help="print the plan, compute nothing")
    p_re.add_argument("--which", choices=["all", "settings", "flagged", "probe", "retry"], default="all",
                      help="settings: only compounds whose settings are not converged for their chemistry; flagged: "
                           "only those with an uncertain label; probe: one spin probe for each open-shell compound "
                           "never checked (probe_plan); retry: failed compounds from another start (retry_plan)")
    p_stop = sub.add_parser("stop", help="let the running batch finish the compounds in flight, then stop")
    p_stop.add_argument("--out", default="data/embedded")
    p_lab = sub.add_parser("labels", help="regenerate labels.csv and the dataset card from records/")
    p_lab.add_argument("--out", default="data/embedded")
    args = ap.parse_args(argv)
    if args.cmd == "plan":
        for e in plan()[: args.limit]:
            print(e["id"], e["prototype"], " ".join(e["species"]))
    elif args.cmd == "run":
        entries = read_json(args.entries) if args.entries else None
        res = run_batch(args.out, limit=args.limit, workers=args.workers, scheduler=args.scheduler, timeout_s=args.timeout,
                        entries=entries)
        ok = sum(r["status"] == "ok" for r in res)
        skipped = sum(r["status"] == "skipped" for r in res)
        print(f"computed {len(res) - skipped} compounds: {ok} ok, {len(res) - skipped - ok} failed "
              f"(see {args.out}/failures)" + (f"; {skipped} skipped (done, claimed by another batch, "
                                              "or not started after a stop request)" if skipped else ""))
    elif args.cmd == "recompute":
        todo = {"probe": probe_plan, "retry": retry_plan}.get(args.which, recompute_plan)(args.out)
        if args.which in ("settings", "flagged"):
            todo = [e for e in todo if e["kind"] == args.which]
        if args.list:
            for e in todo:
                why = e.get("recompute") or (f"retry ({e['retry']} start)" if e.get("retry") else "spin probe")
                print(e["id"], "|", why, "| done" if _is_done(Path(args.out), e) else "")
            return 0
        todo = todo[: args.limit] if args.limit is not None else todo
        res = run_batch(args.out, workers=args.workers, timeout_s=args.timeout, entries=todo)
        ok = sum(r["status"] == "ok" for r in res)
        print(f"{args.which}: {ok} of {len(res)} compounds done under protocol {DATASET_VERSION} "
              f"(failures kept in {args.out}/{HISTORY}/<id>@{DATASET_VERSION}-failed.json)")
    elif args.cmd == "one":
        settings = DFTSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(args.settings).items()}) if args.settings else DFTSettings()
        print(json.dumps(run_one(json.loads(args.entry), args.out, settings)))
    elif args.cmd == "stop":
        print(f"{request_stop(args.out)}: the batch finishes the compounds in flight, then stops")
    elif args.cmd == "labels":
        write_dataset_json(Path(args.out))
        print(write_labels(args.out))
        print(write_card(args.out))
    return 0



# --------------------------------------------------------------------------- dataset card


def write_card(out: str | os.PathLike = "data/embedded", card: str | os.PathLike | None = None) -> Path:
    """Regenerate the dataset card (:func:`leanecd.card.write_card`)."""
    from .card import write_card as _write

    return _write(out, card)


if __name__ == "__main__":
    sys.exit(main())
