"""Error metrics and the paper's result tables, recomputed from stored predictions (§4).

Metrics (every one in the units of the target, except the NMAEs, in %):

* :func:`mae` - mean |y − ŷ|;
* :func:`nmae` - the paper's normalised MAE (§4): mean |y − ŷ| / |mean(y)| × 100 over
  the set in question. The paper writes it as (1/N) Σ |(Sᵢ − Ŝᵢ) / S_average| × 100,
  so the mean enters in absolute value: total energies per atom are negative, and
  their NMAE is still positive;
* :func:`per_sample_nmae` - |yᵢ − ŷᵢ| / |mean(y)| × 100 for each sample (the quantity
  histogrammed in Fig. 6; its mean is :func:`nmae`);
* :func:`rmse` - √mean (y − ŷ)² (Table 3 compares bulk-modulus RMSEs);
* :func:`fraction_below` / :func:`fraction_above` - the share of samples whose
  per-sample NMAE lies below 10 % / above 30 % (the numbers the paper quotes for Fig. 6).

Result tables
-------------
A *run directory* is what :func:`leanecd.train.fit` writes (``config.json``,
``splits.json``, ``metrics.json``, ``predictions.csv`` in long format: ``id, split,
fold, target, y_true, y_pred``; split is ``cv`` (out-of-fold predictions of fold
``fold``), ``train`` or ``test`` (final model)), or what :mod:`leanecd.baselines`
writes in the same layout. :func:`read_run` reads one; :func:`find_runs` finds them
all under ``results/``.

:func:`table2`, :func:`table3` and :func:`learning_curve` (test error against
training-set size) RECOMPUTE every number from ``predictions.csv``
(:func:`recompute`); ``metrics.json`` is never the source of a table, only a
cross-check (:func:`check_run`). Each table carries rows that say exactly what was
run (epochs, CV folds, train/test sizes, device, mode), taken from the run's own
``config.json``, so a shortened run cannot pass for the paper's protocol. The
paper's own numbers sit in columns labelled :data:`PAPER_LABEL`: they were obtained
on a different dataset (JARVIS-DFT, OptB88vdW labels), so they are a reference,
not a target to match digit for digit.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import FileFormatError, LeanECDError
from .store import read_json

__all__ = [
    "mae",
    "nmae",
    "rmse",
    "per_sample_nmae",
    "fraction_below",
    "fraction_above",
    "Run",
    "read_run",
    "find_runs",
    "select_runs",
    "recompute",
    "check_run",
    "same_split",
    "paired_comparison",
    "format_table",
    "table2",
    "table3",
    "error_analysis",
    "learning_curve",
    "learning_curve_exponents",
    "verdict",
    "element_counts",
    "target_label",
    "canonical_target",
    "model_label",
    "PAPER_LABEL",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "PAPER_FIG6",
    "PREDICTION_COLUMNS",
    "COLLAPSE_SD_RATIO",
    "spread_ratio",
    "is_collapsed",
]

# --------------------------------------------------------------------------- metrics


def mae(y_true, y_pred) -> np.ndarray | float:
    """Mean absolute error per target column (same units as ``y``)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return np.mean(np.abs(y_true - y_pred), axis=0)


def nmae(y_true, y_pred) -> np.ndarray | float:
    """Normalised MAE in %: mean|y − ŷ| / |mean(y)| × 100, per target column (paper §4).

    The paper's formula, (1/N) Σ |(Sᵢ − Ŝᵢ)/S_average| × 100, takes the mean in
    absolute value, so a negative target (total energy per atom) has a positive NMAE.
    """
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return np.mean(np.abs(y_true - y_pred), axis=0) / np.abs(np.mean(y_true, axis=0)) * 100.0


def rmse(y_true, y_pred) -> np.ndarray | float:
    """Root-mean-square error per target column (same units as ``y``)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return np.sqrt(np.mean((y_true - y_pred) ** 2, axis=0))


#: A run is *collapsed* when its predictions' standard deviation is below this share
#: of the labels' over the same set: it predicts about one value for every compound.
COLLAPSE_SD_RATIO = 0.1


def spread_ratio(y_true, y_pred) -> np.ndarray | float:
    """Standard deviation of the predictions over that of the labels, per target column (1 = full spread)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    sd = np.std(y_true, axis=0)
    return np.std(y_pred, axis=0) / np.where(sd > 0, sd, np.nan)


def is_collapsed(y_true, y_pred) -> np.ndarray | bool:
    """True per target column where :func:`spread_ratio` < :data:`COLLAPSE_SD_RATIO` (a near-constant predictor)."""
    return np.asarray(spread_ratio(y_true, y_pred)) < COLLAPSE_SD_RATIO


def per_sample_nmae(y_true, y_pred, reference_mean=None) -> np.ndarray:
    """Per-sample NMAE in %: |yᵢ − ŷᵢ| / |ȳ| × 100 (the values histogrammed in Fig. 6).

    ``ȳ`` is ``reference_mean`` if given, else the mean of ``y_true`` over the set
    passed in (so ``per_sample_nmae(y, p).mean(axis=0) == nmae(y, p)``).
    """
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ref = np.mean(y_true, axis=0) if reference_mean is None else np.asarray(reference_mean, float)
    return np.abs(y_true - y_pred) / np.abs(ref) * 100.0


