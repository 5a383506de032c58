"""Core-seconds per compound of the dataset generator, by prototype.

Reads the times recorded in data/embedded/records. Each compound runs in one
single-threaded process: its CPU seconds (``cpu_s``, in the records written since the growth past 69 compounds) are
its core-seconds; older records have only wall seconds, an upper bound when the
machine was shared. Prints a table by prototype, one for spin-polarised vs
spin-paired compounds, the figure for non-magnetic binaries (target: median ≤ 2
core-minutes), the total, and a projection of what is left to reach ``--target``
gated compounds in the computing order, with the batch's ``--limit`` that gets there
if nothing more fails (each prototype's median core-s, with and without a magnetic
element apart, under the current protocol where it has computed at least 5 of the
kind, else under any; a recorded failure is done but not counted).

    python benchmarks/dft_cost.py [data/embedded] [--target 600]   # also writes benchmarks/output/dft_cost.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from leanecd import card, dft
from leanecd.dft.layout import is_done
from leanecd.store import read_json


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1] / "data" / "embedded"))
    ap.add_argument("--target", type=int, default=600, help="gated compounds to reach, in the computing order")
    args = ap.parse_args(argv)
    root = Path(args.root)
    recs = [read_json(p) for p in sorted((root / "records").glob("*.json"))]
    if not recs:
        raise SystemExit(f"{root}: no records")
    df = pd.DataFrame(recs)
    if "cpu_s" not in df:
        df["cpu_s"] = float("nan")
    df["core_s"] = card.core_seconds(df)  # CPU time where recorded, else wall time
    df["s_per_scf"] = df["core_s"] / df["n_scf"]
    df["coarse_scf"] = df["n_scf"] - df["eos_volumes_A3"].map(len) - 1
    df["protocol"] = [dft.protocol_version(r) for r in recs]
    pd.set_option("display.width", 160)
    g = card.cost_table(df)
    extra = df.groupby("prototype").agg(median_s_per_scf=("s_per_scf", "median"),
                                        median_coarse_scf=("coarse_scf", "median"))
    print(g.join(extra).round(2).to_string())
    print("\nby protocol version (different compounds: a rough comparison):")
    print(df.groupby(["protocol", "n_elements"]).agg(compounds=("id", "size"), median_core_s=("core_s", "median"),
                                                     median_coarse_scf=("coarse_scf", "median"),
                                                     median_scf=("n_scf", "median")).round(1).to_string())
    print("\nspin-polarised vs spin-paired:")
    s = df.groupby(["n_elements", "spin_polarized"]).agg(compounds=("id", "size"),
                                                          median_core_s=("core_s", "median"))
    print(s.round(1).to_string())
    nm2 = df[(df["n_elements"] == 2) & ~df["spin_polarized"].astype(bool)]
    cpu = nm2["cpu_s"].dropna()
    print(f"\nnon-magnetic binaries: {len(nm2)} compounds, median {nm2['core_s'].median():.0f} core-s "
          f"({nm2['core_s'].median() / 60:.2f} core-min; target ≤ 2)"
          + (f"; CPU-timed only: {len(cpu)} compounds, median {cpu.median():.0f} s" if len(cpu) else ""))
    print(f"\n{len(df)} compounds, {df['core_s'].sum() / 3600:.2f} core-hours in all, "
          f"median {df['core_s'].median():.0f} core-s per compound, {df['n_scf'].sum()} SCF runs")
    recomputation_cost(root, df)
    # what is left to reach the target number of gated compounds in the computing order (failures
    # so far do not count, so the batch must go past position `target` of the order)
    done = {p.stem for d in ("records", "failures") for p in (root / d).glob("*.json")}
    n_good = len(list((root / "records").glob("*.json")))
    order = dft.plan()
    left = [e for e in order if e["id"] not in done][: max(args.target - n_good, 0)]
    # `run --limit N` computes the first N - (done compounds of the order) not yet done
    limit = len(done & {e["id"] for e in order}) + len(left)
    # keyed by prototype and whether a magnetic element is present (those start spin-polarised)
    magnetic = lambda species: any(x in dft.MAGNETIC for x in species)  # noqa: E731
    df["magnetic"] = df["species"].map(magnetic)
    key = ["prototype", "magnetic"]
    now = df[df["protocol"] == dft.DATASET_VERSION].groupby(key)["core_s"]
    current = now.median()[now.size() >= 5]  # a median of at least 5 compounds
    any_protocol, by_prototype = df.groupby(key)["core_s"].median(), df.groupby("prototype")["core_s"].median()
    rest = pd.DataFrame({"prototype": [e["prototype"] for e in left],
                         "magnetic": [magnetic(e["species"]) for e in left],
                         "n_elements": [len(set(e["species"])) for e in left]})
    if rest.empty:
        print(f"\n{n_good} gated compounds: the target of {args.target} is reached")
        return
    rest["core_s"] = [current.get(k, any_protocol.get(k, by_prototype.get(k[0], float("nan"))))
                      for k in zip(rest["prototype"], rest["magnetic"])]
    by = rest.groupby(key).agg(compounds=("core_s", "size"), projected_core_h=("core_s", "sum"))
    by["projected_core_h"] /= 3600
    sizes = ", ".join(f"{n} with {k} elements" for k, n in rest["n_elements"].value_counts().sort_index().items())
    print(f"\nleft to reach {args.target} gated compounds ({n_good} now), with no further failure: the next "
          f"{len(rest)} of the computing order (`leanecd-dft run --limit {limit}`) "
          f"({sizes}), "
          f"about {rest['core_s'].sum() / 3600:.1f} core-hours at the median core-s of each prototype "
          f"(with and without a magnetic element apart; protocol {dft.DATASET_VERSION} where it has computed ≥ 5 "
          f"of the kind, else all):")
    print(by.sort_values("projected_core_h", ascending=False).round(1).to_string())


def recomputation_cost(root: Path, df: pd.DataFrame) -> None:
    """Core-seconds of the compounds recomputed under the current protocol (no coarse scan: a new
    compound adds its coarse scan at 250 eV), and a projection for the rest of the recompute plan."""
    re = df[df.get("supersedes", pd.Series(index=df.index, dtype=object)).notna()
            & (df["protocol"] == dft.DATASET_VERSION)]
    todo = [e for e in dft.recompute_plan(root) if not is_done(root, e)]
    print(f"\nrecomputed under protocol {dft.DATASET_VERSION}: {len(re)} compounds "
          f"({len(todo)} left in `leanecd-dft recompute`'s plan)")
    if re.empty:
        return
    re = re.assign(ecut=[r["ecut_eV"] for r in re["settings"]])
    by = re.groupby(["prototype", "ecut"]).agg(compounds=("id", "size"), median_core_s=("core_s", "median"),
                                               max_core_s=("core_s", "max"), median_scf=("n_scf", "median"))
    print(by.round(1).to_string())
    nm2 = re[(re["n_elements"] == 2) & ~re["spin_polarized"].astype(bool)]
    if len(nm2):
        print(f"non-magnetic binaries recomputed: {len(nm2)}, median {nm2['core_s'].median() / 60:.2f} core-min "
              f"(max {nm2['core_s'].max() / 60:.2f}; target ≤ 2)")
    med = re.groupby("prototype")["core_s"].median()
    old = df.groupby("prototype")["core_s"].median()
    hist = {p.name.split("@")[0]: read_json(p) for p in (root / dft.HISTORY).glob("*@*.json") if "failed" not in p.name}
    ratio = float(pd.Series([df.set_index("id").at[i, "core_s"] / card._core_s(h) for i, h in hist.items()
                             if i in set(re["id"])]).median()) if hist else float("nan")
    left = pd.Series([med.get(e["prototype"], old.get(e["prototype"], float("nan")) * ratio) for e in todo])
    print(f"recomputed / earlier core-s, median over the recomputed compounds: {ratio:.2f}; the {len(todo)} left: "
          f"about {left.sum() / 3600:.1f} core-hours (median of each prototype's recomputations, else its earlier "
          f"median × that ratio)")


if __name__ == "__main__":
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main()
    print(buf.getvalue(), end="")
    out = Path(__file__).resolve().parent / "output" / "dft_cost.txt"  # the figures quoted in notes
    out.write_text(buf.getvalue())
