"""Featurise a whole dataset into an on-disk feature store (paper §3.1, at scale).

:func:`featurize` takes ``(id, loader)`` pairs (or a directory of CHGCAR files),
loads each field in a dask worker, optionally preprocesses it, computes
:func:`leanecd.correlations.autocorrelation` and stores the result as
``<store_dir>/<id>-<key[:16]>.npy`` (float32, ``(size, size, size)``, e/Å³),
written atomically, plus ``<store_dir>/index.json``.

The cache key of a field is the SHA-256 of::

    b"leanecd-features" | ALGORITHM_VERSION | preprocess name | spacing | size
    | rho shape | rho bytes (float64, C order) | lattice bytes (float64, C order)

taken on the field *as loaded*, before preprocessing; the preprocessing is
represented by its name. A second run with the same fields and settings
recomputes nothing (it still loads each field, to hash it); a change of any
setting recomputes. A field that fails (unreadable file, negative density, ...)
lands in ``result.failures`` with its reason and the others go on; failures are
not cached, so a fixed file is picked up by the next run.

>>> import tempfile, numpy as np
>>> from leanecd.io import ECDField
>>> f = ECDField(rho=np.full((4, 4, 4), 0.5), lattice=3.0 * np.eye(3), source="synthetic: flat")
>>> with tempfile.TemporaryDirectory() as d:
...     r = featurize([("flat", lambda: f)], d, size=5, progress=False)
...     X = r.load()
>>> r.ids, r.computed, r.cached, X.shape, X.dtype
(['flat'], 1, 0, (1, 5, 5, 5), dtype('float32'))

For a :class:`leanecd.dataset.Dataset` the book's standard route is one call,
:func:`dataset_features`: ``ids, X, result = dataset_features(load_dataset("embedded"))``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import dask
import numpy as np
from dask.callbacks import Callback

from . import correlations
from .errors import FileFormatError
from .field import ECDField
from .io import read_chgcar
from .renormalize import remove_negative
from .settings import GRID_SIZE, SPACING_A
from .store import atomic_path, read_json, write_json

__all__ = [
    "FeatureResult",
    "chgcar_sources",
    "dataset_features",
    "default_cache_dir",
    "feature_key",
    "featurize",
    "load_features",
]

INDEX_NAME = "index.json"
_ID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=@-]*$")


@dataclass
class FeatureResult:
    """What :func:`featurize` did.

    ``ids`` - the ids featurised (input order); ``files`` - id -> feature file;
    ``keys`` - id -> cache key; ``failures`` - id -> reason; ``computed`` / ``cached`` -
    how many features were computed now / found in the store.
    """

    store_dir: Path
    ids: list[str]
    files: dict[str, Path]
    keys: dict[str, str]
    failures: dict[str, str]
    computed: int
    cached: int
    spacing: float
    size: int
    seconds: float = 0.0
    records: list[dict] = dc_field(default_factory=list, repr=False)

    def load(self, ids: Iterable[str] | None = None, mmap_mode: str | None = None) -> np.ndarray:
        """Stack the features of ``ids`` (default: all of :attr:`ids`): float32 ``(N, s, s, s)``."""
        ids = self.ids if ids is None else list(ids)
        return _stack([self.files[i] for i in ids], self.size, mmap_mode)

    @property
    def features(self) -> np.ndarray:
        """All features, stacked (read from the store at each access): float32 ``(N, s, s, s)``."""
        return self.load()

    def __repr__(self) -> str:
        return (
            f"FeatureResult({len(self.ids)} features in {str(self.store_dir)!r}: {self.computed} computed, "
            f"{self.cached} cached, {len(self.failures)} failed)"
        )


def chgcar_sources(directory: str | os.PathLike, pattern: str = "*") -> list[tuple[str, Callable[[], ECDField]]]:
    """``(id, loader)`` pairs for the CHGCAR files in ``directory`` (id = file name).

    Every non-hidden regular file matching ``pattern`` counts, in sorted order; the
    loader is ``read_chgcar(path)``, so a malformed file fails in its own task.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileFormatError(directory, "not a directory of CHGCAR files")
    paths = sorted(p for p in directory.glob(pattern) if p.is_file() and not p.name.startswith("."))
    return [(p.name, functools.partial(read_chgcar, p)) for p in paths]


