"""The protocol's settings: :class:`DFTSettings`, the rules that resolve them per chemistry and
magnetism, and the protocol's versions (what each changed: ``book/changelog.md``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

DATASET_NAME = "leanecd-gpaw-cubic"

#: The protocol's versions, oldest first (what each changed: ``book/changelog.md``). A record's version
#: is ``record["protocol"]`` (from 0.3.0), else told by its settings (see :func:`protocol_version`).
PROTOCOL_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.6.1", "0.6.2", "0.7.0")
DATASET_VERSION = PROTOCOL_VERSIONS[-1]  #: the protocol's version; the loaded data's is "<this>+<n>cpd"


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


def initial_moments(symbols, rule: str = "open-shell", scale: float = 1.0) -> list[float]:
    """Ferromagnetic starting moments (μB) of a spin-polarised SCF, one per atom, times ``scale``
    (an antiferromagnetic start: :func:`leanecd.dft.scf.antiferro_moments`).

    ``rule``: "list" (versions ≤ 0.6.2: only :data:`MAGNETIC`) or "open-shell"."""
    if rule == "list":
        m = [MAGNETIC.get(s, 0.0) for s in symbols]
    else:
        m = [MAGNETIC.get(s, OPEN_SHELL_MOMENT if s in OPEN_SHELL else 0.0) for s in symbols]
    return [x * scale for x in m]


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
    #: spin-paired production if every local moment of the coarse scan near its minimum is below this (μB)
    spin_collapse_muB: float = 0.05
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
    #: start some magnetic atoms opposite, keeping the crystal's symmetry (a retry's antiferromagnetic
    #: start: :func:`leanecd.dft.scf.antiferro_moments`)
    antiferro: bool = False

    def for_species(self, symbols) -> DFTSettings:
        """These settings resolved for one compound: ``ecut_eV`` is ``hard_ecut_eV`` if it holds a hard
        element, ``kpt_density`` is ``element_kpt_density`` if it has one element only."""
        out = self
        if self.hard_ecut_eV and set(symbols) & set(self.hard_elements):
            out = replace(out, ecut_eV=max(self.ecut_eV, self.hard_ecut_eV))
        if self.element_kpt_density and len(set(symbols)) == 1:
            out = replace(out, kpt_density=max(self.kpt_density, self.element_kpt_density))
        return out


#: The settings of protocol 0.6.2 (every compound at 450 eV, 5 volumes, the magnetic list)
SETTINGS_062 = DFTSettings(volume_steps=(0.90, 0.95, 1.0, 1.05, 1.10), hard_ecut_eV=0.0, element_kpt_density=0.0,
                           spin_rule="list")


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
