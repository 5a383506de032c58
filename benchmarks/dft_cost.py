"""Core-seconds per compound of the dataset generator, by prototype.

Reads the wall times recorded in data/embedded/records (each compound runs on one
core, so wall seconds = core-seconds; the batch shared the machine with other work,
so these are upper bounds for an idle core). Prints a table and the total.

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
    df["s_per_scf"] = df["wall_s"] / df["n_scf"]
    g = df.groupby("prototype").agg(
        compounds=("id", "size"), atoms=("natoms", "first"), spin_polarized=("spin_polarized", "mean"),
        median_core_s=("wall_s", "median"), max_core_s=("wall_s", "max"), median_scf=("n_scf", "median"),
        median_s_per_scf=("s_per_scf", "median"),
    ).sort_values("median_core_s")
    pd.set_option("display.width", 160)
    print(g.round(2).to_string())
    print(f"\n{len(df)} compounds, {df['wall_s'].sum() / 3600:.2f} core-hours in all, "
          f"median {df['wall_s'].median():.0f} core-s per compound, {df['n_scf'].sum()} SCF runs")


if __name__ == "__main__":
    main()