def preprocess_name(preprocess) -> str:
    """The name under which a preprocessing callable enters the cache key (``"none"``)."""
    if preprocess is None:
        return "none"
    if isinstance(preprocess, functools.partial):
        args = ", ".join([repr(a) for a in preprocess.args]
                         + [f"{k}={v!r}" for k, v in sorted(preprocess.keywords.items())])
        return f"partial({preprocess_name(preprocess.func)}, {args})"
    mod = getattr(preprocess, "__module__", None) or ""
    name = getattr(preprocess, "__qualname__", None) or type(preprocess).__qualname__
    return f"{mod}.{name}" if mod else name


def feature_key(field: ECDField, spacing: float = SPACING_A, size: int = GRID_SIZE, preprocess: str = "none") -> str:
    """The cache key (64 hex digits) of ``field`` under the given settings (module docstring)."""
    rho = np.ascontiguousarray(field.rho, dtype=np.float64)
    lat = np.ascontiguousarray(field.lattice, dtype=np.float64)
    h = hashlib.sha256()
    head = f"leanecd-features|{correlations.ALGORITHM_VERSION}|{preprocess}|{float(spacing)!r}|{int(size)}|{rho.shape}|"
    h.update(head.encode())
    h.update(rho.tobytes())
    h.update(b"|")
    h.update(lat.tobytes())
    return h.hexdigest()


def featurize(
    fields,
    store_dir: str | os.PathLike,
    spacing: float = SPACING_A,
    size: int = GRID_SIZE,
    scheduler=None,
    progress: bool = True,
    preprocess: Callable[[ECDField], ECDField] | None = None,
    preprocess_label: str | None = None,
) -> FeatureResult:
    """Compute (or find cached) the autocorrelation of every field into ``store_dir``.

    ``fields``: ``(id, loader)`` pairs, ``loader()`` returning an :class:`ECDField` (an
    ``ECDField`` in place of the loader is accepted), or a directory of CHGCAR files
    (:func:`chgcar_sources`). Ids must be unique file-name-safe strings.

    ``preprocess``: optional ``field -> field`` run in the worker before the
    autocorrelation (e.g. ``remove_negative``); its name (``preprocess_label`` if
    given - give one for lambdas) is part of the cache key.

    ``scheduler``: ``None`` or ``"threads"`` (dask's threaded scheduler), ``"sync"``,
    ``"processes"``, ``"distributed"`` (a local ``dask.distributed`` cluster, closed
    afterwards), a scheduler address such as ``"tcp://10.0.0.5:8786"``, or a
    ``distributed.Client``. With a cluster, ``store_dir`` must be on a file system the
    workers share. ``"distributed"`` starts worker processes: in a script, call
    :func:`featurize` under ``if __name__ == "__main__":``, and give loaders that the
    workers can import (module-level functions, :func:`chgcar_sources`).
    """
    t0 = time.perf_counter()
    correlations.autocorrelation_grid(spacing, size)  # validates the settings
    spacing, size = float(spacing), int(size)
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(fields, (str, os.PathLike)):
        fields = chgcar_sources(fields)
    sources = []
    seen = set()
    for item in fields:
        try:
            fid, loader = item
        except (TypeError, ValueError):
            raise TypeError(f"fields must be (id, loader) pairs, got {item!r}") from None
        fid = str(fid)
        if not _ID_OK.match(fid):
            raise ValueError(f"id {fid!r} is not a safe file name (letters, digits and ._+=@- only)")
        if fid in seen:
            raise ValueError(f"duplicate id {fid!r}")
        seen.add(fid)
        sources.append((fid, loader))
    pname = preprocess_label if preprocess_label is not None else preprocess_name(preprocess)
    if "<lambda>" in pname:
        raise ValueError("a lambda has no name to key the cache by: pass preprocess_label='...' or a named function")
    task = functools.partial(
        _featurize_one, store_dir=str(store_dir), spacing=spacing, size=size, preprocess=preprocess, pname=pname
    )
    records = _run(task, sources, scheduler, progress)

    by_id = {r["id"]: r for r in records}
    ok = [fid for fid, _ in sources if by_id[fid]["status"] in ("computed", "cached")]
    failures = {fid: by_id[fid]["reason"] for fid, _ in sources if by_id[fid]["status"] == "failed"}
    files = {fid: store_dir / by_id[fid]["file"] for fid in ok}
    keys = {fid: by_id[fid]["key"] for fid in ok}
    _update_index(store_dir, [by_id[f] for f in ok], failures, spacing, size, pname)
    return FeatureResult(
        store_dir=store_dir,
        ids=ok,
        files=files,
        keys=keys,
        failures=failures,
        computed=sum(by_id[f]["status"] == "computed" for f in ok),
        cached=sum(by_id[f]["status"] == "cached" for f in ok),
        spacing=spacing,
        size=size,
        seconds=time.perf_counter() - t0,
        records=[by_id[fid] for fid, _ in sources],
    )