def fraction_below(values, threshold: float = 10.0) -> float:
    """Share (0–1) of ``values`` strictly below ``threshold`` (e.g. per-sample NMAE < 10 %)."""
    v = np.asarray(values, float).ravel()
    if v.size == 0:
        return float("nan")
    return float(np.mean(v < threshold))


def fraction_above(values, threshold: float = 30.0) -> float:
    """Share (0–1) of ``values`` strictly above ``threshold`` (e.g. per-sample NMAE > 30 %)."""
    v = np.asarray(values, float).ravel()
    if v.size == 0:
        return float("nan")
    return float(np.mean(v > threshold))


# --------------------------------------------------------------------------- names

#: Target names (as a run or labels.csv spells them) -> (canonical name, property, unit).
_TARGETS = {
    "bulk_modulus_GPa": ("bulk_modulus_GPa", "bulk modulus", "GPa"),
    "bulk_modulus": ("bulk_modulus_GPa", "bulk modulus", "GPa"),
    "bulk_modulus_kv": ("bulk_modulus_GPa", "bulk modulus", "GPa"),
    "energy_per_atom_eV": ("energy_per_atom_eV", "total energy", "eV/atom"),
    "total_energy": ("energy_per_atom_eV", "total energy", "eV/atom"),
    "optb88vdw_total_energy": ("energy_per_atom_eV", "total energy", "eV/atom"),
}

#: Display names of the models and baselines.
MODEL_LABELS = {
    "A": "Model A",
    "B": "Model B",
    "C": "Model C",
    "zhao": "Zhao et al. 3D-CNN (raw ρ)",
    "mirzaee": "Mirzaee et al. 3D-CNN (raw ρ)",
    "mean": "training mean",
    "rf": "random forest (composition)",
    "ridge": "ridge on the autocorrelation (linear)",
}

#: Order of the models in the tables.
MODEL_ORDER = ("A", "B", "C", "mean", "rf", "ridge", "zhao", "mirzaee")


def canonical_target(name: str) -> str:
    """``bulk_modulus_GPa`` / ``energy_per_atom_eV`` for the known spellings, else ``name``."""
    return _TARGETS.get(name, (name, name, ""))[0]


def target_label(name: str) -> str:
    """Human label with units, e.g. ``"bulk modulus (GPa)"``."""
    _, prop, unit = _TARGETS.get(name, (name, name, ""))
    return f"{prop} ({unit})" if unit else prop


def target_unit(name: str) -> str:
    return _TARGETS.get(name, (name, name, ""))[2]


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


# --------------------------------------------------------------------------- the paper's numbers

#: Column label of the paper's published values.
PAPER_LABEL = "paper (JARVIS OptB88vdW, 1,410 compounds; different dataset)"

#: Paper Table 2 (MAE in GPa / eV/atom) plus the test NMAEs quoted in §4 ("~7 %",
#: "~28 %" for Model A; 22.3 % / 31.9 % for the random forest on matminer features).
#: Keys: (model, canonical target) -> {row: value}; strings are quoted approximations.
PAPER_TABLE2 = {
    ("A", "bulk_modulus_GPa"): {"CV-MAE": 9.94, "Train-MAE": 7.49, "Test-MAE": 7.73, "Test-NMAE (%)": "≈7"},
    ("A", "energy_per_atom_eV"): {"CV-MAE": 0.82, "Train-MAE": 0.73, "Test-MAE": 0.78, "Test-NMAE (%)": "≈28"},
    ("B", "bulk_modulus_GPa"): {"CV-MAE": 14.42, "Train-MAE": 14.57, "Test-MAE": 15.33},
    ("B", "energy_per_atom_eV"): {"CV-MAE": 0.87, "Train-MAE": 0.81, "Test-MAE": 0.84},
    ("C", "bulk_modulus_GPa"): {"CV-MAE": 12.44, "Train-MAE": 10.74, "Test-MAE": 12.95},
    ("C", "energy_per_atom_eV"): {"CV-MAE": 0.86, "Train-MAE": 0.74, "Test-MAE": 0.95},
    ("rf", "bulk_modulus_GPa"): {"Test-NMAE (%)": 22.3},
    ("rf", "energy_per_atom_eV"): {"Test-NMAE (%)": 31.9},
}

#: Protocol of the paper's runs (§3.2, §4), for the protocol rows of the paper columns.
PAPER_PROTOCOL = {"epochs": "650", "CV folds": "9", "lr": "5e-3", "inputs": "not stated", "n train / n test": "≈1,269 / ≈141",
                  "device": "NVIDIA A100", "mode": "paper", "run": "Table 2 of the paper"}

#: Paper Fig. 6 as quoted in §4: shares of Model A's test compounds with a per-sample
#: NMAE below 10 % and above 30 % (approximate: "~70 %", "~5 %", "~55 %", "~12 %").
PAPER_FIG6 = {
    "bulk_modulus_GPa": {"below 10 %": 0.70, "above 30 %": 0.05},
    "energy_per_atom_eV": {"below 10 %": 0.55, "above 30 %": 0.12},
}

