"""One SCF: the GPAW plane-wave calculator, its k mesh, the total energy with its retries, and
the magnetic moments (μB) of a converged calculation."""

from __future__ import annotations

import itertools
import sys
from importlib.metadata import PackageNotFoundError, version

import ase
import numpy as np
from ase.calculators.calculator import kptdensity2monkhorstpack

from ..errors import DFTError
from .settings import DFTSettings, initial_moments


def _calculator(settings: DFTSettings, kpts, magnetic: bool, txt, coarse=False, gentle=False):
    """GPAW plane-wave calculator; ``gentle``: a damped density mixer for SCFs that did not converge,
    with ``settings.maxiter`` iterations (otherwise ``settings.maxiter_first``, if set)."""
    from gpaw import GPAW, PW, FermiDirac, Mixer, MixerDif  # lazily: the package imports without GPAW

    extra = {}
    if gentle:
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


def kmesh(atoms, density: float) -> list[int]:
    """Γ-centred k mesh of ``atoms`` at ``density`` k-points per Å⁻¹ (ASE's rule)."""
    return [int(k) for k in kptdensity2monkhorstpack(atoms, kptdensity=density, even=False)]


def scf_energy(build, a, settings, kpts, txt, coarse=False, spin=False, previous=None):
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
            atoms.set_initial_magnetic_moments(starting_moments(atoms, settings))
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


def starting_moments(atoms, settings: DFTSettings) -> list[float]:
    """Starting moments (μB) of a spin-polarised SCF of ``atoms``: ferromagnetic (:func:`initial_moments`),
    times ``settings.moment_scale``; with ``settings.antiferro``, :func:`antiferro_moments`' start
    (:class:`DFTError` if the cell has none)."""
    m = initial_moments(atoms.get_chemical_symbols(), settings.spin_rule, settings.moment_scale)
    if not settings.antiferro:
        return m
    afm = antiferro_moments(atoms, m)
    if afm is None:
        raise DFTError(f"{atoms.get_chemical_formula()}: no antiferromagnetic start keeps the cell's symmetry")
    return afm


def antiferro_moments(atoms, moments, symprec: float = 1e-4) -> list[float] | None:
    """An antiferro- or ferrimagnetic start (μB per atom) from the ferromagnetic ``moments``, or None.

    Some magnetic atoms turn opposite to the first one, and only such that every symmetry operation
    of the spin-paired crystal maps the start onto itself or onto its reverse: the charge density
    then keeps the crystal's point group (a spin-flipped state has the same density). Of those
    patterns: successive magnetic atoms alternating if it qualifies, else the smallest net moment
    (then the first in order). None if no pattern qualifies (three equivalent face-centred atoms of
    an antiperovskite; a single magnetic atom)."""
    import spglib  # lazily: the package imports without the DFT extra

    m = np.asarray(moments, dtype=float)
    mag = np.flatnonzero(m)
    if len(mag) < 2:
        return None
    frac = atoms.get_scaled_positions()
    sym = spglib.get_symmetry((atoms.cell[:], frac, atoms.numbers), symprec=symprec)
    perms = []
    for rot, trans in zip(sym["rotations"], sym["translations"]):
        d = (frac @ rot.T + trans)[:, None, :] - frac[None, :, :]  # image of atom i minus atom j
        d -= np.round(d)
        perms.append(np.argmin(np.linalg.norm(d @ atoms.cell[:], axis=2), axis=1))  # i goes to perms[i]

    def qualifies(start):
        return all(np.allclose(start[p], start) or np.allclose(start[p], -start) for p in perms)

    def start(signs):
        out = m.copy()
        out[mag] *= signs
        return out

    alternate = start([1.0 if k % 2 == 0 else -1.0 for k in range(len(mag))])
    if qualifies(alternate):
        return [float(x) for x in alternate]
    others = [start([1.0, *rest]) for rest in itertools.product((1.0, -1.0), repeat=len(mag) - 1)]
    others = [s for s in others[1:] if qualifies(s)]  # others[0]: all parallel, ferromagnetic
    if not others:
        return None
    best = min(others, key=lambda s: abs(s.sum()))  # the first of equals
    return [float(x) for x in best]


def _local_moment(calc) -> float:
    """Largest |local magnetic moment| (μB) of a converged GPAW calculation (0 if spin-paired)."""
    try:
        return float(np.abs(calc.get_magnetic_moments()).max())
    except Exception:
        return 0.0


def magnetic_moments(atoms, spin: bool) -> tuple[float, float]:
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


def code_versions() -> dict:
    """Versions of the codes behind a record (GPAW, its PAW setups, ASE, NumPy, Python)."""
    import gpaw  # lazily: the package imports without GPAW (the dft extra)

    try:
        setups = version("gpaw-data")  # the PAW setups' package
    except PackageNotFoundError:
        setups = None
    return {"gpaw": gpaw.__version__, "gpaw_data": setups, "ase": ase.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}
