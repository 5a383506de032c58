"""The run directory: written and read here, and nowhere else.

A run directory is what :func:`leanecd.train.fit` or :mod:`leanecd.baselines` writes:

``config.json``
    ``{"config": settings, "shortcuts", "provenance", "data", ...}``
    (:func:`write_config`, :func:`read_config`);
``splits.json``
    which compounds were train+CV, test and in which CV fold, as compound ids
    (``order``: the ids in the order :func:`leanecd.splits.split_indices` saw them;
    ``trainval_ids``, ``test_ids``, ``fold_ids``) and, for a training run, as sample
    indices too (``n_samples``, ``subset``, ``trainval``, ``test``, ``folds``)
    (:func:`splits_record`, :func:`write_splits`, :func:`read_splits`);
``predictions.csv``
    long format, :data:`PREDICTION_COLUMNS` (``split``: ``cv`` for the out-of-fold
    predictions of fold ``fold``, ``train`` or ``test`` for the final model; physical
    units) (:func:`write_predictions`, :func:`read_predictions`);
``metrics.json``
    the metrics as computed when the run was written (:func:`write_metrics`), a
    cross-check (:func:`check_run`), never the source of a table.

Target names are canonicalised here, when a run is read
(:func:`leanecd.registry.canonical_target`): runs written with ``bulk_modulus`` or
``total_energy`` read back as ``bulk_modulus_GPa`` / ``energy_per_atom_eV``.
:func:`read_run` gives a :class:`Run`; :func:`find_runs` every finished run under a
directory; :func:`select_runs` one run per (model, target).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import FileFormatError, LeanECDError
from .log import logger
from .metrics import recompute
from .registry import canonical_target, model_label, target_label
from .store import atomic_path, read_json, write_json

__all__ = ["PREDICTION_COLUMNS", "SPLIT_ID_KEYS", "Run", "read_run", "find_runs", "select_runs", "as_runs",
           "run_rank", "same_split", "runs_on_other_data", "check_run", "read_config", "write_config",
           "splits_record", "write_splits", "read_splits", "write_predictions", "read_predictions",
           "write_metrics"]

#: Columns of ``predictions.csv``, in order.
PREDICTION_COLUMNS = ["id", "split", "fold", "target", "y_true", "y_pred"]

#: Keys of ``splits.json`` that hold compound ids (every run directory has them).
SPLIT_ID_KEYS = ("order", "trainval_ids", "test_ids", "fold_ids")

#: Keys of ``splits.json`` that hold sample indices (training runs only).
_SPLIT_INDEX_KEYS = ("n_samples", "subset", "trainval", "test", "folds")


def _canonical(name) -> str:
    return canonical_target(name, strict=False)


# --------------------------------------------------------------------------- config.json


def _canonical_targets(value):
    if value is None:
        return None
    return _canonical(value) if isinstance(value, str) else [_canonical(t) for t in value]


def read_config(path: str | os.PathLike) -> dict:
    """``config.json`` as stored, with its target names canonicalised."""
    config = read_json(Path(path))
    for part in ("config", "data"):
        if isinstance(config.get(part), dict) and "targets" in config[part]:
            config[part]["targets"] = _canonical_targets(config[part]["targets"])
    return config


def write_config(run_dir: str | os.PathLike, config: dict) -> None:
    """Write ``config.json`` (atomically)."""
    write_json(Path(run_dir) / "config.json", config)


# --------------------------------------------------------------------------- splits.json


def splits_record(ids: Sequence, subset, trainval, test, folds: Sequence) -> dict:
    """``splits.json`` of a training run on N samples with ids ``ids``: ``subset`` the indices used
    (into the N); ``trainval``, ``test`` and ``folds`` (the validation sets) indices into ``subset``."""
    subset = np.asarray(subset)
    used = [str(i) for i in np.asarray(ids)[subset]]
    return {"n_samples": int(len(ids)), "subset": subset.tolist(), "trainval": subset[trainval].tolist(),
            "test": subset[test].tolist(), "folds": [subset[v].tolist() for v in folds],
            "order": used, "trainval_ids": [used[i] for i in trainval], "test_ids": [used[i] for i in test],
            "fold_ids": [[used[i] for i in v] for v in folds]}


def write_splits(run_dir: str | os.PathLike, splits: dict, replace: bool = False) -> None:
    """Write ``splits.json``; if the directory holds one already (a resumed run), it must agree,
    unless ``replace`` (a baseline, recomputed from scratch, overwrites it).

    A ``splits.json`` written before the ids were stored is compared on its indices.
    """
    path = Path(run_dir) / "splits.json"
    if path.exists() and not replace:
        old = read_json(path)
        keys = [k for k in splits if k in old or k in _SPLIT_INDEX_KEYS]
        if any(old.get(k) != splits[k] for k in keys):
            raise LeanECDError(f"{path}: the run directory was made with different data or splits; "
                               "use a new run directory")
    write_json(path, splits)


def read_splits(path: str | os.PathLike) -> dict:
    """``splits.json``; :class:`FileFormatError` if it lacks the compound ids (:data:`SPLIT_ID_KEYS`)."""
    path = Path(path)
    splits = read_json(path)
    missing = [k for k in SPLIT_ID_KEYS if k not in splits]
    if missing:
        raise FileFormatError(path, f"no compound ids ({', '.join(missing)} missing): written before splits.json "
                                    "held them; add them or rerun")
    return splits


# --------------------------------------------------------------------------- predictions.csv


def write_predictions(path: str | os.PathLike, rows: Iterable[tuple]) -> None:
    """Write ``predictions.csv`` from rows (id, split, fold or None, target, y_true, y_pred), atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PREDICTION_COLUMNS)
    for i, split, fold, t, yt, yp in rows:
        w.writerow([i, split, "" if fold is None else fold, t, repr(float(yt)), repr(float(yp))])
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(buf.getvalue())


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """``predictions.csv`` as a DataFrame: ``fold`` nullable integer, ``y_true``/``y_pred`` float64,
    target names canonicalised; extra columns are kept after :data:`PREDICTION_COLUMNS`."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, "no predictions.csv in this run directory")
    try:
        df = pd.read_csv(path, dtype={"id": str, "split": str, "target": str}, keep_default_na=False,
                         na_values={"fold": [""], "y_true": [""], "y_pred": [""]})
    except (ValueError, pd.errors.ParserError) as exc:
        raise FileFormatError(path, f"unreadable CSV ({exc})") from None
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise FileFormatError(path, f"missing column(s) {missing}; has {list(df.columns)}")
    df["fold"] = pd.to_numeric(df["fold"], errors="raise").astype("Int64")
    for c in ("y_true", "y_pred"):
        df[c] = pd.to_numeric(df[c], errors="raise").astype(np.float64)
    bad = set(df["split"]) - {"cv", "train", "test"}
    if bad:
        raise FileFormatError(path, f"unknown split value(s) {sorted(bad)} (expected cv, train, test)")
    df["target"] = df["target"].map(_canonical)
    return df[PREDICTION_COLUMNS + [c for c in df.columns if c not in PREDICTION_COLUMNS]]


# --------------------------------------------------------------------------- metrics.json


def write_metrics(run_dir: str | os.PathLike, metrics: dict) -> None:
    """Write ``metrics.json`` (atomically): the run is finished once it exists."""
    write_json(Path(run_dir) / "metrics.json", metrics)


def _read_metrics(path: Path) -> dict:
    """``metrics.json`` with target names canonicalised (in ``targets`` and as keys of per-target entries)."""
    metrics = read_json(path)
    names = metrics.get("targets")
    names = [names] if isinstance(names, str) else list(names or [])
    if names:
        metrics["targets"] = [_canonical(t) for t in names]
        for key, value in metrics.items():
            if isinstance(value, dict) and value and set(value) <= set(names):
                metrics[key] = {_canonical(t): v for t, v in value.items()}
    return metrics


# --------------------------------------------------------------------------- Run

@dataclass
class Run:
    """One run directory, read back.

    ``predictions``: the long-format DataFrame of ``predictions.csv`` (``fold`` is a
    nullable integer, ``y_true``/``y_pred`` float64, physical units); ``metrics``:
    ``metrics.json`` as stored; ``config``: ``config.json`` as stored (its
    ``"config"`` entry holds the training settings); ``provenance``: where the result
    came from (git commit, device, library versions, dataset version, time);
    ``splits``: ``splits.json`` (``None`` if absent). Target names are canonical.
    """

    path: Path
    predictions: pd.DataFrame
    metrics: dict
    config: dict
    provenance: dict
    splits: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def settings(self) -> dict:
        return self.config.get("config", {})

    @property
    def model(self) -> str:
        return str(self.settings.get("model", self.metrics.get("model", "?")))

    @property
    def targets(self) -> list[str]:
        t = self.settings.get("targets") or self.metrics.get("targets") or sorted(self.predictions["target"].unique())
        return [t] if isinstance(t, str) else list(t)

    @property
    def kind(self) -> str:
        """``"baseline"`` for runs written by :mod:`leanecd.baselines`, else ``"cnn"``."""
        return "baseline" if "baseline" in self.config else "cnn"

    @property
    def epochs(self):
        return self.settings.get("epochs")

    @property
    def folds(self) -> int:
        f = self.settings.get("folds")
        return int(f) if f else 0

    @property
    def final_only(self) -> bool:
        return self.folds == 0

    @property
    def mode(self) -> str:
        return str(self.settings.get("mode") or self.metrics.get("mode") or "?")

    @property
    def train_fraction(self) -> float:
        """Share of the 90 % train+CV part the run trained on (1.0 for runs written before the setting existed)."""
        return float(self.settings.get("train_fraction") or 1.0)

    def collapsed(self, target: str | None = None) -> bool:
        """Whether the test predictions (of ``target``, default every target) collapsed (:func:`is_collapsed`)."""
        flags = recompute(self.predictions)["collapsed"] or {}
        keys = [t for t in flags if target is None or t == _canonical(target)]
        return any(flags[t] for t in keys)

    def protocol(self) -> dict:
        """What was run, as the protocol rows of the tables show it (strings)."""
        prov = self.provenance or {}
        split = self.predictions["split"]
        ids_train = self.predictions.loc[split == "train", "id"].nunique()
        ids_test = self.predictions.loc[split == "test", "id"].nunique()
        if self.kind == "baseline" and self.epochs is None:
            epochs = "n/a (not trained by epochs)"
        else:
            epochs = f"{self.epochs}" + ("" if self.epochs == 650 else " (paper: 650)")
        folds = f"{self.folds}" if self.folds else "none (final fit only)"
        if self.folds and self.folds != 9:
            folds += " (paper: 9)"
        device = prov.get("device_name") or prov.get("device") or "?"
        cpu = prov.get("cpu_path") or {}
        if cpu.get("chosen") not in (None, "as configured"):
            device = f"{device}, {cpu['chosen']}"
        lr = self.settings.get("lr")
        lr = ("n/a" if self.kind == "baseline" or lr is None
              else (f"{lr:g}" + ("" if lr == 5e-3 else " (paper: 5e-3; ours)")))
        norm = self.settings.get("input_norm") or "none"
        inputs = "n/a" if self.kind == "baseline" else ("raw" if norm == "none" else f"standardised ({norm}; ours)")
        return {
            "epochs": epochs,
            "CV folds": folds,
            "lr": lr,
            "inputs": inputs,
            "n train / n test": f"{ids_train} / {ids_test}",
            "device": str(device),
            "mode": self.mode,
            "run": self.name,
        }

    def short(self) -> str:
        """A short protocol label for figure titles, e.g. ``"20 epochs, no CV, cpu, 17 compounds"``."""
        n = self.predictions["id"].nunique()
        ep = "" if self.epochs is None else f"{self.epochs} epochs, "
        cv = f"{self.folds}-fold CV" if self.folds else "no CV"
        dev = str((self.provenance or {}).get("device", "?"))
        return f"{ep}{cv}, {dev}, {n} compounds"

    def ids(self, split: str) -> list[str]:
        """The compound ids of ``split`` (``"train"``, ``"test"`` or ``"cv"``), sorted."""
        return sorted(set(self.predictions.loc[self.predictions["split"] == split, "id"]))

    def describe(self) -> str:
        """One paragraph: model, targets, protocol, data, provenance, shortcuts."""
        p = self.protocol()
        prov = self.provenance or {}
        data = self.config.get("data", {})
        lines = [
            f"{self.path}: {model_label(self.model)} -> {', '.join(target_label(t) for t in self.targets)}",
            f"  epochs {p['epochs']}; CV folds {p['CV folds']}; train/test {p['n train / n test']} compounds"
            + (f" (of {data['n_samples']} given)" if data.get("n_samples") else ""),
            f"  device {p['device']}; mode {p['mode']}; dataset version {prov.get('dataset_version')}; "
            f"git {str(prov.get('git_commit'))[:10]}{' (dirty)' if prov.get('git_dirty') else ''}; "
            f"written {prov.get('timestamp_utc')}",
        ]
        t = self.metrics.get("training_time_s")
        if isinstance(t, dict) and t:
            lines.append(f"  training time {sum(float(v) for v in t.values()):.0f} s in total")
        shortcuts = self.config.get("shortcuts") or self.metrics.get("shortcuts") or []
        for s in shortcuts:
            lines.append(f"  shortcut: {s}")
        if self.metrics.get("protocol"):
            lines.append(f"  protocol: {self.metrics['protocol']}")
        if self.kind == "baseline":
            desc = self.config["baseline"].get("description")
            if desc:
                lines.append(f"  baseline: {desc}")
        return "\n".join(lines)


def read_run(run_dir: str | os.PathLike) -> Run:
    """Read a run directory: predictions (DataFrame), metrics, config, provenance and splits."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileFormatError(run_dir, "not a run directory")
    preds = read_predictions(run_dir / "predictions.csv")
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileFormatError(metrics_path, "no metrics.json: the run has not finished")
    metrics = _read_metrics(metrics_path)
    config = read_config(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    splits = read_splits(run_dir / "splits.json") if (run_dir / "splits.json").is_file() else None
    prov = config.get("provenance") or metrics.get("provenance") or {}
    notes = [] if config else [f"{run_dir}: no config.json; settings taken from metrics.json"]
    if not config:
        config = {"config": {k: metrics.get(k) for k in ("model", "targets", "epochs", "folds", "mode")}}
    return Run(path=run_dir, predictions=preds, metrics=metrics, config=config, provenance=prov, splits=splits,
               notes=notes)


def find_runs(results_dir: str | os.PathLike = "results", verbose: bool = True) -> list[Run]:
    """Every finished run under ``results_dir`` (any depth), sorted by path.

    A directory counts when it holds ``predictions.csv`` and ``metrics.json``. A
    directory with a ``config.json`` but no ``metrics.json`` (a run in progress or an
    interrupted one) is not a result; with ``verbose`` it is named in a printed line.
    """
    root = Path(results_dir)
    if not root.is_dir():
        return []
    runs, unfinished = [], []
    for cfg in sorted(root.rglob("config.json")):
        d = cfg.parent
        if (d / "metrics.json").is_file() and (d / "predictions.csv").is_file():
            runs.append(read_run(d))
        else:
            unfinished.append(d)
    if verbose and unfinished:
        left = ", ".join(str(d) for d in unfinished)
        logger.info(f"not finished (no metrics.json/predictions.csv), left out: {left}")
    return runs


def as_runs(runs) -> list[Run]:
    """``runs`` (one or many run directories or :class:`Run`) as a list of :class:`Run`."""
    if isinstance(runs, Run | str | os.PathLike):
        runs = [runs]
    return [r if isinstance(r, Run) else read_run(r) for r in runs]


def run_rank(run: Run, dataset: tuple[str, str] | None = None) -> tuple:
    """Preference among runs of the same model and target: all the training data (not a
    learning-curve point), trained on ``dataset`` (name, version) if given, the paper's
    protocol (650 epochs, 9-fold CV), then with CV, more epochs, more compounds, most recent."""
    n = run.predictions["id"].nunique()
    epochs = run.epochs if isinstance(run.epochs, int | float) else 0
    paper = epochs == 650 and run.folds == 9
    on_data = dataset is None or (run.provenance.get("dataset_name"),
                                  run.provenance.get("dataset_version")) == tuple(dataset)
    return (run.train_fraction == 1, on_data, paper, run.folds > 0, epochs, n,
            str(run.provenance.get("timestamp_utc", "")))


def select_runs(runs: Iterable[Run], dataset: tuple[str, str] | None = None) -> dict[tuple[str, str], Run]:
    """One run per (model, target): a run on all the training data before a
    learning-curve point (``train_fraction`` < 1); then, if ``dataset`` = (name, version)
    is given, a run trained on that data before one trained on another version (a short
    run on the data shipped now is the book's result, a long one on an older, smaller
    version is history); then the paper's protocol, one with CV, the most epochs, the
    most compounds, the most recent."""
    best: dict[tuple[str, str], Run] = {}
    for run in runs:
        for t in run.targets:
            key = (run.model, t)
            if key not in best or run_rank(run, dataset) > run_rank(best[key], dataset):
                best[key] = run
    return best


def runs_on_other_data(runs, dataset_name: str, dataset_version: str) -> list[str]:
    """One line per run trained on another dataset or version than ``dataset_name``
    ``dataset_version`` (the data loaded now, e.g. ``"0.5.0+235cpd"``): its numbers are
    those of the data it was trained on, which the line names with its compound count.

    >>> runs_on_other_data([], "leanecd-gpaw-cubic", "0.5.0+235cpd")
    []
    """
    lines = []
    for r in as_runs(runs):
        name, version = r.provenance.get("dataset_name"), r.provenance.get("dataset_version")
        if (name, version) != (dataset_name, dataset_version):
            n = r.config.get("data", {}).get("n_samples")
            lines.append(f"{r.name}: trained on {name} {version}" + (f" ({n} compounds)" if n else "")
                         + f", not on the data loaded now ({dataset_name} {dataset_version})")
    return lines


def same_split(a: Run, b: Run) -> bool:
    """True when two runs have the same train and test compounds."""
    return a.ids("train") == b.ids("train") and a.ids("test") == b.ids("test")


_CHECK_KEYS = ("cv_mae", "cv_nmae", "train_mae", "test_mae", "train_nmae", "test_nmae", "test_spread_ratio")


def check_run(run: Run | str | os.PathLike, atol: float = 1e-9) -> dict:
    """Compare ``metrics.json`` with the recomputation from ``predictions.csv``.

    Returns ``{key: {target: (stored, recomputed)}}`` for every metric both hold;
    raises :class:`LeanECDError` if any pair differs by more than ``atol`` (relative
    to max(1, |value|)).
    """
    run = as_runs(run)[0]
    again = recompute(run.predictions)
    report, bad = {}, []
    for key in _CHECK_KEYS:
        stored, new = run.metrics.get(key), again.get(key)
        if stored is None and (new is None or key == "test_spread_ratio"):  # runs from before the spread was stored
            continue
        if (stored is None) != (new is None):
            bad.append(f"{key}: stored {stored!r}, recomputed {new!r}")
            continue
        report[key] = {}
        for t, v in stored.items():
            w = new.get(t)
            report[key][t] = (v, w)
            if w is None or not math.isclose(v, w, rel_tol=0, abs_tol=atol * max(1.0, abs(v))):
                bad.append(f"{key}[{t}]: metrics.json {v!r} vs predictions.csv {w!r}")
    if bad:
        raise LeanECDError(f"{run.path}: metrics.json disagrees with predictions.csv: " + "; ".join(bad))
    return report
