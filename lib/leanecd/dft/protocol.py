"""The protocol for one compound: the E(V) scans, the Birch–Murnaghan fit and the field at a0.

:func:`_protocol_run` runs the steps of the package's docstring (2: coarse scan, production scan;
3: fit; 4: the field at a0) for any structure; :func:`compute_compound`, :func:`recompute_compound`
and :func:`compute_structure` give it a prototype compound, a stored record or a cubic structure.
:func:`spin_probe` and :func:`scan_energies` run parts of it (a stored compound's spin probe; the
convergence study's E(V) scan).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from ase.eos import EquationOfState
from ase.units import GPa

from ..errors import DFTError
from ..field import ECDField
from ..lattice import find_cubic_cell
from .compounds import GUESS_SCALE, PROTOTYPES, build_atoms, compound_id, guess_lattice_constant
from .scf import code_versions, kmesh, magnetic_moments, scf_energy
from .settings import (
    DATASET_NAME,
    DATASET_VERSION,
    DFTSettings,
    initial_moments,
    is_magnetic_candidate,
    protocol_version,
    spin_decision,
)


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


def scan_energies(prototype: str, species, a_centre: float, volume_steps, settings: DFTSettings,
                  spin: bool = False, kpts=None, txt=os.devnull) -> dict:
    """E(V) of a prototype compound at V = (a_centre³) × each of ``volume_steps``, at production
    settings, the k mesh fixed (from ``a_centre`` unless ``kpts``), each SCF starting from the last.

    The convergence study's unit of work. Returns the volumes (Å³ per stored cell), energies (eV
    per cell), largest local moment of each SCF (μB), k mesh, atoms per cell and CPU seconds."""
    species = tuple(species)
    build = lambda a: build_atoms(prototype, species, a)  # noqa: E731
    c0 = time.process_time()
    kpts = list(kpts) if kpts is not None else kmesh(build(a_centre), settings.kpt_density)
    vols, ens, moms, prev = [], [], [], None
    for s in volume_steps:
        a = round(a_centre * s ** (1 / 3), 6)
        e, at = scf_energy(build, a, settings, kpts, txt, spin=spin, previous=prev)
        prev = at.calc
        vols.append(float(at.get_volume()))
        ens.append(float(e))
        moms.append(magnetic_moments(at, spin)[1])
    return {"eos_volumes_A3": vols, "eos_energies_eV": ens, "max_local_moments_muB": moms, "kpts": kpts,
            "natoms": len(build(a_centre)), "cpu_s": time.process_time() - c0}


def compute_compound(prototype: str, species, settings: DFTSettings = DFTSettings(), log=None):
    """Run the whole protocol for one prototype compound. Returns ``(record, field)``.

    Raises :class:`~leanecd.errors.DFTError` with the reason when a gate fails.
    """
    species = tuple(species)
    p = PROTOTYPES[prototype]
    mult = 4 if p.lattice == "fcc" else 1
    scale = GUESS_SCALE.get(prototype, 1.0) if settings.calibrated_guess else 1.0
    a_guess = guess_lattice_constant(prototype, species) * scale
    record, field = _protocol(lambda a: build_atoms(prototype, species, a), a_guess,
                              mult, compound_id(prototype, species), settings, log)
    record.update(_prototype_keys(prototype, species))
    return record, field


def _prototype_keys(prototype: str, species: tuple) -> dict:
    """The record keys that name a prototype compound: prototype, space group, species, elements, cell."""
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
    magnetic candidate gets the spin probe. The steps are those of the package's docstring."""
    t0, c0 = time.time(), time.process_time()
    atoms_guess = build(a_guess)
    symbols = atoms_guess.get_chemical_symbols()
    settings = settings.for_species(symbols)
    run = _Run(build, settings, txt, magnetic=is_magnetic_candidate(symbols, settings.spin_rule),
               natoms=len(atoms_guess))
    # 2. the equilibrium lattice constant: where the production scan starts, spin-polarised or not, ...
    if a_start is None:
        a_est = _coarse_scan(run, atoms_guess, a_guess)
    else:  # no coarse scan: the earlier record decides, else the spin probe
        a_est = float(a_start)
        run.spin = run.magnetic and bool(spin_start)
    # ... the production scan, k mesh fixed for all volumes, re-centred until its minimum is inside ...
    run.kpts = kmesh(build(a_est), settings.kpt_density)
    v_est, a_pre = _production_scan(run, a_est**3, mult)
    # ... and the field SCF at the minimum found on the final scan, a point of the fit (field_in_fit)
    field = _field_point(run, a_pre) if a_pre is not None else None
    # 3. the Birch–Murnaghan fit and its gates
    fit = _fit(run, v_est, mult)
    # 4. the field at equilibrium (the fit's point if it lies within the tolerance of a0)
    if field is not None and abs(field[0] / fit["a0"] - 1) <= settings.field_a_tolerance:
        a_field, e_eq, atoms = field
    else:
        a_field = fit["a0"]
        e_eq, atoms = run.scf(fit["a0"], run.kpts, spin=run.spin, previous=run.prev)
    rho, n_val, n_field = _stored_density(atoms, settings)
    record = _record(run, cid, a_guess, a_start, fit, a_field, field is not None and a_field == field[0], e_eq, atoms,
                     rho, n_val, n_field, t0, c0)
    field = ECDField(rho=rho, lattice=atoms.cell[:], atoms=atoms.copy(), source=f"{DATASET_NAME}:{cid}",
                     meta={"id": cid, "density": "GPAW pseudo density + compensation charges (get_pseudo_density)"})
    field.atoms.calc = None
    return record, field


