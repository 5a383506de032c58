"""The stored labels against independent PBE references, compound by compound.

References (a0 in Å, B in GPa):

* the fcc elements: the all-electron WIEN2k PBE equations of state of the Δ-project
  (Lejaeghere et al., Science 351, aad3000 (2016)), V0 per atom converted to the cubic edge;
* LiF, NaF, MgO, SrF₂: the dense 7-point GPAW-PBE E(V) scans at 700–800 eV of the audit
  behind issue 20 (B only);
* every compound of the convergence study: its own reference run (900 eV and k density 5 Å
  for compounds with hard atoms, 650 eV and 10 Å for metals; ``data/convergence``).

Prints each compound's stored a0 and B, its protocol and reliability flag, the deviations and
whether it is within the targets (B 5 %, a0 0.5 %).

    python benchmarks/dft_validation.py        # also writes benchmarks/output/dft_validation.txt
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd

from leanecd import card, dft
from leanecd.store import read_json

ROOT = Path(__file__).resolve().parents[1]
#: Δ-project WIEN2k PBE: (V0 Å³/atom, B GPa) of the elements stored as fcc
DELTA_WIEN2K = {"Al": (16.48, 78.0), "Cu": (11.95, 141.3), "Ag": (17.85, 90.1), "Au": (17.97, 139.1),
                "Pd": (15.31, 168.6), "Pt": (15.64, 248.7), "Ni": (10.89, 200.4), "Ca": (42.20, 17.1),
                "Sr": (54.23, 11.3), "Pb": (32.00, 39.7), "Rh": (14.04, 257.5), "Ir": (14.50, 347.5)}
AUDIT_B = {"LiF-rocksalt": 69.5, "MgO-rocksalt": 150.7, "NaF-rocksalt": 45.8, "SrF2-fluorite": 63.6}
TARGET_B, TARGET_A = 0.05, 0.005


def references() -> pd.DataFrame:
    rows = [{"id": f"{el}-fcc", "source": "Δ-project WIEN2k", "ref_a0_A": (4 * v) ** (1 / 3), "ref_B_GPa": b}
            for el, (v, b) in DELTA_WIEN2K.items()]
    rows += [{"id": cid, "source": "audit GPAW 700-800 eV", "ref_a0_A": float("nan"), "ref_B_GPa": b}
             for cid, b in AUDIT_B.items()]
    conv = card.convergence_table(ROOT / "data" / "convergence")
    if len(conv):
        ref = conv[conv["reference"]]
        rows += [{"id": r.id, "source": f"study {r.ecut_eV:.0f} eV k {r.kpt_density:g}", "ref_a0_A": r.a0_A,
                  "ref_B_GPa": r.B_GPa} for r in ref.itertuples()]
    return pd.DataFrame(rows)


def main() -> None:
    root = ROOT / "data" / "embedded"
    refs = references()
    out = []
    for r in refs.itertuples():
        path = root / "records" / f"{r.id}.json"
        if not path.exists():
            continue
        rec = read_json(path)
        flag, why = dft.label_reliability(rec)
        db = rec["bulk_modulus_GPa"] / r.ref_B_GPa - 1
        da = rec["a0_A"] / r.ref_a0_A - 1
        out.append({"id": r.id, "reference": r.source, "protocol": dft.protocol_version(rec),
                    "a0_A": rec["a0_A"], "ref_a0_A": r.ref_a0_A, "da0_%": 100 * da,
                    "B_GPa": rec["bulk_modulus_GPa"], "ref_B_GPa": r.ref_B_GPa, "dB_%": 100 * db,
                    "within": abs(db) <= TARGET_B and not abs(da) > TARGET_A, "reliability": flag})
    df = pd.DataFrame(out)
    pd.set_option("display.width", 200)
    print(df.round(3).to_string(index=False))
    print(f"\n{int(df['within'].sum())} of {len(df)} comparisons within B {TARGET_B:.0%} and a0 {TARGET_A:.1%}; "
          f"outside: {', '.join(sorted(set(df.loc[~df['within'], 'id']))) or 'none'}")


if __name__ == "__main__":
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main()
    print(buf.getvalue(), end="")
    (Path(__file__).resolve().parent / "output" / "dft_validation.txt").write_text(buf.getvalue())
