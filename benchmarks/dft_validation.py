"""The stored labels against independent PBE references, compound by compound.

The references are :func:`leanecd.card.validation_table`'s: the fcc elements of the
Δ-project (all-electron WIEN2k PBE), the dense GPAW-PBE scans of the audit behind
protocol 0.7.0 (B only), and the reference runs of the convergence study
(``data/convergence``). Prints each compound's stored a0 and B, its protocol and
reliability flag, the deviations and whether it meets the targets (B 5 %, a0 0.5 %).

    python benchmarks/dft_validation.py        # also writes benchmarks/output/dft_validation.txt
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd

from leanecd.card import validation_table
from leanecd.dft.references import VALIDATION_TARGETS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    df = validation_table(ROOT / "data" / "embedded")
    pd.set_option("display.width", 200)
    print(df.round(3).to_string(index=False))
    print(f"\n{int(df['within'].sum())} of {len(df)} comparisons within B {VALIDATION_TARGETS['B']:.0%} and a0 "
          f"{VALIDATION_TARGETS['a0']:.1%}; outside: {', '.join(sorted(set(df.loc[~df['within'], 'id']))) or 'none'}")


if __name__ == "__main__":
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main()
    print(buf.getvalue(), end="")
    (Path(__file__).resolve().parent / "output" / "dft_validation.txt").write_text(buf.getvalue())
