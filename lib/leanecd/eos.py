"""Birch–Murnaghan fits of E(V) scans, and how far a fit can be trusted.

The third-order Birch–Murnaghan energy is a cubic polynomial in x = V^(-2/3), so a
least-squares fit of it is a linear problem (:func:`fit`): the same curve ASE's
``EquationOfState(eos="birchmurnaghan")`` finds, without its non-linear solver.
With B′ fixed at 4 the form is quadratic in x (:func:`fit` with ``bprime_fixed=True``).

:func:`uncertainty` refits a scan without each of its points in turn and with B′ fixed
at 4; the largest change of B and a0 is the scan's own uncertainty. The reliability
rule (:func:`reliability`) turns it, B′ and the fit residual into a flag for
``labels.csv``.

Units: volumes Å³ per cell, energies eV per cell, B in GPa, a0 in Å.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: 1 eV/Å³ in GPa
EV_PER_A3_IN_GPA = 160.21766208

#: B′ outside this range is unphysical for a stable cubic solid at zero pressure (issue 20)
BPRIME_RANGE = (2.5, 7.0)
#: flag a label whose leave-one-out or B′ = 4 refit moves B by more than this fraction
MAX_B_SPREAD = 0.05
#: flag a label whose leave-one-out or B′ = 4 refit moves a0 by more than this fraction
MAX_A_SPREAD = 0.005
#: flag a fit whose residual exceeds this (meV/atom): 10× the median of the 435 scans without
#: O, N, F, C or B at 450 eV (0.023 meV/atom), well below the jitter of the hard-atom scans (0.40)
MAX_RESIDUAL_MEV = 0.25
#: E(V) points of a scan at protocol 0.7.0 (5 points and 4 parameters left one degree of freedom)
MIN_POINTS = 7


@dataclass(frozen=True)
class Fit:
    """One Birch–Murnaghan fit: ``v0`` (Å³/cell), ``e0`` (eV/cell), ``b`` (GPa), ``bprime``,
    ``rms`` (eV/cell) of the residual."""

    v0: float
    e0: float
    b: float
    bprime: float
    rms: float


def _derivatives(c: np.ndarray, v: float) -> tuple[float, float, float]:
    """dE/dV, d²E/dV², d³E/dV³ of E = poly(c)(x), x = V^(-2/3), at volume ``v``."""
    x = v ** (-2 / 3)
    e1, e2, e3 = (np.polyval(np.polyder(c, k), x) if len(c) > k else 0.0 for k in (1, 2, 3))
    x1, x2, x3 = -2 / 3 * v ** (-5 / 3), 10 / 9 * v ** (-8 / 3), -80 / 27 * v ** (-11 / 3)
    return e1 * x1, e2 * x1**2 + e1 * x2, e3 * x1**3 + 3 * e2 * x1 * x2 + e1 * x3


def fit(volumes, energies, bprime_fixed: bool = False) -> Fit | None:
    """Least-squares Birch–Murnaghan fit; None if the curve has no minimum inside the scan.

    ``bprime_fixed``: B′ = 4 (a quadratic in x; needs 3 points), else B′ free (cubic; 4 points).
    """
    v = np.asarray(volumes, float)
    e = np.asarray(energies, float)
    deg = 2 if bprime_fixed else 3
    if len(v) < deg + 1:
        return None
    x = v ** (-2 / 3)
    c = np.polyfit(x, e, deg)
    roots = np.roots(np.polyder(c))
    best = None
    for r in roots:
        if abs(r.imag) > 1e-12 or not (x.min() < r.real < x.max()) or np.polyval(np.polyder(c, 2), r.real) <= 0:
            continue
        if best is None or np.polyval(c, r.real) < np.polyval(c, best):
            best = r.real
    if best is None:
        return None
    v0 = float(best ** (-3 / 2))
    _, d2, d3 = _derivatives(c, v0)
    b = v0 * d2
    bprime = 4.0 if bprime_fixed else float(-1 - v0 * d3 / d2)
    rms = float(np.sqrt(np.mean((np.polyval(c, x) - e) ** 2)))
    return Fit(v0=v0, e0=float(np.polyval(c, best)), b=float(b * EV_PER_A3_IN_GPA), bprime=bprime, rms=rms)


@dataclass(frozen=True)
class Uncertainty:
    """How much a scan's B (GPa) and a0 (fraction) move when it is refitted without one point
    or with B′ = 4; ``undetermined``: some refit had no minimum (too few points)."""

    b_spread_GPa: float
    a0_spread: float
    b_fixed_bprime_GPa: float
    undetermined: bool


def uncertainty(volumes, energies, mult: int = 1) -> Uncertainty:
    """Leave-one-out and B′ = 4 refits of a scan (``mult`` cells per conventional cube)."""
    v = np.asarray(volumes, float)
    e = np.asarray(energies, float)
    full = fit(v, e)
    if full is None:
        return Uncertainty(float("nan"), float("nan"), float("nan"), True)
    refits = [fit(np.delete(v, i), np.delete(e, i)) for i in range(len(v))]
    fixed = fit(v, e, bprime_fixed=True)
    refits.append(fixed)
    ok = [f for f in refits if f is not None]
    b_spread = max(abs(f.b - full.b) for f in ok)
    a_spread = max(abs((f.v0 / full.v0) ** (1 / 3) - 1) for f in ok)
    return Uncertainty(float(b_spread), float(a_spread), float(fixed.b) if fixed else float("nan"),
                       len(ok) < len(refits))


def reliability(bprime: float, rms_meV_per_atom: float, unc: Uncertainty, b: float,
                unconverged: str = "") -> tuple[str, str]:
    """``("ok", "")`` or ``("uncertain", reasons)`` for one label.

    ``unconverged``: a reason the settings themselves are not converged for this compound
    (e.g. hard atoms at a cut-off the convergence study rejects), or "".
    """
    why = [unconverged] if unconverged else []
    if not BPRIME_RANGE[0] <= bprime <= BPRIME_RANGE[1]:
        why.append(f"B′ = {bprime:.2f} outside [{BPRIME_RANGE[0]}, {BPRIME_RANGE[1]}]")
    if rms_meV_per_atom > MAX_RESIDUAL_MEV:
        why.append(f"fit residual {rms_meV_per_atom:.2f} meV/atom > {MAX_RESIDUAL_MEV}")
    if unc.undetermined:
        why.append("a refit without one point has no minimum")
    elif unc.b_spread_GPa > MAX_B_SPREAD * b:
        why.append(f"refits move B by {unc.b_spread_GPa:.1f} GPa (> {MAX_B_SPREAD:.0%})")
    elif unc.a0_spread > MAX_A_SPREAD:
        why.append(f"refits move a0 by {unc.a0_spread:.2%} (> {MAX_A_SPREAD:.1%})")
    return ("uncertain", "; ".join(why)) if why else ("ok", "")