#: Paper Table 3: bulk-modulus models compared (RMSE in GPa).
PAPER_TABLE3 = [
    {"model": "lean CNN (paper, Model A)", "input": "F_r (autocorrelation)", "dataset": "JARVIS-DFT OptB88vdW",
     "dataset size": 1410, "structures": "FCC & SC", "trainable parameters": 80_825,
     "trainable parameters (printed)": "81K", "RMSE (GPa)": 10.11, "source": "paper, Table 3"},
    {"model": "3D-CNN (Zhao et al.)", "input": "ρ_s (raw density)", "dataset": "Zhao et al.'s",
     "dataset size": 2170, "structures": "FCC", "trainable parameters": 2_360_000,
     "trainable parameters (printed)": "2.36M", "RMSE (GPa)": 26.82, "source": "paper, Table 3 (literature)"},
    {"model": "3D-CNN (Mirzaee et al.)", "input": "ρ_s (raw density)", "dataset": "Mirzaee et al.'s",
     "dataset size": 2720, "structures": "FCC", "trainable parameters": 2_130_000,
     "trainable parameters (printed)": "2.13M", "RMSE (GPa)": 6.158, "source": "paper, Table 3 (literature)"},
]

METRIC_ROWS = ("CV-MAE", "Train-MAE", "Test-MAE", "CV-NMAE (%)", "Train-NMAE (%)", "Test-NMAE (%)", "Test-RMSE")
PROTOCOL_ROWS = ("epochs", "CV folds", "lr", "inputs", "n train / n test", "device", "mode", "run")

# --------------------------------------------------------------------------- runs

PREDICTION_COLUMNS = ["id", "split", "fold", "target", "y_true", "y_pred"]


@dataclass
class Run:
    """One run directory, read back.

    ``predictions``: the long-format DataFrame of ``predictions.csv`` (``fold`` is a
    nullable integer, ``y_true``/``y_pred`` float64, physical units); ``metrics``:
    ``metrics.json`` as stored; ``config``: ``config.json`` as stored (its
    ``"config"`` entry holds the training settings); ``provenance``: where the result
    came from (git commit, device, library versions, dataset version, time);
    ``splits``: ``splits.json`` (``None`` if absent).
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
        keys = [t for t in flags if target is None or canonical_target(t) == canonical_target(target)]
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
        lr = "n/a" if self.kind == "baseline" or lr is None else (f"{lr:g}" + ("" if lr == 5e-3 else " (paper: 5e-3; ours)"))
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


def _read_predictions(path: Path) -> pd.DataFrame:
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
    return df[PREDICTION_COLUMNS + [c for c in df.columns if c not in PREDICTION_COLUMNS]]


def read_run(run_dir: str | os.PathLike) -> Run:
    """Read a run directory: predictions (DataFrame), metrics, config and provenance."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileFormatError(run_dir, "not a run directory")
    preds = _read_predictions(run_dir / "predictions.csv")
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileFormatError(metrics_path, "no metrics.json: the run has not finished")
    metrics = read_json(metrics_path)
    config = read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    splits = read_json(run_dir / "splits.json") if (run_dir / "splits.json").is_file() else None
    prov = config.get("provenance") or metrics.get("provenance") or {}
    notes = [] if config else [f"{run_dir}: no config.json; settings taken from metrics.json"]
    if not config:
        config = {"config": {k: metrics.get(k) for k in ("model", "targets", "epochs", "folds", "mode")}}
    return Run(path=run_dir, predictions=preds, metrics=metrics, config=config, provenance=prov, splits=splits, notes=notes)


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
        print(f"not finished (no metrics.json/predictions.csv), left out: {', '.join(str(d) for d in unfinished)}")
    return runs


def _run_rank(run: Run, dataset: tuple[str, str] | None = None) -> tuple:
    """Preference among runs of the same model and target: all the training data (not a
    learning-curve point), trained on ``dataset`` (name, version) if given, the paper's
    protocol (650 epochs, 9-fold CV), then with CV, more epochs, more compounds, most recent."""
    n = run.predictions["id"].nunique()
    epochs = run.epochs if isinstance(run.epochs, int | float) else 0
    paper = epochs == 650 and run.folds == 9
    on_data = dataset is None or (run.provenance.get("dataset_name"), run.provenance.get("dataset_version")) == tuple(dataset)
    return (run.train_fraction == 1, on_data, paper, run.folds > 0, epochs, n,
            str(run.provenance.get("timestamp_utc", "")))