def load_features(store_dir: str | os.PathLike, ids: Iterable[str] | None = None,
                  mmap_mode: str | None = None) -> np.ndarray:
    """Stack stored features: float32 ``(N, size, size, size)``, in the order of ``ids``.

    Looks the ids up in ``<store_dir>/index.json`` (the latest :func:`featurize` run that
    computed each id); ``ids=None`` loads every id in the index, sorted. Files are read
    with ``np.load(mmap_mode=...)`` and copied into one array.
    """
    store_dir = Path(store_dir)
    index_path = store_dir / INDEX_NAME
    if not index_path.is_file():
        raise FileFormatError(index_path, "no feature index here; run leanecd.features.featurize first")
    index = read_json(index_path)
    entries = index.get("entries", {})
    ids = sorted(entries) if ids is None else list(ids)
    missing = [i for i in ids if i not in entries]
    if missing:
        raise KeyError(f"{index_path}: no features for ids {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    sizes = {entries[i]["size"] for i in ids}
    if len(sizes) > 1:
        raise FileFormatError(index_path,
                              f"the requested ids were featurised with different grid sizes {sorted(sizes)}")
    size = sizes.pop() if sizes else GRID_SIZE
    return _stack([store_dir / entries[i]["file"] for i in ids], size, mmap_mode)


def default_cache_dir(ds) -> Path:
    """Where :func:`dataset_features` keeps the features of dataset ``ds`` by default.

    ``$LEANECD_CACHE/<name>-<version>`` if the environment variable ``LEANECD_CACHE``
    is set; else, for an embedded-layout dataset (its root holds ``dataset.json``),
    ``<root>/../features-cache/<name>-<version>`` - for the repository's own dataset
    that is ``<repo>/data/features-cache/...``, which git ignores; else (a CHGCAR
    directory, JARVIS) ``$XDG_CACHE_HOME/leanecd/features/<name>-<version>`` (default
    ``~/.cache/leanecd/...``), so that no file is written into a user's data directory.
    The features are keyed by content (:func:`feature_key`), so a dataset that grows
    under the same version only adds files.
    """
    slug = re.sub(r"[^A-Za-z0-9._+=@-]", "_", f"{ds.name}-{ds.version}")
    env = os.environ.get("LEANECD_CACHE", "").strip()
    if env:
        return Path(env).expanduser() / slug
    root = getattr(ds, "root", None)
    if root is not None and (Path(root) / "dataset.json").is_file():
        return Path(root).resolve().parent / "features-cache" / slug
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "leanecd" / "features" / slug


def dataset_features(ds, store_dir: str | os.PathLike | None = None, progress: bool = True, scheduler=None):
    """Featurise a :class:`leanecd.dataset.Dataset` the book's standard way, through the cache.

    Returns ``(ids, X, result)``: the ids featurised (dataset order, failures left
    out), their autocorrelations ``X`` as float32 ``(N, 51, 51, 51)`` in e/Å³ (the
    paper's grid, :data:`leanecd.settings.SPACING_A` and ``GRID_SIZE``), and the
    :class:`FeatureResult` (``computed``, ``cached``, ``failures``, ``seconds``).
    Select the labels with ``ds.subset(ids).targets(...)``.

    The route, exactly: each field *as stored* -> :func:`leanecd.renormalize.remove_negative`
    (paper §2.2.2; electron count kept) -> :func:`leanecd.correlations.autocorrelation`.
    No cell transform is applied: the autocorrelation is evaluated exactly on the
    field's own grid, whether that is a primitive FCC/BCC cell or a cube, so the
    paper's resampling to the conventional cell (§2.2.1) is not needed and adds no
    interpolation error (chapters 2 and 4 show both give the same features).

    ``store_dir`` defaults to :func:`default_cache_dir`. A compound that fails (a bad
    file, a field whose negative charge cannot be removed) is left out of ``ids`` and
    ``X``, listed in ``result.failures`` with its reason, and reported with a warning.
    """
    store_dir = default_cache_dir(ds) if store_dir is None else Path(store_dir)
    result = featurize(ds.items(), store_dir, scheduler=scheduler, progress=progress, preprocess=remove_negative)
    if result.failures:
        shown = "; ".join(f"{k}: {v}" for k, v in list(result.failures.items())[:5])
        more = f"; ... ({len(result.failures) - 5} more in result.failures)" if len(result.failures) > 5 else ""
        warnings.warn(
            f"{ds.name}: {len(result.failures)} of {len(ds)} compounds could not be featurised and are left "
            f"out: {shown}{more}",
            stacklevel=2,
        )
    return list(result.ids), result.load(), result


# --------------------------------------------------------------------------- internals


def _stack(paths, size, mmap_mode):
    out = np.empty((len(paths), size, size, size), dtype=np.float32)
    for n, p in enumerate(paths):
        a = _read_feature(p, size, mmap_mode)
        if a is None:
            raise FileFormatError(p, f"missing or not a float32 {size}³ feature file")
        out[n] = a
    return out


def _read_feature(path, size, mmap_mode="r"):
    try:
        a = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if a.shape != (size,) * 3 or a.dtype != np.float32:
        return None
    return a


def _featurize_one(item, store_dir, spacing, size, preprocess, pname) -> dict:
    """One task: load, hash, look up, (preprocess, autocorrelate, store). Never raises."""
    fid, loader = item
    rec = {"id": fid, "status": "failed", "reason": None, "key": None, "file": None, "source": None}
    try:
        field = loader if isinstance(loader, ECDField) else loader()
        if not isinstance(field, ECDField):
            raise TypeError(f"the loader returned {type(field).__name__}, not an ECDField")
        rec["source"] = field.source
        key = feature_key(field, spacing, size, pname)
        fname = f"{fid}-{key[:16]}.npy"
        path = Path(store_dir) / fname
        rec.update(key=key, file=fname)
        if _read_feature(path, size) is not None:
            rec["status"] = "cached"
            return rec
        if preprocess is not None:
            field = preprocess(field)
            if not isinstance(field, ECDField):
                raise TypeError(f"preprocess {pname} returned {type(field).__name__}, not an ECDField")
        F = correlations.autocorrelation(field, spacing=spacing, size=size)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, F.astype(np.float32))
        rec["status"] = "computed"
    except Exception as exc:  # reported per field; the run goes on
        rec["reason"] = f"{type(exc).__name__}: {exc}"
    return rec


