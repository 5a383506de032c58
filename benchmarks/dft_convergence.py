"""Convergence study behind the dataset's DFT settings, and the validation compounds.

For Cu (metal), Si (covalent) and NaCl (ionic) it runs the dataset's full protocol
(`leanecd.dft.compute_compound`) at several plane-wave cutoffs and k-point
densities, and prints a0 (Å), B (GPa), B′ and the cost, next to reference PBE
values. Results go to data/convergence.json (one entry per run, appended).

    python benchmarks/dft_convergence.py            # cutoff and k scan for Cu, production for Si, NaCl
    python benchmarks/dft_convergence.py --quick    # production settings only

Runs already in the output file are skipped, so the study resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from leanecd.dft import DFTSettings, compute_compound  # noqa: E402

REFERENCE_PBE = {  # a0 (Å), B (GPa): typical converged PBE values from the literature
    "Cu": ("fcc", ("Cu",), 3.63, 140.0),
    "Si": ("diamond", ("Si", "Si"), 5.47, 88.5),
    "NaCl": ("rocksalt", ("Na", "Cl"), 5.70, 23.5),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "convergence.json"))
    args = ap.parse_args()
    base = DFTSettings()
    grid = [(base.ecut_eV, base.kpt_density)]
    if not args.quick:
        grid += [(350.0, base.kpt_density), (550.0, base.kpt_density), (base.ecut_eV, 3.0), (base.ecut_eV, 5.5)]
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    print(f"{'compound':8s} {'ecut':>5s} {'kdens':>5s} {'a0 Å':>7s} {'B GPa':>7s} {'B′':>5s} "
          f"{'E/atom eV':>10s} {'s':>5s}  ref a0, B")
    for name, (proto, species, a_ref, b_ref) in REFERENCE_PBE.items():
        for ecut, kd in (grid if name == "Cu" else grid[:1]):  # the metal is the hard case
            if any(r["compound"] == name and r["ecut_eV"] == ecut and r["kpt_density"] == kd for r in rows):
                continue
            s = replace(base, ecut_eV=ecut, kpt_density=kd)
            t = time.time()
            rec, _ = compute_compound(proto, species, s)
            row = {"compound": name, "ecut_eV": ecut, "kpt_density": kd, "a0_A": rec["a0_A"],
                   "bulk_modulus_GPa": rec["bulk_modulus_GPa"], "bulk_modulus_prime": rec["bulk_modulus_prime"],
                   "energy_per_atom_eV": rec["energy_per_atom_eV"], "kpts": rec["kpts"], "wall_s": time.time() - t,
                   "reference_a0_A": a_ref, "reference_B_GPa": b_ref, "production": (ecut, kd) == grid[0]}
            rows.append(row)
            print(f"{name:8s} {ecut:5.0f} {kd:5.1f} {row['a0_A']:7.4f} {row['bulk_modulus_GPa']:7.1f} "
                  f"{row['bulk_modulus_prime']:5.2f} {row['energy_per_atom_eV']:10.4f} {row['wall_s']:5.0f}  "
                  f"{a_ref}, {b_ref}", flush=True)
            out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
