"""Where the dataset directory keeps what (beside ``records/``, ``fields/`` and ``failures/``),
and whether a batch entry's files are there."""

from __future__ import annotations

from pathlib import Path

from ..store import read_json
from .settings import DATASET_VERSION, protocol_version

#: Superseded records and failed recomputations: ``history/<id>@<protocol>.json`` (the earlier
#: record, unchanged) and ``history/<id>@<protocol>-failed.json``. A recomputed field is stored as
#: ``fields/<id>@<protocol>.npz`` (named by the record's ``field_file``): no file is rewritten.
HISTORY = "history"
#: spin probes of stored compounds (:func:`~leanecd.dft.batch.probe_plan`): ``probes/<id>@<protocol>.json``
PROBES = "probes"


def done_ids(out: Path) -> set[str]:
    """Ids of the compounds with a record or a failure in ``out``."""
    ids = {p.stem for p in (out / "records").glob("*.json")}
    ids |= {p.stem for p in (out / "failures").glob("*.json")}
    return ids


def is_done(out: Path, entry: dict) -> bool:
    """Whether ``entry`` needs no more work in ``out``: a new compound with a record or a
    failure; a recomputation (``entry["recompute"]``) with a record or failure at this protocol;
    a retry (``entry["retry"]``) with a record (of this protocol, for a recomputation) or its failure."""
    cid = entry["id"]
    rec_path = out / "records" / f"{cid}.json"
    if entry.get("retry"):
        if (out / HISTORY / f"{cid}@{DATASET_VERSION}-{entry['retry']}-failed.json").exists():
            return True
        if entry.get("recompute"):  # a failed recomputation's retry: done once the record is of this protocol
            return rec_path.exists() and protocol_version(read_json(rec_path)) == DATASET_VERSION
        return rec_path.exists()
    if entry.get("probe"):
        return ((out / PROBES / f"{cid}@{DATASET_VERSION}.json").exists()
                or (out / HISTORY / f"{cid}@{DATASET_VERSION}-probe-failed.json").exists())
    if not entry.get("recompute"):
        return rec_path.exists()
    if (out / HISTORY / f"{cid}@{DATASET_VERSION}-failed.json").exists():
        return True
    return rec_path.exists() and protocol_version(read_json(rec_path)) == DATASET_VERSION


def recompute_failure(out: Path, record: dict) -> dict | None:
    """The failure of ``record``'s recomputation under this protocol
    (``history/<id>@<protocol>-failed.json``), or None: none was tried, or it was stored."""
    path = Path(out) / HISTORY / f"{record['id']}@{DATASET_VERSION}-failed.json"
    if protocol_version(record) == DATASET_VERSION or not path.exists():
        return None
    return read_json(path)


def probe_moment(out: Path, record: dict) -> dict | None:
    """The spin probe under this protocol (``probes/<id>@<protocol>.json``) of a spin-paired ``record``
    of an older protocol if the probe found a local moment, or None: no probe, none found, or the
    record is already of this protocol (its recomputation ran the spin decision again)."""
    path = Path(out) / PROBES / f"{record['id']}@{DATASET_VERSION}.json"
    if protocol_version(record) == DATASET_VERSION or record.get("spin_polarized") or not path.exists():
        return None
    probe = read_json(path)
    return probe if probe.get("moment_found") else None
