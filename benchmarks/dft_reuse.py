"""Cost and result of starting each SCF of an E(V) scan from the previous volume's
wave functions (GPAW's plane-wave morph, ``DFTSettings.reuse_wavefunctions``).

For one compound at the production settings, computes the 5 scan volumes plus one
near the minimum twice, once from scratch and once reusing the previous SCF, and
prints the energy difference and the CPU seconds of each SCF. The energies must
agree to SCF precision (the physics is unchanged: same cutoff, same k mesh); the
time is what the change buys. Writes ``benchmarks/output/dft_reuse-<id>.json``.

    python benchmarks/dft_reuse.py rocksalt Na,Cl 5.695
    python benchmarks/dft_reuse.py half-heusler Pb,Ti,Ni 5.93
    python benchmarks/dft_reuse.py heusler Zr,In,Co,Co 6.275 --spin   # spin-polarised (reuse_magnetic)

With ``--spin`` both runs are spin-polarised from the ferromagnetic start and the reuse
run starts each SCF from the previous volume's magnetised density and wave functions
(``DFTSettings.reuse_magnetic``); the largest local moment of each SCF is printed too.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, as in the batch
    os.environ[_v] = "1"

import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

from leanecd import dft  # noqa: E402
from leanecd.dft.scf import kmesh, magnetic_moments, scf_energy  # noqa: E402
from leanecd.store import write_json  # noqa: E402


def main(prototype: str, species: str, a_guess: str, *flags: str) -> int:
    sp, a_guess = tuple(species.split(",")), float(a_guess)
    spin = "--spin" in flags
    settings = replace(dft.DFTSettings(), reuse_magnetic=True)
    build = lambda a: dft.build_atoms(prototype, sp, a)  # noqa: E731
    kpts = kmesh(build(a_guess), settings.kpt_density)
    steps = list(settings.volume_steps) + [1.01]
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("scratch", "reuse"):
            prev, rows = None, []
            for s in steps:
                a = a_guess * s ** (1 / 3)
                c0 = time.process_time()
                e, at = scf_energy(build, a, settings, kpts, str(Path(tmp) / f"{mode}.txt"), spin=spin,
                                    previous=prev if mode == "reuse" else None)
                local = magnetic_moments(at, spin)[1]
                rows.append({"V_over_Vguess": s, "a_A": a, "energy_eV": e, "cpu_s": time.process_time() - c0,
                             "max_local_moment_muB": local, "reused": at.calc is prev})
                prev = at.calc
                print(f"{mode:8s} V/V0 = {s:.2f}  E = {e:.6f} eV  {rows[-1]['cpu_s']:.1f} CPU-s"
                      + (f"  |m|max = {local:.3f} μB" if spin else ""), flush=True)
            runs[mode] = rows
    worst = max(abs(r["energy_eV"] - q["energy_eV"]) for r, q in zip(runs["scratch"], runs["reuse"]))
    t0, t1 = (sum(r["cpu_s"] for r in runs[m]) for m in ("scratch", "reuse"))
    cid = dft.compound_id(prototype, sp) + ("-spin" if spin else "")
    print(f"{cid}: largest |ΔE| = {1000 * worst:.4f} meV per cell; "
          f"{t0:.1f} → {t1:.1f} CPU-s for {len(steps)} SCFs ({100 * (t1 / t0 - 1):+.1f} %)")
    write_json(Path(__file__).resolve().parent / "output" / f"dft_reuse-{cid}.json",
               {"id": cid, "spin_polarized": spin, "kpts": kpts, "runs": runs, "max_abs_dE_eV": worst,
                "cpu_s_scratch": t0, "cpu_s_reuse": t1})
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
