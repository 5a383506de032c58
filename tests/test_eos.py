"""Birch–Murnaghan fits and label reliability (leanecd.eos) against ASE and synthetic curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.eos import EquationOfState, birchmurnaghan
from ase.units import GPa

from leanecd import eos

ROOT = Path(__file__).resolve().parents[1] / "data" / "embedded"


def _curve(v0=20.0, b=100.0, bp=4.5, n=7, span=0.09, noise=0.0, seed=0):
    v = v0 * np.linspace(1 - span, 1 + span, n)
    e = birchmurnaghan(v, -7.0, b * GPa, bp, v0)
    return v, e + np.random.default_rng(seed).normal(0, noise, n)


def test_fit_recovers_the_parameters_of_an_exact_curve():
    v, e = _curve()
    f = eos.fit(v, e)
    assert f.v0 == pytest.approx(20.0, rel=1e-9) and f.b == pytest.approx(100.0, rel=1e-7)
    assert f.bprime == pytest.approx(4.5, rel=1e-6) and f.e0 == pytest.approx(-7.0, abs=1e-10) and f.rms < 1e-10


def test_fixed_bprime_fit_is_exact_for_bprime_4():
    v, e = _curve(bp=4.0)
    f = eos.fit(v, e, bprime_fixed=True)
    assert f.b == pytest.approx(100.0, rel=1e-7) and f.bprime == 4.0


@pytest.mark.parametrize("cid", ["NaCl-rocksalt", "LiF-rocksalt", "Cu-fcc", "SrTiO3-perovskite"])
def test_fit_equals_ases_birch_murnaghan_on_stored_scans(cid):
    path = ROOT / "history" / f"{cid}@0.6.2.json"
    rec = json.loads((path if path.exists() else ROOT / "records" / f"{cid}.json").read_text())
    used = np.asarray(rec.get("eos_used", [True] * len(rec["eos_volumes_A3"])), bool)
    v, e = np.asarray(rec["eos_volumes_A3"])[used], np.asarray(rec["eos_energies_eV"])[used]
    ase_eos = EquationOfState(v, e, eos="birchmurnaghan")
    v0, e0, b = ase_eos.fit()
    f = eos.fit(v, e)
    assert f.v0 == pytest.approx(v0, rel=1e-6) and f.b == pytest.approx(b / GPa, rel=1e-4)
    assert f.bprime == pytest.approx(ase_eos.eos_parameters[2], rel=1e-3)


def test_uncertainty_grows_with_noise_and_flags_it():
    assert eos.uncertainty(*_curve(bp=4.0)).b_spread_GPa < 1e-6  # exact, and B′ = 4 holds
    clean = eos.uncertainty(*_curve())  # exact; only the B′ = 4 refit differs, by 0.2 %
    assert clean.b_spread_GPa < 0.5 and not clean.undetermined
    noisy_v, noisy_e = _curve(noise=5e-3)  # 5 meV per cell on a 100 GPa, 20 Å³ cell
    noisy = eos.uncertainty(noisy_v, noisy_e)
    assert noisy.b_spread_GPa > 3.0
    f = eos.fit(noisy_v, noisy_e)
    flag, why = eos.reliability(f.bprime, f.rms * 1e3, noisy, f.b)
    assert flag == "uncertain" and ("refits move B" in why or "B′" in why)
    assert eos.reliability(4.5, 0.01, clean, 100.0) == ("ok", "")
    assert eos.reliability(4.5, 0.01, clean, 100.0, "O at 450 eV")[0] == "uncertain"


def test_no_minimum_inside_the_scan_gives_none():
    v, e = _curve()
    # 3 points: B′ = 4 only
    assert eos.fit(v[2:5], e[2:5]) is None and eos.fit(v[2:5], e[2:5], bprime_fixed=True) is not None
    assert eos.fit(v[:3], e[:3], bprime_fixed=True) is None  # all below V0: no minimum inside
    assert eos.fit(v, -e) is None  # a maximum, not a minimum
