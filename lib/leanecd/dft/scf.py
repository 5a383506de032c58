"""One SCF: the GPAW plane-wave calculator, its k mesh, the total energy with its retries, and
the magnetic moments (μB) of a converged calculation."""

from __future__ import annotations

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
