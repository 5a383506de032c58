"""The batch: which compounds to compute (the plans), one compound in its own process with its
files written atomically, claims and the stop file, and the dask-scheduled run of many."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import DFTError
from ..store import read_json, save_field, write_json
from .compounds import PROTOTYPES, atoms_from_dict, build_atoms, expected_core_s, plan
from .labels import label_reliability, write_dataset_json, write_labels
from .layout import HISTORY, PROBES, done_ids, is_done, recompute_failure
from .protocol import compute_compound, compute_structure, recompute_compound, spin_probe
from .scf import antiferro_moments, starting_moments
from .settings import (
    DATASET_VERSION,
    DFTSettings,
    initial_moments,
    is_magnetic_candidate,
    protocol_version,
    unconverged_reason,
)

PROBE_REASON = "the spin probe found a moment"  #: recompute_plan's reason after :func:`probe_plan`'s probe
#: the starts a failed magnetic compound is retried from (:func:`retry_plan`): settings changes
RETRY_STARTS = {"antiferro": {"antiferro": True}, "low-moment": {"moment_scale": 0.3}, "converged-settings": {}}


def retry_plan(out: str | os.PathLike = "data/embedded", settings: DFTSettings = DFTSettings()) -> list[dict]:
    """Failed prototype compounds to try again (:func:`retry_start`): those in ``failures/``, and
    the stored ones whose recomputation under this protocol failed (:func:`recompute_failure`; the
    retry recomputes them). Cheapest kind first."""
    out = Path(out)
    todo = []
    for p in sorted((out / "failures").glob("*.json")):
        f = read_json(p)
        sp = f.get("species")
        if f.get("prototype") not in PROTOTYPES or not sp or not (start := retry_start(f["prototype"], sp, settings)):
            continue
        todo.append((expected_core_s(f["prototype"], tuple(sp)), f["id"],
                     {"id": f["id"], "prototype": f["prototype"], "species": sp, "retry": start}))
    for p in sorted((out / "records").glob("*.json")):
        r = read_json(p)
        failed = recompute_failure(out, r) if r.get("prototype") in PROTOTYPES else None
        if failed is None or not is_magnetic_candidate(r["species"], settings.spin_rule):
            continue  # a non-magnetic one already ran at the converged settings: no other start
        todo.append((expected_core_s(r["prototype"], tuple(r["species"])), r["id"],
                     {"id": r["id"], "prototype": r["prototype"], "species": r["species"],
                      "retry": retry_start(r["prototype"], r["species"], settings),
                      "recompute": f"retry of the failed recomputation ({failed['reason']})"}))
    return [e for *_, e in sorted(todo, key=lambda t: t[:2])]


def retry_start(prototype: str, species, settings: DFTSettings = DFTSettings()) -> str | None:
    """The start a failed compound is retried from (:data:`RETRY_STARTS`): with a magnetic candidate,
    antiferromagnetic where the cell has such a start that keeps its symmetry
    (:func:`~leanecd.dft.scf.antiferro_moments`), else a lower-moment (0.3 ×) ferromagnetic start;
    with a hard element, the converged cut-off of ``settings``; else None."""
    if is_magnetic_candidate(species, settings.spin_rule):
        atoms = build_atoms(prototype, tuple(species), 5.0)
        afm = antiferro_moments(atoms, initial_moments(species, settings.spin_rule))
        return "antiferro" if afm is not None else "low-moment"
    if settings.hard_ecut_eV and set(species) & set(settings.hard_elements):
        return "converged-settings"
    return None


def probe_plan(out: str | os.PathLike = "data/embedded", settings: DFTSettings = DFTSettings()) -> list[dict]:
    """Stored spin-paired prototype compounds that ``settings.spin_rule`` makes magnetic candidates but
    that never had a spin-polarised SCF near their minimum (the coarse scan ran spin-paired, or its
    only moment was outside the window and never checked): each gets one spin probe."""
    todo = []
    for p in sorted((Path(out) / "records").glob("*.json")):
        r = read_json(p)
        if r.get("prototype") not in PROTOTYPES or r.get("spin_polarized") or r.get("spin_probe_moment") is not None:
            continue
        if not is_magnetic_candidate(r["species"], settings.spin_rule):
            continue
        if unconverged_reason(r, settings):
            continue  # recompute_plan recomputes it, with the spin probe
        was_candidate = is_magnetic_candidate(r["species"], r["settings"].get("spin_rule", "list"))
        far = (r.get("coarse_max_local_moment") or 0) >= settings.spin_collapse_muB
        if was_candidate and not far:
            continue  # its coarse scan was spin-polarised and no moment survived anywhere
        todo.append((expected_core_s(r["prototype"], tuple(r["species"])), r["id"],
                     {"id": r["id"], "prototype": r["prototype"], "species": r["species"], "probe": True}))
    return [e for *_, e in sorted(todo, key=lambda t: t[:2])]


def recompute_plan(out: str | os.PathLike = "data/embedded", settings: DFTSettings = DFTSettings()) -> list[dict]:
    """The stored compounds that protocol :data:`DATASET_VERSION` recomputes, cheapest kind first.

    A compound is recomputed if its record is of an older protocol and its settings are not
    converged for its chemistry (:func:`unconverged_reason`), its label is not ``ok``
    (:func:`label_reliability`) or its spin probe found a moment (:func:`probe_plan`). Order:
    fewer elements first (the common compounds an independent reference is likeliest to hold),
    then :func:`expected_core_s`, then id."""
    out = Path(out)
    todo = []
    for p in sorted((out / "records").glob("*.json")):
        r = read_json(p)
        if (protocol_version(r) == DATASET_VERSION or r.get("prototype", "given") not in PROTOTYPES
                or recompute_failure(out, r)):
            continue  # done, not a prototype compound, or failed under this protocol (retry_plan's)
        unconverged = unconverged_reason(r, settings)
        flag, why = label_reliability(r, settings)
        probe = out / PROBES / f"{r['id']}@{DATASET_VERSION}.json"
        magnetised = probe.exists() and read_json(probe)["moment_found"]
        if unconverged or flag != "ok" or magnetised:
            kind = "settings" if unconverged else ("flagged" if flag != "ok" else "probe")
            reason = unconverged or (why if flag != "ok" else PROBE_REASON)
            todo.append((r["n_elements"], expected_core_s(r["prototype"], tuple(r["species"])), r["id"],
                         {"id": r["id"], "prototype": r["prototype"], "species": r["species"], "recompute": reason,
                          "kind": kind}))
    return [e for *_, e in sorted(todo, key=lambda t: t[:3])]


def run_one(entry: dict, out: str | os.PathLike, settings: DFTSettings = DFTSettings()) -> dict:
    """Compute one compound and write it (field first, record last, both atomic).

    A gate failure or crash is written to ``failures/<id>.json``; returns a summary.
    """
    out = Path(out)
    cid = entry["id"]
    t0 = time.time()
    if is_done(out, entry):
        return {"id": cid, "status": "skipped", "reason": "already computed"}
    if (out / STOP_FILE).exists():
        return {"id": cid, "status": "skipped", "reason": f"stop requested ({out / STOP_FILE})"}
    claim = _claim(out, cid)
    if claim is None:
        return {"id": cid, "status": "skipped", "reason": "in progress in another process"}
    try:
        return _run_one_claimed(entry, out, settings, t0)
    finally:
        claim.unlink(missing_ok=True)


#: ``leanecd-dft stop`` writes this file in the output directory: the running batch starts no
#: new compound, finishes those in flight and returns; the next ``run`` removes it.
STOP_FILE = ".stop"


def request_stop(out: str | os.PathLike) -> Path:
    """Ask the batch running on ``out`` to stop after the compounds in flight (nothing is lost)."""
    path = Path(out) / STOP_FILE
    path.write_text(f"stop requested at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    return path


def _claim(out: Path, cid: str) -> Path | None:
    """Mark ``cid`` as in progress (``out/.claims/<id>.pid``, created exclusively), so that
    two batches on one directory never compute the same compound; a claim whose process
    is gone (killed batch) is taken over. Returns the claim file, or None if it is held."""
    d = out / ".claims"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{cid}.pid"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text().strip() or 0)
                os.kill(pid, 0)
                return None  # alive: someone else is computing it
            except (ValueError, ProcessLookupError, FileNotFoundError):
                path.unlink(missing_ok=True)  # stale claim of a killed process
                continue
            except PermissionError:
                return None
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return path
    return None


def _run_one_claimed(entry: dict, out: Path, settings: DFTSettings, t0: float) -> dict:
    cid = entry["id"]
    logdir = out / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    if entry.get("probe"):
        res = spin_probe(read_json(out / "records" / f"{cid}.json"), settings, log=str(logdir / f"{cid}.txt"))
        write_json(out / PROBES / f"{cid}@{DATASET_VERSION}.json", res)
        return {"id": cid, "status": "ok", "wall_s": time.time() - t0, "moment_found": res["moment_found"]}
    start = {}
    if entry.get("retry"):
        settings = replace(settings, **RETRY_STARTS[entry["retry"]])
        if is_magnetic_candidate(entry["species"], settings.spin_rule):
            start["start_moments_muB"] = starting_moments(build_atoms(entry["prototype"], tuple(entry["species"]), 5.0),
                                                          settings)
    old = read_json(out / "records" / f"{cid}.json") if entry.get("recompute") else None
    try:
        if old is not None:
            record, fld = recompute_compound(old, settings, log=str(logdir / f"{cid}.txt"))
        elif "structure" in entry:
            record, fld = compute_structure(atoms_from_dict(entry["structure"]), cid, settings,
                                            log=str(logdir / f"{cid}.txt"), meta=entry.get("meta"))
        else:
            record, fld = compute_compound(entry["prototype"], entry["species"], settings,
                                           log=str(logdir / f"{cid}.txt"))
    except DFTError as exc:
        fail = {"id": cid, "prototype": entry.get("prototype", "given"), "species": entry.get("species"),
                "meta": entry.get("meta"), "reason": str(exc), **({"details": exc.details} if exc.details else {}),
                "wall_s": time.time() - t0, "settings": asdict(settings), "status": "failed",
                "protocol": DATASET_VERSION}
        if old is not None:  # the earlier record stays; the failure is kept beside it
            fail["supersedes"] = protocol_version(old)
        if entry.get("retry"):  # the first failure stays where it is; this one beside the history
            fail |= {"start": entry["retry"], **start}
            write_json(out / HISTORY / f"{cid}@{DATASET_VERSION}-{entry['retry']}-failed.json", fail)
        elif old is not None:
            write_json(out / HISTORY / f"{cid}@{DATASET_VERSION}-failed.json", fail)
        else:
            write_json(out / "failures" / f"{cid}.json", fail)
        return fail
    if entry.get("retry"):  # it worked: the earlier failure moves to the history, unchanged
        record |= start
        first = out / "failures" / f"{cid}.json"
        if first.exists():
            earlier = read_json(first)
            record["start"], record["retried_failure"] = entry["retry"], earlier.get("reason")
            write_json(out / HISTORY / f"{cid}@{earlier.get('protocol') or '0.1.0'}-failed.json", earlier)
        elif old is not None and (earlier := recompute_failure(out, old)):  # already in history/
            record["start"], record["retried_failure"] = entry["retry"], earlier.get("reason")
    if old is None:
        save_field(out / "fields" / f"{cid}.npz", fld)
    else:  # append only: a new field file, the earlier record kept in history/ before it is replaced
        record["field_file"] = f"fields/{cid}@{DATASET_VERSION}.npz"
        save_field(out / record["field_file"], fld)
        kept = out / HISTORY / f"{cid}@{protocol_version(old)}.json"
        if not kept.exists():
            write_json(kept, old)
    write_json(out / "records" / f"{cid}.json", record)
    if entry.get("retry"):
        (out / "failures" / f"{cid}.json").unlink(missing_ok=True)
    return {"id": cid, "status": "ok", "wall_s": record["wall_s"]}


def _run_one_subprocess(entry: dict, out: str, settings_json: str, timeout_s: float) -> dict:
    """Run :func:`run_one` in a fresh single-threaded Python process (isolates GPAW/MPI)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "leanecd.dft", "one", json.dumps(entry), "--out", out, "--settings", settings_json]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"id": entry["id"], "status": "timeout"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"id": entry["id"], "status": "crashed", "reason": " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pending(out: str | os.PathLike, entries: list[dict]) -> list[dict]:
    """The entries that still need work in ``out`` (:func:`~leanecd.dft.layout.is_done`): a new
    compound without record or failure, a recomputation, spin probe or retry not yet done."""
    finished = done_ids(Path(out))  # a new compound: one listing instead of a file check per candidate
    kinds = ("recompute", "retry", "probe")
    return [e for e in entries
            if not (is_done(Path(out), e) if any(e.get(k) for k in kinds) else e["id"] in finished)]