def _run(task, sources, scheduler, progress) -> list[dict]:
    if not sources:
        return []
    with warnings.catch_warnings():  # tqdm.auto warns on import in a notebook without ipywidgets
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm

    bar = tqdm(total=len(sources), desc="autocorrelations", unit="field", disable=not progress)
    try:
        if scheduler is None or scheduler in ("threads", "threading", "sync", "synchronous", "single-threaded",
                                              "processes"):
            return _run_local(task, sources, scheduler or "threads", bar)
        return _run_distributed(task, sources, scheduler, bar)
    finally:
        bar.close()


def _run_local(task, sources, scheduler, bar) -> list[dict]:
    class _Tick(Callback):
        def _posttask(self, key, result, dsk, state, id):
            if isinstance(result, dict) and "status" in result:
                bar.update(1)

    tasks = [dask.delayed(task, pure=False)(item, dask_key_name=f"featurize-{n}") for n, item in enumerate(sources)]
    with _Tick():
        return list(dask.compute(*tasks, scheduler=scheduler))


def _run_distributed(task, sources, scheduler, bar) -> list[dict]:
    from distributed import Client, as_completed  # here: a second to import, for a cluster only

    own = not isinstance(scheduler, Client)
    if not own:
        client = scheduler
    elif scheduler == "distributed":  # one single-threaded process per core: parsing holds the GIL
        client = Client(n_workers=os.cpu_count() or 1, threads_per_worker=1, dashboard_address=None)
    elif isinstance(scheduler, str):
        client = Client(scheduler)
    else:
        raise ValueError(f"unknown scheduler {scheduler!r}")
    try:
        futures = client.map(task, sources, pure=False)
        out = []
        for fut in as_completed(futures):
            out.append(fut.result())
            bar.update(1)
        return out
    finally:
        if own:
            client.close()


def _update_index(store_dir, ok_records, failures, spacing, size, pname):
    index_path = store_dir / INDEX_NAME
    index = {}
    if index_path.is_file():
        try:
            index = read_json(index_path)
        except FileFormatError:
            index = {}
    entries = index.get("entries", {})
    for r in ok_records:
        entries[r["id"]] = {
            "file": r["file"],
            "key": r["key"],
            "spacing": spacing,
            "size": size,
            "preprocess": pname,
            "algorithm": correlations.ALGORITHM_VERSION,
            "source": r["source"],
        }
    last_failures = {k: v for k, v in index.get("failures", {}).items() if k not in {r["id"] for r in ok_records}}
    last_failures.update(failures)
    write_json(index_path, {"format": "leanecd-features-1", "entries": entries, "failures": last_failures})