@dataclass
class _Run:
    """What the protocol's steps share for one compound: its structure and settings, the SCFs run,
    the spin decision and the production scan's E(V) points."""

    build: Callable  #: conventional edge a (Å) -> Atoms
    settings: DFTSettings  #: resolved for the compound's species
    txt: Any  #: GPAW's output: a path or an open text file
    magnetic: bool  #: a magnetic candidate: the coarse scan starts spin-polarised
    natoms: int
    n_scf: int = 0
    prev: Any = None  #: the last SCF's calculator (its wave functions start the next SCF)
    spin: bool = False  #: the production scan and the field are spin-polarised
    coarse_local: float | None = None  #: largest |local moment| (μB) of the coarse scan (None: none ran)
    window_local: float | None = None  #: the coarse moment (μB) near its minimum that decided the spin
    probe_moment: float | None = None  #: largest |local moment| (μB) of the spin probe, if one ran
    kpts: list = field(default_factory=list)  #: the production scan's k mesh
    edges: list = field(default_factory=list)  #: E(V) points: conventional edge a (Å)
    vols: list = field(default_factory=list)  #: volume of the stored cell (Å³)
    ens: list = field(default_factory=list)  #: energy (eV per cell)
    moments: list = field(default_factory=list)  #: largest |local moment| (μB) of each point's SCF
    totals: list = field(default_factory=list)  #: total moment (μB per cell) of each point's SCF

    def scf(self, a, kpts, **kw):
        """One SCF at edge ``a`` Å (:func:`~leanecd.dft.scf.scf_energy`), counted; returns ``(energy, atoms)``."""
        e, atoms = scf_energy(self.build, a, self.settings, kpts, self.txt, **kw)
        self.n_scf += 1
        return e, atoms

    def add_point(self, a, volume, e, local, total):
        """Append one E(V) point of the production scan."""
        self.edges.append(a)
        self.vols.append(volume)
        self.ens.append(e)
        self.moments.append(local)
        self.totals.append(total)


def _coarse_scan(run: _Run, atoms_guess, a_guess: float) -> float:
    """Step 2a: the bracketing scan at coarse settings; sets the spin decision, returns its minimum's edge (Å)."""
    settings = run.settings
    ck = kmesh(atoms_guess, settings.coarse_kpt_density)
    pts, coarse_moms = {}, {}  # coarse scan: energy and largest |local moment| (μB) by edge a

    def coarse_point(a):
        if a not in pts:
            e, at = run.scf(a, ck, coarse=True, spin=run.magnetic, previous=run.prev)
            run.prev = at.calc
            pts[a] = e
            coarse_moms[a] = magnetic_moments(at, run.magnetic)[1]

    if settings.bracket_grid:
        a_est = _walk_grid(coarse_point, pts, a_guess, settings.bracket_steps[2] / settings.bracket_steps[1])
    else:
        a_est = _recentre_brackets(coarse_point, pts, a_guess, settings.bracket_steps)
    if a_est is None:
        raise DFTError(f"no energy minimum found between a = {min(pts):.3f} and {max(pts):.3f} Å (coarse scan)")
    # spin polarisation only where a moment survives the coarse scan near its minimum
    spin, run.window_local = spin_decision(coarse_moms, a_est, settings)
    run.spin = run.magnetic and spin
    run.coarse_local = max(coarse_moms.values(), default=0.0)
    run.prev = None  # coarse and production differ in cutoff and k mesh: nothing to reuse
    return a_est