def run_batch(out: str | os.PathLike, limit: int | None = None, workers: int = 2, scheduler: str | None = None,
              settings: DFTSettings = DFTSettings(), seed: int = 0, timeout_s: float = 3600,
              entries: list[dict] | None = None, progress: bool = True) -> list[dict]:
    """Compute the next ``limit`` compounds of :func:`plan` not yet done in ``out``.

    Each compound runs in its own single-threaded process, scheduled by
    ``dask.distributed`` (a local cluster of ``workers`` processes, or the scheduler
    at address ``scheduler``). Finished compounds are skipped on restart; killing the
    batch loses only the compounds in flight, :func:`request_stop` (``leanecd-dft stop``)
    not even those: it lets them finish and starts no more.
    """
    # dask.distributed takes a second to import; only the batch needs it, not the loaders
    from dask.distributed import Client, LocalCluster, as_completed

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / STOP_FILE).unlink(missing_ok=True)  # a new run: a stop asked of an earlier batch is done
    write_dataset_json(out, settings)
    todo_all = entries if entries is not None else plan(seed)
    todo = pending(out, todo_all)
    if limit is not None:
        todo = todo[: max(0, limit - (len(todo_all) - len(todo)))]
    if not todo:
        return []
    sj = json.dumps(asdict(settings))
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None)
        client = Client(cluster)
    results = []
    try:
        by_id = {e["id"]: e for e in todo}
        # dask does not run independent tasks in submission order: the priority keeps the plan's order
        futs = [client.submit(_run_one_subprocess, e, str(out), sj, timeout_s, key=f"dft-{e['id']}", pure=False,
                              priority=len(todo) - i) for i, e in enumerate(todo)]
        bar = tqdm(total=len(futs), desc="DFT compounds", unit="cpd", disable=not progress)
        for fut in as_completed(futs):
            res = fut.result()
            results.append(res)
            bar.set_postfix_str(f"{res['id']}: {res['status']}")
            bar.update()
            if res["status"] in ("timeout", "crashed"):
                entry = by_id[res["id"]]
                reason = res.get("reason") or (f"timeout: not finished within {timeout_s:g} s wall"
                                               if res["status"] == "timeout" else res["status"])
                fail = {**res, "reason": reason, "prototype": entry.get("prototype", "given"),
                        "species": entry.get("species"), "settings": asdict(settings), "protocol": DATASET_VERSION}
                kind = next((k for k in ("recompute", "retry", "probe") if entry.get(k)), None)
                if kind is None:
                    write_json(out / "failures" / f"{res['id']}.json", fail)
                else:  # a stored compound (or an earlier failure) stays as it is; this attempt is kept beside it
                    tag = {"recompute": "", "retry": f"-{entry.get('retry')}", "probe": "-probe"}[kind]
                    write_json(out / HISTORY / f"{res['id']}@{DATASET_VERSION}{tag}-failed.json", fail)
        bar.close()
    finally:
        client.close()
        if not scheduler:
            cluster.close()
    write_labels(out)
    return results
