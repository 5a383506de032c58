"""How the bulk modulus depends on where the 5-point E(V) scan sits around V0.

For one stored compound, computes E(V) at the production settings and the stored k
mesh on a dense grid of volumes around the stored V0 (0.86 ... 1.14 V0 in steps of
0.02), then fits Birch–Murnaghan to 5-point windows of the protocol's shape
(±10 %, 5 % apart) centred at V0 × (1 + shift) for several shifts. Prints B per shift
and writes ``benchmarks/output/dft_eos_window-<id>.json``.

    python benchmarks/dft_eos_window.py KTaO3-perovskite
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from leanecd import dft  # noqa: E402
from leanecd.dft.scf import scf_energy  # noqa: E402
from leanecd.store import read_json, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def bm_fit(v, e):
    from ase.eos import EquationOfState
    from ase.units import GPa

    v0, e0, B = EquationOfState(v, e, eos="birchmurnaghan").fit()
    return float(v0), float(B / GPa)


def main(cid: str) -> int:
    rec = read_json(ROOT / "data" / "embedded" / "records" / f"{cid}.json")
    settings = dft.DFTSettings()
    mult = 4 if rec["cell"] == "primitive" else 1
    build = lambda a: dft.build_atoms(rec["prototype"], tuple(rec["species"]), a)  # noqa: E731
    v0_conv = rec["a0_A"] ** 3
    factors = np.round(np.arange(0.86, 1.1401, 0.02), 4)
    vols, ens, prev = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        for f in factors:
            a = (v0_conv * f) ** (1 / 3)
            e, at = scf_energy(build, a, settings, rec["kpts"], str(Path(tmp) / "gpaw.txt"),
                                spin=rec["spin_polarized"], previous=prev)
            prev = at.calc
            vols.append(at.get_volume())
            ens.append(e)
            print(f"V/V0 = {f:.2f}  E = {e:.6f} eV", flush=True)
    vols, ens = np.array(vols), np.array(ens)
    out = {"id": cid, "stored_B_GPa": rec["bulk_modulus_GPa"], "kpts": rec["kpts"], "factors": factors.tolist(),
           "energies_eV": ens.tolist(), "windows": []}
    _, b_all = bm_fit(vols, ens)
    print(f"{cid}: stored B = {rec['bulk_modulus_GPa']:.2f} GPa; all {len(vols)} points: B = {b_all:.2f} GPa")
    for shift in (-0.04, -0.02, 0.0, 0.02, 0.04):
        want = (1 + shift) * np.array([0.90, 0.95, 1.0, 1.05, 1.10])
        idx = [int(np.argmin(abs(factors - w))) for w in want]
        v0, b = bm_fit(vols[idx], ens[idx])
        out["windows"].append({"shift": shift, "factors": factors[idx].tolist(), "B_GPa": b,
                               "V0_over_stored": v0 * mult / v0_conv})
        print(f"  window centred at {1 + shift:.2f} V0 ({factors[idx][0]:.2f}-{factors[idx][-1]:.2f}): B = {b:.2f} GPa")
    out["B_all_points_GPa"] = b_all
    write_json(ROOT / "benchmarks" / "output" / f"dft_eos_window-{cid}.json", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
