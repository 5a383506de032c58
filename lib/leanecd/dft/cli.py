"""The command line ``leanecd-dft`` (also ``python -m leanecd.dft``).

It sits above the package: ``labels`` writes the dataset card (:mod:`leanecd.card`), which reads
:mod:`leanecd.data`, which reads this package; so the package imports this module only when the
command runs (:func:`leanecd.dft.main`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..card import write_card
from ..store import read_json
from . import __doc__ as PACKAGE_DOC  # its first paragraph is the command's description
from .batch import probe_plan, recompute_plan, request_stop, retry_plan, run_batch, run_one
from .compounds import plan
from .labels import write_dataset_json, write_labels
from .layout import HISTORY, is_done
from .settings import DATASET_VERSION, DFTSettings


def main(argv=None) -> int:
    """``leanecd-dft``: plan, run, recompute, stop, labels, and ``one`` (a batch's compound); returns the exit code."""
    ap = argparse.ArgumentParser(prog="leanecd-dft", description=PACKAGE_DOC.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_plan = sub.add_parser("plan", help="list the compounds in computing order")
    p_plan.add_argument("--limit", type=int, default=None)
    p_run = sub.add_parser("run", help="compute the next compounds (resumes)")
    p_run.add_argument("--out", default="data/embedded")
    p_run.add_argument("--limit", type=int, default=None, help="stop when this many compounds are done in --out")
    p_run.add_argument("--workers", type=int, default=2)
    p_run.add_argument("--scheduler", default=None, help="dask scheduler address (default: local cluster)")
    p_run.add_argument("--timeout", type=float, default=3600, help="seconds per compound")
    p_run.add_argument("--entries", default=None,
                       help="JSON file with a list of entries ({id, structure, meta} or {id, prototype, species}) "
                            "to compute instead of the built-in plan, e.g. from leanecd.jarvis.jarvis_dft_entries")
    p_one = sub.add_parser("one", help="(internal) compute one compound given as JSON")
    p_one.add_argument("entry")
    p_one.add_argument("--out", required=True)
    p_one.add_argument("--settings", default=None)
    p_re = sub.add_parser("recompute", help="recompute the stored compounds the current protocol changes (resumes)")
    p_re.add_argument("--out", default="data/embedded")
    p_re.add_argument("--limit", type=int, default=None, help="recompute at most this many (in plan order)")
    p_re.add_argument("--workers", type=int, default=2)
    p_re.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per compound")
    p_re.add_argument("--list", action="store_true", help="print the plan, compute nothing")
    p_re.add_argument("--which", choices=["all", "settings", "flagged", "probe", "retry"], default="all",
                      help="settings: only compounds whose settings are not converged for their chemistry; flagged: "
                           "only those with an uncertain label; probe: one spin probe for each open-shell compound "
                           "never checked (probe_plan); retry: failed compounds from another start (retry_plan)")
    p_stop = sub.add_parser("stop", help="let the running batch finish the compounds in flight, then stop")
    p_stop.add_argument("--out", default="data/embedded")
    p_lab = sub.add_parser("labels", help="regenerate labels.csv and the dataset card from records/")
    p_lab.add_argument("--out", default="data/embedded")
    args = ap.parse_args(argv)
    if args.cmd == "plan":
        for e in plan()[: args.limit]:
            print(e["id"], e["prototype"], " ".join(e["species"]))
    elif args.cmd == "run":
        entries = read_json(args.entries) if args.entries else None
        res = run_batch(args.out, limit=args.limit, workers=args.workers, scheduler=args.scheduler,
                        timeout_s=args.timeout, entries=entries)
        ok = sum(r["status"] == "ok" for r in res)
        skipped = sum(r["status"] == "skipped" for r in res)
        print(f"computed {len(res) - skipped} compounds: {ok} ok, {len(res) - skipped - ok} failed "
              f"(see {args.out}/failures)" + (f"; {skipped} skipped (done, claimed by another batch, "
                                              "or not started after a stop request)" if skipped else ""))
    elif args.cmd == "recompute":
        todo = {"probe": probe_plan, "retry": retry_plan}.get(args.which, recompute_plan)(args.out)
        if args.which in ("settings", "flagged"):
            todo = [e for e in todo if e["kind"] == args.which]
        if args.list:
            for e in todo:
                why = e.get("recompute") or (f"retry ({e['retry']} start)" if e.get("retry") else "spin probe")
                print(e["id"], "|", why, "| done" if is_done(Path(args.out), e) else "")
            return 0
        todo = todo[: args.limit] if args.limit is not None else todo
        res = run_batch(args.out, workers=args.workers, timeout_s=args.timeout, entries=todo)
        ok = sum(r["status"] == "ok" for r in res)
        print(f"{args.which}: {ok} of {len(res)} compounds done under protocol {DATASET_VERSION} "
              f"(failures kept in {args.out}/{HISTORY}/<id>@{DATASET_VERSION}-failed.json)")
    elif args.cmd == "one":
        settings = (DFTSettings(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in json.loads(args.settings).items()})
                    if args.settings else DFTSettings())
        print(json.dumps(run_one(json.loads(args.entry), args.out, settings)))
    elif args.cmd == "stop":
        print(f"{request_stop(args.out)}: the batch finishes the compounds in flight, then stops")
    elif args.cmd == "labels":
        write_dataset_json(Path(args.out))
        print(write_labels(args.out))
        print(write_card(args.out))
    return 0