def _interior_minimum(pts: dict):
    """(parabola minimum through the lowest coarse point and its neighbours or None, its index, sorted edges)."""
    a_sorted = sorted(pts)
    e_sorted = [pts[a] for a in a_sorted]
    k = int(np.argmin(e_sorted))
    if 0 < k < len(a_sorted) - 1:
        c2, c1, _ = np.polyfit(a_sorted[k - 1 : k + 2], e_sorted[k - 1 : k + 2], 2)
        return (-c1 / (2 * c2) if c2 > 0 else a_sorted[k]), k, a_sorted
    return None, k, a_sorted


def _walk_grid(coarse_point, pts: dict, a_guess: float, ratio: float) -> float | None:
    """Coarse points on the grid a_guess × ratio^k, extended one point at a time until the minimum is inside."""
    grid = lambda k: round(a_guess * ratio**k, 6)  # noqa: E731
    lo, hi = -1, 1
    for k in (lo, 0, hi):
        coarse_point(grid(k))
    for _ in range(8):
        a_est, k, _ = _interior_minimum(pts)
        if a_est is not None:
            return a_est
        if k == 0:  # lowest at the small edge: one more point below
            lo -= 1
            coarse_point(grid(lo))
        else:
            hi += 1
            coarse_point(grid(hi))
    return _interior_minimum(pts)[0]


def _recentre_brackets(coarse_point, pts: dict, a_guess: float, bracket_steps) -> float | None:
    """Coarse 3-point brackets re-centred on their lowest point until the minimum is inside (versions 0.1–0.2)."""
    centre = a_guess
    for _ in range(8):
        for s in bracket_steps:
            coarse_point(round(centre * s, 6))
        a_est, k, a_sorted = _interior_minimum(pts)
        if a_est is not None:
            return a_est
        centre = a_sorted[k]
    return None


def _production_scan(run: _Run, v_est: float, mult: int) -> tuple[float, float | None]:
    """Step 2b: the spin probe, then the production scan until balanced; returns (V_est Å³, a_pre Å or None)."""
    settings = run.settings
    # with field_in_fit the centre volume is left out: the field SCF takes its place
    steps = [s for s in settings.volume_steps if not (settings.field_in_fit and abs(s - 1) < 1e-9)]
    if (run.magnetic and not run.spin and settings.spin_probe
            and (run.coarse_local is None or run.coarse_local >= settings.spin_collapse_muB)):
        _probe_point(run, round((v_est * max(steps)) ** (1 / 3), 6))
    a_pre = None  # with field_in_fit: the BM minimum through the final scan's points (conventional edge, Å)
    for _ in range(4):
        _scan_points(run, steps, v_est)
        order = np.argsort(run.vols)
        k = int(np.argmin(np.array(run.ens)[order]))
        if not 0 < k < len(run.vols) - 1:
            v_est = np.array(run.edges)[order][k] ** 3  # minimum at an edge: re-centre on the lowest point
            continue
        if settings.field_in_fit:
            # the coarse minimum can sit a few % off (hard O/N/F atoms at 250 eV): re-centre on the
            # fitted minimum so that the points stay balanced around it (benchmarks/dft_eos_window.py)
            window = np.abs(np.array(run.edges) ** 3 / v_est - 1) <= 0.11
            a_pre = _eos_minimum_edge(np.array(run.vols)[window], np.array(run.ens)[window], mult)
            if a_pre is not None and abs(a_pre**3 / v_est - 1) > settings.recentre_volume:
                v_est = a_pre**3
                continue
        break
    else:
        raise DFTError("production scan not centred on its minimum after 4 re-centrings")
    return v_est, a_pre


