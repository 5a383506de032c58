"""Core-seconds per compound of the dataset generator, by prototype.

Reads the times recorded in data/embedded/records. Each compound runs in one
single-threaded process: its CPU seconds (``cpu_s``, in the records written since the growth past 69 compounds) are
its core-seconds; older records have only wall seconds, an upper bound when the
machine was shared. Prints a table by prototype, one for spin-polarised vs
spin-paired compounds, the figure for non-magnetic binaries (target: median ≤ 2
core-minutes) and the total.

    python benchmarks/dft_cost.py [data/embedded]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from leanecd.store import read_json


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "data" / "embedded"
    recs = [read_json(p) for p in sorted((root / "records").glob("*.json"))]
    if not recs:
        raise SystemExit(f"{root}: no records")
    df = pd.DataFrame(recs)
    if "cpu_s" not in df:
        df["cpu_s"] = float("nan")
    df["core_s"] = df["cpu_s"].fillna(df["wall_s"])  # CPU time where recorded, else wall time
    df["measured"] = df["cpu_s"].notna().map({True: "cpu", False: "wall"})
    df["s_per_scf"] = df["core_s"] / df["n_scf"]
    pd.set_option("display.width", 160)
    g = df.groupby("prototype").agg(
        compounds=("id", "size"), atoms=("natoms", "first"), spin_polarized=("spin_polarized", "mean"),
        median_core_s=("core_s", "median"), max_core_s=("core_s", "max"), median_scf=("n_scf", "median"),
        median_s_per_scf=("s_per_scf", "median"), cpu_timed=("cpu_s", "count"),
    ).sort_values("median_core_s")
    print(g.round(2).to_string())
    print("\nspin-polarised vs spin-paired:")
    s = df.groupby(["n_elements", "spin_polarized"]).agg(compounds=("id", "size"),
                                                          median_core_s=("core_s", "median"))
    print(s.round(1).to_string())
    nm2 = df[(df["n_elements"] == 2) & ~df["spin_polarized"].astype(bool)]
    cpu = nm2["cpu_s"].dropna()
    print(f"\nnon-magnetic binaries: {len(nm2)} compounds, median {nm2['core_s'].median():.0f} core-s "
          f"({nm2['core_s'].median() / 60:.2f} core-min; target ≤ 2)"
          + (f"; CPU-timed only: {len(cpu)} compounds, median {cpu.median():.0f} s" if len(cpu) else ""))
    df["reuse"] = df["settings"].map(lambda st: bool(st.get("reuse_wavefunctions")))
    if df["reuse"].any():
        timed = df[df["cpu_s"].notna() & ~df["spin_polarized"].astype(bool)]
        r = timed.pivot_table(index="prototype", columns="reuse", values="cpu_s", aggfunc=["median", "count"])
        print("\nspin-paired, CPU-timed: median CPU-s by protocol (reuse_wavefunctions False = 0.1.0, True = 0.2.0;"
              " different compounds, so a rough comparison; benchmarks/dft_reuse.py measures the same SCFs both ways):")
        print(r.round(0).to_string())
    print(f"\n{len(df)} compounds, {df['core_s'].sum() / 3600:.2f} core-hours in all, "
          f"median {df['core_s'].median():.0f} core-s per compound, {df['n_scf'].sum()} SCF runs")


if __name__ == "__main__":
    main()
