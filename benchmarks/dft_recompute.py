"""Recompute stored compounds with the current protocol and compare with their records.

Every change to the generator's protocol (e.g. the spin-paired production when no
moment survives the coarse scan) is checked this way on compounds computed before
it: bulk modulus within 3 %, energy per atom and a0 printed. Writes the comparison
to ``benchmarks/output/dft_recompute-<id>-<protocol>.json`` (atomically).

    python benchmarks/dft_recompute.py NiPbTi-half-heusler [more ids]
"""

from __future__ import annotations

import sys
from pathlib import Path

from leanecd import dft
from leanecd.store import read_json, write_json

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("a0_A", "bulk_modulus_GPa", "energy_per_atom_eV", "spin_polarized", "magmom_total", "n_scf", "kpts",
        "eos_volumes_A3", "eos_energies_eV", "eos_used", "fit_rms_meV_per_atom")


def main(ids: list[str]) -> int:
    worst = 0.0
    for cid in ids:
        old = read_json(ROOT / "data" / "embedded" / "records" / f"{cid}.json")
        new, _ = dft.compute_compound(old["prototype"], old["species"])
        rel_b = new["bulk_modulus_GPa"] / old["bulk_modulus_GPa"] - 1
        worst = max(worst, abs(rel_b))
        out = {"id": cid, "stored": {k: old.get(k) for k in KEYS}, "recomputed": {k: new.get(k) for k in KEYS},
               "relative_B_difference": rel_b,
               "energy_difference_eV_per_atom": new["energy_per_atom_eV"] - old["energy_per_atom_eV"],
               "stored_wall_s": old["wall_s"], "stored_cpu_s": old.get("cpu_s"),
               "recomputed_cpu_s": new["cpu_s"], "recomputed_wall_s": new["wall_s"],
               "stored_protocol": dft.protocol_version(old), "recomputed_protocol": dft.protocol_version(new),
               "recomputed_code": new["code"]}
        # one file per compound and protocol, so each protocol change keeps its own check
        write_json(ROOT / "benchmarks" / "output" / f"dft_recompute-{cid}-{dft.protocol_version(new)}.json", out)
        print(f"{cid}: B {old['bulk_modulus_GPa']:.3f} -> {new['bulk_modulus_GPa']:.3f} GPa ({100 * rel_b:+.4f} %), "
              f"E/atom {old['energy_per_atom_eV']:.6f} -> {new['energy_per_atom_eV']:.6f} eV, "
              f"spin-polarised {old['spin_polarized']} -> {new['spin_polarized']}, "
              f"SCFs {old['n_scf']} -> {new['n_scf']}, stored {old.get('cpu_s') or old['wall_s']:.0f} "
              f"{'CPU' if old.get('cpu_s') else 'wall'}-s vs {new['cpu_s']:.0f} CPU-s now "
              f"(protocol {dft.protocol_version(old)} -> {dft.protocol_version(new)})")
    print(f"largest |ΔB/B| = {100 * worst:.4f} % (limit 3 %)")
    return 0 if worst < 0.03 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