def select_runs(runs: Iterable[Run], dataset: tuple[str, str] | None = None) -> dict[tuple[str, str], Run]:
    """One run per (model, canonical target): a run on all the training data before a
    learning-curve point (``train_fraction`` < 1); then, if ``dataset`` = (name, version)
    is given, a run trained on that data before one trained on another version (a short
    run on the data shipped now is the book's result, a long one on an older, smaller
    version is history); then the paper's protocol, one with CV, the most epochs, the
    most compounds, the most recent."""
    best: dict[tuple[str, str], Run] = {}
    for run in runs:
        for t in run.targets:
            key = (run.model, canonical_target(t))
            if key not in best or _run_rank(run, dataset) > _run_rank(best[key], dataset):
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
    for r in _as_runs(runs):
        name, version = r.provenance.get("dataset_name"), r.provenance.get("dataset_version")
        if (name, version) != (dataset_name, dataset_version):
            n = r.config.get("data", {}).get("n_samples")
            lines.append(f"{r.name}: trained on {name} {version}" + (f" ({n} compounds)" if n else "")
                         + f", not on the data loaded now ({dataset_name} {dataset_version})")
    return lines


def _as_runs(runs) -> list[Run]:
    if isinstance(runs, Run | str | os.PathLike):
        runs = [runs]
    return [r if isinstance(r, Run) else read_run(r) for r in runs]


def same_split(a: Run, b: Run) -> bool:
    """True when two runs have the same train and test compounds."""
    return a.ids("train") == b.ids("train") and a.ids("test") == b.ids("test")


def paired_comparison(a: Run, b: Run, target: str, split: str = "test") -> dict:
    """Compare two runs on the compounds of ``split`` that both predicted ``target``.

    Returns ``{"n", "mae_a", "mae_b", "ratio" (mae_a / mae_b), "wins_a" (compounds where
    a's absolute error is smaller), "rmse_a", "rmse_b", "nmae_a", "nmae_b"}``. For
    ``split="cv"`` the out-of-fold predictions are compared (only meaningful when the
    two runs share their folds).
    """
    def errors(run):
        p = run.predictions
        names = [x for x in run.targets if canonical_target(x) == canonical_target(target)]
        if not names:
            raise LeanECDError(f"{run.path}: no target {target!r}")
        s = p[(p["split"] == split) & (p["target"] == names[0])]
        return s.drop_duplicates("id").set_index("id")[["y_true", "y_pred"]]

    ea, eb = errors(a), errors(b)
    common = sorted(set(ea.index) & set(eb.index))
    if not common:
        raise LeanECDError(f"{a.path} and {b.path} share no {split!r} compounds")
    ea, eb = ea.loc[common], eb.loc[common]
    da, db = (ea["y_pred"] - ea["y_true"]).abs(), (eb["y_pred"] - eb["y_true"]).abs()
    mae_a, mae_b = float(da.mean()), float(db.mean())
    return {
        "n": len(common), "mae_a": mae_a, "mae_b": mae_b, "ratio": mae_a / mae_b if mae_b else float("inf"),
        "wins_a": int((da < db).sum()),
        "rmse_a": float(rmse(ea["y_true"], ea["y_pred"])), "rmse_b": float(rmse(eb["y_true"], eb["y_pred"])),
        "nmae_a": float(nmae(ea["y_true"], ea["y_pred"])), "nmae_b": float(nmae(eb["y_true"], eb["y_pred"])),
    }


# --------------------------------------------------------------------------- recomputation


def recompute(predictions: pd.DataFrame) -> dict:
    """The metrics of ``metrics.json``, recomputed from a predictions DataFrame.

    Returns ``{"cv_mae", "cv_nmae", "cv_rmse", "cv_mae_per_fold", "train_mae",
    "test_mae", "train_nmae", "test_nmae", "train_rmse", "test_rmse",
    "test_spread_ratio", "collapsed", "n_train", "n_test", "folds"}``; each metric is
    ``{target: value}`` (``None`` when the split is absent). CV values are means over
    folds of the per-fold metric, as :func:`leanecd.train.fit` computes them;
    ``collapsed`` applies :func:`is_collapsed` to the test predictions.
    """
    df = predictions
    targets = list(dict.fromkeys(df["target"]))
    out: dict = {}
    cv = df[df["split"] == "cv"]
    folds = sorted(int(f) for f in cv["fold"].dropna().unique())
    if folds:
        per_fold = {t: [] for t in targets}
        per_fold_n = {t: [] for t in targets}
        per_fold_r = {t: [] for t in targets}
        for t in targets:
            for k in folds:
                s = cv[(cv["target"] == t) & (cv["fold"] == k)]
                per_fold[t].append(float(mae(s["y_true"], s["y_pred"])))
                per_fold_n[t].append(float(nmae(s["y_true"], s["y_pred"])))
                per_fold_r[t].append(float(rmse(s["y_true"], s["y_pred"])))
        out["cv_mae"] = {t: float(np.mean(v)) for t, v in per_fold.items()}
        out["cv_nmae"] = {t: float(np.mean(v)) for t, v in per_fold_n.items()}
        out["cv_rmse"] = {t: float(np.mean(v)) for t, v in per_fold_r.items()}
        out["cv_mae_per_fold"] = per_fold
    else:
        out.update(cv_mae=None, cv_nmae=None, cv_rmse=None, cv_mae_per_fold=None)
    for split in ("train", "test"):
        s = df[df["split"] == split]
        if s.empty:
            out.update({f"{split}_mae": None, f"{split}_nmae": None, f"{split}_rmse": None})
            out[f"n_{split}"] = 0
            continue
        out[f"{split}_mae"], out[f"{split}_nmae"], out[f"{split}_rmse"] = {}, {}, {}
        for t in targets:
            st = s[s["target"] == t]
            out[f"{split}_mae"][t] = float(mae(st["y_true"], st["y_pred"]))
            out[f"{split}_nmae"][t] = float(nmae(st["y_true"], st["y_pred"]))
            out[f"{split}_rmse"][t] = float(rmse(st["y_true"], st["y_pred"]))
        out[f"n_{split}"] = int(s["id"].nunique())
    test = df[df["split"] == "test"]
    out["test_spread_ratio"] = {t: float(spread_ratio(test.loc[test["target"] == t, "y_true"],
                                                      test.loc[test["target"] == t, "y_pred"]))
                                for t in targets} if len(test) > 1 else None
    out["collapsed"] = (None if out["test_spread_ratio"] is None else
                        {t: bool(v < COLLAPSE_SD_RATIO) for t, v in out["test_spread_ratio"].items()})
    out["folds"] = len(folds)
    return out


