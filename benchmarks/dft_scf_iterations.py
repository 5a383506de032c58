"""How many iterations the dataset's SCF runs take, from the GPAW text logs of a batch.

The evidence behind ``DFTSettings.maxiter_first`` (protocol 0.6.2): if every SCF that
converges does so in far fewer iterations than the cap, the cap cuts short only SCFs
that were not going to converge, and their damped-mixer retry starts sooner.

    python benchmarks/dft_scf_iterations.py                 # data/embedded/logs
    python benchmarks/dft_scf_iterations.py --logs DIR

The logs stay local (not in git). Before 0.6.2 each new GPAW calculator restarted its
compound's log, so an older log holds the SCFs from the compound's last fresh
calculator on (its production scan, at least), not the coarse scan.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

ITER = re.compile(r"^\|iter:\s*(\d+)\|", re.M)


def scf_runs(text: str) -> list[tuple[int, bool]]:
    """(iterations, converged) of every SCF in one GPAW log, in order."""
    runs = []
    for block in re.split(r"(?=^SCF iterations$)", text, flags=re.M)[1:]:
        its = [int(m) for m in ITER.findall(block)]
        if its:
            runs.append((max(its), "Converged in" in block))
    return runs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--logs", type=Path, default=Path(__file__).resolve().parents[1] / "data/embedded/logs")
    args = ap.parse_args(argv)
    logs = sorted(args.logs.glob("*.txt"))
    converged, stalled = Counter(), []
    for f in logs:
        for n, ok in scf_runs(f.read_text(errors="replace").replace("\0", "")):
            if ok:
                converged[n] += 1
            else:
                stalled.append((f.stem, n))
    total = sum(converged.values())
    print(f"{len(logs)} GPAW logs in {args.logs}: {total} converged SCF runs, {len(stalled)} not converged")
    if total:
        cum = 0
        print("iterations  converged  cumulative %")
        for n in sorted(converged):
            cum += converged[n]
            print(f"{n:>10}  {converged[n]:>9}  {100 * cum / total:>11.2f}")
        print(f"largest iteration count of a converged SCF: {max(converged)}")
    for cid, n in stalled:
        print(f"not converged: {cid} after {n} iterations (a compound in flight, or a failure)")


if __name__ == "__main__":
    main()
