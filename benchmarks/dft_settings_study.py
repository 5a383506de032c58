"""Convergence of B, a0 and E with the cut-off and the k-point density, per chemistry.

For oxides, nitrides and fluorides (LiF, NaF, MgO, SrF₂, BN, Li₂O; TiC and BP for C and B) it scans the cut-off
(450 → 900 eV) and for metals (Ca, Sr, Al, Cu; the magnetic FeSc, CoTi, Co₂MnSb) the k-point density, each against a
dense reference (insulators 900 eV and k-point density 5 Å; metals 650 eV and 10 Å).
For the alkaline-earth metals it also narrows the Fermi–Dirac width from the protocol's 0.1 eV to the
Δ-project GPAW runs' 0.01 eV, at their k-point density of 16 Å (the cut-off stays at 450 eV, which the
k scan shows converged): the width is the one setting the reference runs share with production.
Every run is the same 7-point E(V) scan, V/V_stored = 0.91 … 1.09, around the stored a0,
fitted by :func:`leanecd.eos.fit`, so two runs differ only by their settings.

One JSON file per (compound, cut-off, k density) in ``data/convergence/``, written
atomically; finished runs are skipped, so the study resumes. Two processes can share it:

    python benchmarks/dft_settings_study.py --worker 0/2 & python benchmarks/dft_settings_study.py --worker 1/2
    python benchmarks/dft_settings_study.py --report      # the table, from the files

The protocol of version 0.7.0 (:class:`leanecd.dft.DFTSettings` defaults) is chosen from this table.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from leanecd.dft import MAGNETIC, DFTSettings, scan_energies  # noqa: E402
from leanecd.store import read_json, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "convergence"
STEPS = (0.91, 0.94, 0.97, 1.00, 1.03, 1.06, 1.09)
#: C and B: do carbides and borides (without O, N, F) need the higher cut-off too?
HARD = ["LiF-rocksalt", "NaF-rocksalt", "MgO-rocksalt", "SrF2-fluorite", "BN-zincblende", "Li2O-fluorite",
        "TiC-rocksalt", "BP-zincblende"]
#: FeSc, CoTi and Co2MnSb: magnetic metals (an itinerant moment that grows with volume; a weak one; a
#: half-metallic Heusler with a saturated moment), since FeSc at k density 4 Å is 14 % off its reference
METALS = ["Ca-fcc", "Al-fcc", "Cu-fcc", "FeSc-cscl", "Sr-fcc", "CoTi-cscl", "Co2MnSb-heusler"]
#: (cut-off eV, k-point density Å); the first of each list is the reference. LiF and NaF also ran at
#: 550 eV and at 900 eV with the production k density (k density 4 → 5: B within 0.2 %, E within 0.03 meV/atom)
GRID = {"hard": [(900.0, 5.0), (450.0, 4.0), (650.0, 4.0), (750.0, 4.0)],
        "metal": [(650.0, 10.0), (450.0, 4.0), (450.0, 8.0)]}
#: the protocol's Fermi–Dirac width (eV), and the narrower width tried on the alkaline-earth metals
WIDTH = DFTSettings().smearing_eV
NARROW = {"Sr-fcc": [(450.0, 16.0, 0.01)], "Ca-fcc": [(450.0, 16.0, 0.01)]}


def tasks() -> list[tuple[str, str, float, float, float]]:
    out = []
    for kind, ids in (("hard", HARD), ("metal", METALS)):
        for cid in ids:
            out += [(kind, cid, ecut, kd, WIDTH) for ecut, kd in GRID[kind]]
            out += [(kind, cid, ecut, kd, w) for ecut, kd, w in NARROW.get(cid, [])]
    return out


def name(cid: str, ecut: float, kd: float, width: float) -> str:
    """``<id>@<ecut>eV-k<kd>``, with ``-w<width>`` where the width is not the protocol's."""
    return f"{cid}@{ecut:.0f}eV-k{kd:g}" + ("" if width == WIDTH else f"-w{width:g}")


def path(cid: str, ecut: float, kd: float, width: float = WIDTH) -> Path:
    return OUT / cid / (name(cid, ecut, kd, width).split("@", 1)[1] + ".json")


def run(task) -> None:
    kind, cid, ecut, kd, width = task
    p = path(cid, ecut, kd, width)
    if p.exists():
        return
    rec = read_json(ROOT / "data" / "embedded" / "records" / f"{cid}.json")
    settings = replace(DFTSettings(), ecut_eV=ecut, kpt_density=kd, smearing_eV=width)
    spin = bool(rec["spin_polarized"]) and any(s in MAGNETIC for s in rec["species"])
    res = scan_energies(rec["prototype"], rec["species"], rec["a0_A"], STEPS, settings, spin=spin)
    write_json(p, {"id": cid, "kind": kind, "ecut_eV": ecut, "kpt_density": kd, "smearing_eV": width,
                   "a_centre_A": rec["a0_A"], "volume_steps": list(STEPS), "spin_polarized": spin,
                   "reference": (ecut, kd) == GRID[kind][0] and width == WIDTH, **res})
    print(f"{name(cid, ecut, kd, width)}: {res['cpu_s']:.0f} CPU-s", flush=True)


def report() -> None:
    import pandas as pd

    from leanecd.card import convergence_table

    pd.set_option("display.width", 200)
    print(convergence_table(OUT).round(3).to_string(index=False))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", default="0/1", help="i/n: run every n-th task starting at i")
    ap.add_argument("--only", nargs="*", help="run only these, e.g. Cu-fcc@650eV-k10, Sr-fcc@450eV-k16-w0.01")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        return report()
    i, n = (int(x) for x in args.worker.split("/"))
    todo = tasks()[i::n]
    if args.only:
        todo = [t for t in tasks() if name(*t[1:]) in args.only]
    for t in todo:
        run(t)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