def _probe_point(run: _Run, a: float) -> None:
    """The spin probe: one spin-polarised SCF at edge ``a`` Å, a point of the scan if its moment survives."""
    # the coarse scan saw a moment only far from its minimum (or none ran): does one survive at
    # production settings at the largest volume of the scan (where a moment is likeliest)?
    e, at = run.scf(a, run.kpts, spin=True)
    probe_total, run.probe_moment = magnetic_moments(at, True)
    if run.probe_moment >= run.settings.spin_collapse_muB:  # it does: the scan is spin-polarised, this SCF a point
        run.spin, run.prev = True, at.calc
        run.add_point(a, at.get_volume(), e, run.probe_moment, probe_total)


def _scan_points(run: _Run, steps, v_est: float) -> None:
    """The production scan's SCFs at V = v_est × each of ``steps`` that it does not hold yet."""
    for s in steps:
        target = v_est * s  # conventional-cell volume, Å³
        if run.settings.field_in_fit and any(abs(x**3 / target - 1) <= 0.01 for x in run.edges):
            continue  # a point within 1 % in volume is already there (re-centred scans)
        a = round(target ** (1 / 3), 6)
        if a in run.edges:
            continue
        e, at = run.scf(a, run.kpts, spin=run.spin, previous=run.prev)
        run.prev = at.calc
        total, local = magnetic_moments(at, run.spin)
        run.add_point(a, run.build(a).get_volume(), e, local, total)


def _field_point(run: _Run, a_pre: float) -> tuple:
    """The field SCF at the final scan's minimum ``a_pre`` (Å), added as a point of the fit: (a, energy, atoms)."""
    a_pre = round(a_pre, 6)
    e, at = run.scf(a_pre, run.kpts, spin=run.spin, previous=run.prev)
    run.prev = at.calc
    total, local = magnetic_moments(at, run.spin)
    run.add_point(a_pre, at.get_volume(), e, local, total)
    return a_pre, e, at


def _fit(run: _Run, v_est: float, mult: int) -> dict:
    """Step 3: the Birch–Murnaghan fit on the final scan's points, through its gates (a0 Å, B GPa, E0 eV, …)."""
    vols_a, ens_a = np.array(run.vols), np.array(run.ens)
    # fit on the final scan: the points within ±11 % in volume of its centre
    sel = np.abs(np.array(run.edges) ** 3 / v_est - 1) <= 0.11

    def gate(message: str) -> DFTError:
        """A failed fit gate, with the scan that failed it (kept in the failure record)."""
        return DFTError(message, details={"eos_volumes_A3": vols_a.tolist(), "eos_energies_eV": ens_a.tolist(),
                                          "eos_used": sel.tolist(), "max_local_moments_muB": run.moments,
                                          "spin_polarized": bool(run.spin), "kpts": run.kpts, "natoms": run.natoms,
                                          "n_scf": run.n_scf})

    eos = EquationOfState(vols_a[sel], ens_a[sel], eos="birchmurnaghan")
    try:
        v0, e0, B = eos.fit()
    except Exception as exc:
        raise gate(f"Birch–Murnaghan fit failed: {exc}") from None
    Bp = float(eos.eos_parameters[2]) if hasattr(eos, "eos_parameters") else float("nan")
    resid = ens_a[sel] - eos.func(vols_a[sel], *eos.eos_parameters)
    rms_meV = float(np.sqrt(np.mean(resid**2)) / run.natoms * 1000)
    B_GPa = float(B / GPa)
    if not (vols_a[sel].min() < v0 < vols_a[sel].max()):
        raise gate(f"fitted V0 = {v0:.3f} Å³ outside the scan [{vols_a.min():.3f}, {vols_a.max():.3f}]")
    if not B_GPa > 0:
        raise gate(f"bulk modulus {B_GPa:.2f} GPa is not positive")
    if rms_meV > run.settings.max_fit_rms_meV:
        raise gate(f"fit residual {rms_meV:.3f} meV/atom exceeds {run.settings.max_fit_rms_meV}")
    return {"a0": float((v0 * mult) ** (1 / 3)), "e0": e0, "B_GPa": B_GPa, "Bp": Bp, "rms_meV": rms_meV,
            "vols": vols_a, "ens": ens_a, "sel": sel}