_CHECK_KEYS = ("cv_mae", "cv_nmae", "train_mae", "test_mae", "train_nmae", "test_nmae", "test_spread_ratio")


def check_run(run: Run | str | os.PathLike, atol: float = 1e-9) -> dict:
    """Compare ``metrics.json`` with the recomputation from ``predictions.csv``.

    Returns ``{key: {target: (stored, recomputed)}}`` for every metric both hold;
    raises :class:`LeanECDError` if any pair differs by more than ``atol`` (relative
    to max(1, |value|)).
    """
    run = _as_runs(run)[0]
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


# --------------------------------------------------------------------------- Table 2


def _fmt(x):
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return None
    return float(x)


def table2(runs, models: Sequence[str] | None = None, targets: Sequence[str] = ("bulk_modulus_GPa", "energy_per_atom_eV"),
           paper: bool = True, missing: str = "not run yet", pick: str = "preferred",
           dataset: tuple[str, str] | None = None) -> pd.DataFrame:
    """The paper's Table 2 for ``runs`` (run directories or :class:`Run`), recomputed.

    Rows: CV-MAE, Train-MAE, Test-MAE (in the target's units: the column names say
    which), CV-, Train-, Test-NMAE (%), Test-RMSE, then the protocol rows (epochs, CV
    folds, n train / n test, device, mode, run), which say exactly what was run.
    Columns: a MultiIndex (model, property (unit), source) where source is ``"ours"``
    or :data:`PAPER_LABEL` (the paper's published numbers, where it has them).

    ``models``: the models to show, in order (default: A, B, C and every other model
    found in ``runs``); a model/target without a run gets ``missing`` in its cells.
    ``pick="preferred"`` keeps one run per (model, target) (:func:`select_runs`, which
    prefers runs on ``dataset`` = (name, version) when given);
    ``pick="all"`` shows every run, the source reading ``"ours: <run name>"``.
    Every number comes from ``predictions.csv`` via :func:`recompute`; a metric that
    does not exist for a run (CV-MAE of a final-only run) is ``"— (no CV)"``.
    """
    runs = _as_runs(runs)
    if pick not in ("preferred", "all"):
        raise LeanECDError(f"pick must be 'preferred' or 'all', not {pick!r}")
    found_models = list(dict.fromkeys(r.model for r in runs))
    if models is None:
        models = ["A", "B", "C"] + [m for m in MODEL_ORDER if m in found_models and m not in ("A", "B", "C")]
        models += [m for m in found_models if m not in models]
    targets = [canonical_target(t) for t in targets]
    by_key: dict[tuple[str, str], list[Run]] = {}
    if pick == "preferred":
        for k, r in select_runs(runs, dataset).items():
            by_key[k] = [r]
    else:
        for r in runs:
            for t in r.targets:
                by_key.setdefault((r.model, canonical_target(t)), []).append(r)

    rows = list(METRIC_ROWS) + ["units"] + list(PROTOCOL_ROWS)
    columns, data = [], []
    for m in models:
        for t in targets:
            prop = target_label(t)
            key = (m, t)
            runs_here = by_key.get(key, [])
            if not runs_here:
                col = {r: missing for r in rows}
                col["units"] = target_unit(t)
                columns.append((model_label(m), prop, "ours"))
                data.append(col)
            for r in runs_here:
                tname = next(x for x in r.targets if canonical_target(x) == t)
                rec = recompute(r.predictions)
                col = {
                    "CV-MAE": _fmt(rec["cv_mae"][tname]) if rec["cv_mae"] else "— (no CV)",
                    "Train-MAE": _fmt(rec["train_mae"][tname]) if rec["train_mae"] else None,
                    "Test-MAE": _fmt(rec["test_mae"][tname]) if rec["test_mae"] else None,
                    "CV-NMAE (%)": _fmt(rec["cv_nmae"][tname]) if rec["cv_nmae"] else "— (no CV)",
                    "Train-NMAE (%)": _fmt(rec["train_nmae"][tname]) if rec["train_nmae"] else None,
                    "Test-NMAE (%)": _fmt(rec["test_nmae"][tname]) if rec["test_nmae"] else None,
                    "Test-RMSE": _fmt(rec["test_rmse"][tname]) if rec["test_rmse"] else None,
                    "units": target_unit(t),
                }
                col.update(r.protocol())
                source = "ours" if pick == "preferred" else f"ours: {r.name}"
                columns.append((model_label(m), prop, source))
                data.append(col)
            if paper and key in PAPER_TABLE2:
                col = {r: "—" for r in rows}
                col.update(PAPER_TABLE2[key])
                col.update(PAPER_PROTOCOL)
                if m == "rf":
                    col.update({"epochs": "n/a", "CV folds": "?", "lr": "n/a", "inputs": "n/a", "device": "?",
                                "run": "§4 text (random forest, matminer composition features)"})
                col["units"] = target_unit(t)
                columns.append((model_label(m), prop, PAPER_LABEL))
                data.append(col)
    table = pd.DataFrame({c: pd.Series(d) for c, d in zip(columns, data)}, index=rows)
    table.columns = pd.MultiIndex.from_tuples(columns, names=["model", "property (unit)", "source"])
    table.index.name = "metric"
    return table