def _stored_density(atoms, settings: DFTSettings) -> tuple[np.ndarray, float, float]:
    """Step 4's gate: the field's density (e/Å³), the valence electrons and the field's (which must agree)."""
    calc = atoms.calc
    rho = calc.get_pseudo_density()  # pseudo density + compensation charges, e/Å³
    n_val = float(calc.get_number_of_electrons())
    n_field = float(rho.mean() * atoms.get_volume())
    if abs(n_field - n_val) / n_val > settings.max_electron_error:
        raise DFTError(f"stored field holds {n_field:.5f} electrons, expected {n_val}")
    return rho, n_val, n_field


def _record(run: _Run, cid: str, a_guess: float, a_start, fit: dict, a_field: float, field_in_fit: bool, e_eq: float,
            atoms, rho, n_val: float, n_field: float, t0: float, c0: float) -> dict:
    """The compound's record (the prototype-independent keys) from the steps' results."""
    magmom, local = magnetic_moments(atoms, run.spin)
    natoms, sel = run.natoms, fit["sel"]
    return {
        "id": cid,
        "formula": atoms.get_chemical_formula(mode="metal"),
        "natoms": natoms,
        "a0_A": fit["a0"],
        "a_field_A": float(a_field),  # edge of the stored field's cell (a0 within field_a_tolerance)
        "field_in_fit": field_in_fit,
        "a_guess_A": a_guess,
        "bulk_modulus_GPa": fit["B_GPa"],
        "bulk_modulus_prime": fit["Bp"],
        "energy_per_atom_eV": float(fit["e0"] / natoms),
        "scf_energy_at_a0_per_atom_eV": float(e_eq / natoms),
        "fit_rms_meV_per_atom": fit["rms_meV"],
        "eos_volumes_A3": fit["vols"].tolist(),
        "eos_energies_eV": fit["ens"].tolist(),
        "eos_points_used": int(sel.sum()),
        "eos_used": sel.tolist(),
        "eos_max_local_moments_muB": run.moments,  # largest |local moment| of each E(V) point's SCF (μB)
        "eos_total_moments_muB": run.totals,  # total moment per cell of each E(V) point's SCF (μB)
        "magmom_total": magmom,
        "magmom_max_local": local,
        "spin_polarized": bool(run.spin),
        "magnetic_candidate": bool(run.magnetic),
        "coarse_max_local_moment": None if run.coarse_local is None else float(run.coarse_local),
        "coarse_window_local_moment": run.window_local,  # the moment that decided spin (spin_window)
        "spin_probe_moment": run.probe_moment,  # the production-settings check of a far moment (0.6.1), or None
        "a_start_A": a_start,  # a recomputation's starting a0 (no coarse scan), or None
        "kpts": run.kpts,
        "grid": list(rho.shape),
        "n_valence": n_val,
        "field_electrons": n_field,
        "field_min": float(rho.min()),
        "n_scf": run.n_scf,
        "wall_s": time.time() - t0,
        "cpu_s": time.process_time() - c0,  # CPU seconds of this (single-threaded) process
        "settings": asdict(run.settings),
        "code": code_versions(),
        "status": "ok",
        "protocol": DATASET_VERSION,
    }


def spin_probe(record: dict, settings: DFTSettings = DFTSettings(), log=os.devnull) -> dict:
    """One spin-polarised SCF of a stored compound at production settings, ferromagnetic start, at
    the largest volume of a 0.7.0 scan around its a0 (where a moment is likeliest). Returns the
    probe's record: largest local and total moment (μB), and the energy (eV per cell)."""
    prototype, species = record["prototype"], tuple(record["species"])
    settings = settings.for_species(species)
    build = lambda a: build_atoms(prototype, species, a)  # noqa: E731
    a = round(float(record["a0_A"]) * max(settings.volume_steps) ** (1 / 3), 6)
    kpts = kmesh(build(float(record["a0_A"])), settings.kpt_density)
    c0 = time.process_time()
    e, at = scf_energy(build, a, settings, kpts, log, spin=True)
    total, local = magnetic_moments(at, True)
    return {"id": record["id"], "a_A": a, "kpts": kpts, "energy_eV": float(e), "max_local_moment_muB": local,
            "total_moment_muB": total, "moment_found": local >= settings.spin_collapse_muB,
            "initial_moments_muB": initial_moments(species, settings.spin_rule), "cpu_s": time.process_time() - c0,
            "settings": asdict(settings), "protocol": DATASET_VERSION, "code": code_versions()}