def format_table(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Numbers to strings with ``digits`` significant digits (3 by default), for display."""
    def f(x):
        if isinstance(x, bool) or x is None:
            return "—" if x is None else str(x)
        if isinstance(x, int | np.integer):
            return f"{x:,}"
        if isinstance(x, float | np.floating):
            if not np.isfinite(x):
                return "—"
            return f"{x:.{digits}g}" if abs(x) < 10 ** digits else f"{x:,.0f}"
        return x
    return table.map(f) if hasattr(table, "map") else table.applymap(f)


# --------------------------------------------------------------------------- Table 3


def _parameter_count(run: Run):
    if run.kind == "baseline":
        n = run.metrics.get("n_parameters")
        return n if n is not None else "n/a"
    from .models import build_model, count_parameters

    shape = run.config.get("data", {}).get("input_shape")
    in_size = int(shape[-1]) if shape else None
    try:
        return count_parameters(build_model(run.model, in_size=in_size, n_outputs=len(run.targets)))
    except Exception:  # noqa: BLE001 - an unknown model still gets a row
        return "?"


def table3(runs, target: str = "bulk_modulus_GPa", literature: bool = True) -> pd.DataFrame:
    """Paper Table 3: bulk-modulus test RMSE (GPa) and trainable parameters.

    One row per run in ``runs`` that predicts ``target`` (RMSE recomputed from its
    test predictions; the parameter count from the model as built, or the
    baseline's own count), then the paper's three rows (:data:`PAPER_TABLE3`).
    The protocol columns (epochs, CV folds, n train / n test, device) say what was run.
    """
    runs = _as_runs(runs)
    t = canonical_target(target)
    rows = []
    for r in runs:
        names = [x for x in r.targets if canonical_target(x) == t]
        if not names:
            continue
        rec = recompute(r.predictions)
        p = r.protocol()
        inp = "F_r (autocorrelation)" if r.model in ("A", "B", "C") else (
            "ρ_s (raw density)" if r.model in ("zhao", "mirzaee") else "composition" if r.model == "rf" else
            "F_r (autocorrelation, every 5th point)" if r.model == "ridge" else "none")
        rows.append({
            "model": f"{model_label(r.model)} (ours)",
            "input": inp,
            "dataset": f"embedded GPAW-PBE v{r.provenance.get('dataset_version')}" if r.provenance.get("dataset_version")
            else "ours",
            "dataset size": int(r.predictions["id"].nunique()),
            "structures": "FCC & SC",
            "trainable parameters": _parameter_count(r),
            "RMSE (GPa)": rec["test_rmse"][names[0]] if rec["test_rmse"] else None,
            "epochs": p["epochs"], "CV folds": p["CV folds"], "n train / n test": p["n train / n test"],
            "device": p["device"], "source": r.name,
        })
    if literature:
        for row in PAPER_TABLE3:
            lean = row["model"].startswith("lean")
            rows.append({k: v for k, v in row.items() if k != "trainable parameters (printed)"}
                        | {"trainable parameters": row["trainable parameters (printed)"],
                           "epochs": "650" if lean else "—", "CV folds": "9" if lean else "—",
                           "n train / n test": PAPER_PROTOCOL["n train / n test"] if lean else "—",
                           "device": PAPER_PROTOCOL["device"] if lean else "—"})
    cols = ["model", "input", "dataset", "dataset size", "structures", "trainable parameters", "RMSE (GPa)",
            "epochs", "CV folds", "n train / n test", "device", "source"]
    return pd.DataFrame(rows, columns=cols).set_index("model")


# --------------------------------------------------------------------------- learning curve

LEARNING_CURVE_COLUMNS = ["model", "target", "epochs", "train_fraction", "n_train", "n_test", "test_mae",
                          "test_nmae", "test_spread_ratio", "collapsed", "run"]


def learning_curve(runs, model: str | None = None, target: str | None = None,
                   verbose: bool = True) -> pd.DataFrame:
    """Test error against training-set size, one curve per model, target and epochs.

    ``runs``: a results directory (searched with :func:`find_runs`) or run
    directories / :class:`Run` objects. A curve is anchored by the runs with
    ``train_fraction`` < 1 of one (model, target, epochs); they must all share one
    test set (the same compound ids), else :class:`LeanECDError`. The full-data
    runs (``train_fraction`` 1) of the same model, target and epochs with that
    test set add the point at ``train_fraction`` 1 (the preferred one,
    :func:`select_runs`'s order, if several); those on another test set are left
    out, with a printed line when ``verbose``. ``model``/``target``: keep only
    these (default: all). Without any ``train_fraction`` < 1 run the frame is empty.

    Returns a tidy DataFrame with :data:`LEARNING_CURVE_COLUMNS`: test_mae in the
    target's units, test_nmae in %, the test predictions' spread and whether the run
    collapsed (:func:`is_collapsed`: never fit a curve through such a point), all
    recomputed from ``predictions.csv``;
    n_train and n_test are compounds; sorted by model, target, epochs, n_train.
    """
    is_results_dir = isinstance(runs, str | os.PathLike) and not (Path(runs) / "metrics.json").is_file()
    runs = find_runs(runs, verbose=verbose) if is_results_dir else _as_runs(runs)
    want = None if target is None else canonical_target(target)
    curves: dict[tuple, list[tuple[str, Run]]] = {}
    for r in runs:
        if r.kind != "cnn" or (model is not None and r.model != model):
            continue
        for t in r.targets:
            if want is None or canonical_target(t) == want:
                curves.setdefault((r.model, canonical_target(t), r.epochs), []).append((t, r))

    rows = []
    for (m, t, epochs), members in sorted(curves.items(), key=lambda kv: tuple(map(str, kv[0]))):
        reduced = [(name, r) for name, r in members if r.train_fraction < 1]
        if not reduced:
            continue
        test_sets = {tuple(r.ids("test")) for _, r in reduced}
        if len(test_sets) > 1:
            listing = "; ".join(f"{r.path} ({len(r.ids('test'))} test compounds)" for _, r in reduced)
            raise LeanECDError(f"learning curve of {model_label(m)}, {target_label(t)}, {epochs} epochs mixes runs "
                               f"with different test sets, whose errors are not comparable: {listing}; "
                               "pass only the runs of one curve")
        test = test_sets.pop()
        full = [(name, r) for name, r in members if r.train_fraction == 1]
        same = [(name, r) for name, r in full if tuple(r.ids("test")) == test]
        if verbose:
            for _, r in full:
                if tuple(r.ids("test")) != test:
                    print(f"{r.path}: test set differs from the learning-curve runs of {model_label(m)}, "
                          f"{target_label(t)}, {epochs} epochs; left out of that curve")
        if same:
            reduced.append(max(same, key=lambda nr: _run_rank(nr[1])))
        for name, r in reduced:
            rec = recompute(r.predictions)
            rows.append({"model": m, "target": t, "epochs": epochs, "train_fraction": r.train_fraction,
                         "n_train": rec["n_train"], "n_test": rec["n_test"], "test_mae": rec["test_mae"][name],
                         "test_nmae": rec["test_nmae"][name], "test_spread_ratio": rec["test_spread_ratio"][name],
                         "collapsed": rec["collapsed"][name], "run": r.name})
    df = pd.DataFrame(rows, columns=LEARNING_CURVE_COLUMNS)
    return df.sort_values(["model", "target", "epochs", "n_train"], ignore_index=True)


def learning_curve_exponents(df: pd.DataFrame, min_points: int = 3) -> pd.DataFrame:
    """The power law MAE ∝ n^slope fitted (least squares in log–log) to each curve of a learning-curve frame.

    Collapsed runs (column ``collapsed``) are left out: a near-constant predictor
    measures the spread of the labels, not what data buy. A curve with fewer than
    ``min_points`` other points gets no exponent (``slope`` NaN) and says why.
    Returns model, target, epochs, slope, n_min, n_max, points, left_out, note.
    """
    rows = []
    for (m, t, epochs), d in df.groupby(["model", "target", "epochs"], dropna=False, sort=True):
        d = d.sort_values("n_train")
        bad = d["collapsed"].fillna(False).astype(bool) if "collapsed" in d else pd.Series(False, d.index)
        ok = d[~bad]
        note = ""
        slope = float("nan")
        if len(ok) >= min_points:
            slope = float(np.polyfit(np.log(ok["n_train"].astype(float)), np.log(ok["test_mae"].astype(float)), 1)[0])
        else:
            note = f"no exponent: {len(ok)} point(s) that did not collapse, {min_points} needed"
        rows.append({"model": m, "target": t, "epochs": epochs, "slope": slope,
                     "n_min": int(ok["n_train"].min()) if len(ok) else None,
                     "n_max": int(ok["n_train"].max()) if len(ok) else None,
                     "points": len(ok), "left_out": [int(n) for n in d.loc[bad, "n_train"]], "note": note})
    return pd.DataFrame(rows, columns=["model", "target", "epochs", "slope", "n_min", "n_max", "points", "left_out",
                                       "note"])


def verdict(cnn: Run, others: Iterable[Run], target: str) -> str:
    """One sentence (Markdown) saying how a lean-CNN run compares with other runs on the same test set.

    Test MAEs are recomputed from the predictions; the sentence names the winner, the
    ratio to the runner-up or to the best competitor, whether the CNN collapsed, and
    the CNN's protocol (epochs, folds, data version).
    """
    t = canonical_target(target)

    def test_mae(r: Run) -> float:
        name = next(x for x in r.targets if canonical_target(x) == t)
        return float(recompute(r.predictions)["test_mae"][name])

    pool = [r for r in others if any(canonical_target(x) == t for x in r.targets) and r.ids("test") == cnn.ids("test")]
    unit = target_unit(t)
    mine = test_mae(cnn)
    scored = sorted(((test_mae(r), r) for r in pool), key=lambda x: x[0])
    protocol = (f"{cnn.epochs} epochs, {f'{cnn.folds}-fold CV' if cnn.folds else 'final fit only'}, "
                f"data {cnn.provenance.get('dataset_version')}, {len(cnn.ids('test'))} test compounds")
    head = f"**{target_label(t)}**: {model_label(cnn.model)} test MAE {mine:.3g} {unit}"
    if cnn.collapsed(t):
        head += " — **collapsed** (it predicts about one value for every compound)"
    if not scored:
        return f"{head} ({protocol}); no baseline on the same test set."
    best_mae, best = scored[0]
    if mine < best_mae:
        return (f"{head}: **beats every baseline**; the best of them, the {model_label(best.model)}, has "
                f"{best_mae:.3g} {unit}, {best_mae / mine:.2f}× the CNN's error ({protocol}).")
    beaten = [model_label(r.model) for v, r in scored if v > mine]
    tail = f"; it beats the {', the '.join(beaten)}" if beaten else "; it beats none of them"
    return (f"{head}: **loses to the {model_label(best.model)}** ({best_mae:.3g} {unit}; the CNN's error is "
            f"{mine / best_mae:.2f}× that){tail} ({protocol}).")


# --------------------------------------------------------------------------- error analysis


def element_counts(ids: Iterable[str], table: pd.DataFrame) -> Counter:
    """How many of the compounds ``ids`` contain each element (``table["elements"]``)."""
    c: Counter = Counter()
    for i in ids:
        c.update(set(table.loc[i, "elements"]))
    return c


def error_analysis(run: Run | str | os.PathLike, table: pd.DataFrame, target: str | None = None,
                   split: str = "test") -> pd.DataFrame:
    """Per-compound errors of one split, joined with the dataset table.

    ``table``: the dataset's table (``load_dataset(...).table``: formula, prototype,
    elements, a0_A ...). ``split``: ``"test"`` (final model on the test set), ``"cv"``
    (out-of-fold predictions) or ``"train"``. Columns: formula, prototype, elements,
    a0_A (Å), y_true, y_pred, error (ŷ − y), abs_error, nmae_% (per sample, relative
    to the mean of y over the split), rarest_element and its count among the training
    compounds of that prediction (the final fit's 90 % for test/train, the other
    folds for cv), sorted by abs_error, largest first. Compounds missing from
    ``table`` keep NaN there (the dataset may have changed since the run).
    """
    run = _as_runs(run)[0]
    target = target or run.targets[0]
    df = run.predictions
    s = df[(df["split"] == split) & (df["target"] == target)].copy()
    if s.empty:
        raise LeanECDError(f"{run.path}: no {split!r} predictions for target {target!r}")
    s["error"] = s["y_pred"] - s["y_true"]
    s["abs_error"] = s["error"].abs()
    s["nmae_%"] = per_sample_nmae(s["y_true"], s["y_pred"])
    train_ids = df.loc[(df["split"] == "train") & (df["target"] == target), "id"]
    known = table.index
    cols = [c for c in ("formula", "prototype", "elements", "a0_A", "n_elements") if c in table.columns]
    info = table.reindex(s["id"])[cols].reset_index(drop=True)
    s = pd.concat([s.reset_index(drop=True), info], axis=1)
    rare, rare_n = [], []
    base_counts = element_counts([i for i in train_ids if i in known], table) if split != "cv" else None
    for _, row in s.iterrows():
        if row["id"] not in known:
            rare.append(None)
            rare_n.append(np.nan)
            continue
        if split == "cv":
            others = df.loc[(df["split"] == "cv") & (df["target"] == target) & (df["fold"] != row["fold"]), "id"]
            counts = element_counts([i for i in others if i in known], table)
        else:
            counts = base_counts
        els = sorted(set(table.loc[row["id"], "elements"]), key=lambda e: (counts.get(e, 0), e))
        # a test compound is never in the training set; a train compound counts itself: exclude it
        own = 1 if split == "train" else 0
        rare.append(els[0])
        rare_n.append(counts.get(els[0], 0) - own)
    s["rarest_element"] = rare
    s["rarest_element_train_count"] = rare_n
    keep = ["id", "fold"] + cols + ["y_true", "y_pred", "error", "abs_error", "nmae_%", "rarest_element",
                                    "rarest_element_train_count"]
    return s[keep].sort_values("abs_error", ascending=False).reset_index(drop=True)
