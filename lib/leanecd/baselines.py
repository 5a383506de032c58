"""Baselines for the lean CNNs, measured on the SAME split as a CNN run (paper §4).

A result means little without something simple to beat. Three baselines:

``mean``
    Predict the training-set mean of the target for every compound. Its MAE is the
    mean absolute deviation of the test labels from the training mean: a model that
    does not beat it has learnt nothing.

``rf``
    A random forest (scikit-learn ``RandomForestRegressor``, 500 trees, otherwise
    default settings, fixed seed) on composition-only features: no structure, no
    density. The paper (§4) trained random forests on matminer's composition
    features and quotes test NMAEs of 22.3 % (bulk modulus) and 31.9 % (total
    energy). Our features are *Magpie-style*, NOT matminer's Magpie preset: see
    :func:`leanecd.composition.composition_features` for exactly what they are.

``ridge``
    A linear model on the CNN's own input: ridge regression (scikit-learn
    ``RidgeCV``, the penalty chosen by leave-one-out over 10⁻²…10⁵ on standardised
    features) on the autocorrelation subsampled to every :data:`RIDGE_STEP`-th grid
    point (11³ = 1,331 values of the 51³ grid, 1 Å apart). A lean CNN that does not
    beat it has not earned its convolutions. Ours, not the paper's.

``zhao``
    The heavy literature 3D-CNN of Zhao et al. (:func:`leanecd.models.build_model`
    ``("zhao")``, ~2 M parameters) on the raw density ρ instead of its
    autocorrelation, trained by :func:`leanecd.train.fit` with the same protocol and
    the same split (:func:`run_zhao_baseline`; expensive, a GPU job at full length).
    Its input is described in :func:`raw_density_grid`.

The split
---------
Every baseline is evaluated on the train/test split (and the CV folds, where the
run has them) of a reference CNN run: :func:`split_from_run` reads the run's
``splits.json`` (which ids were train, test, in which fold, and the order in which
:func:`leanecd.splits.split_indices` saw them), so the baseline sees exactly the
compounds the CNN saw. Without a run, :func:`leanecd.splits.split_for_ids` applies
:func:`~leanecd.splits.split_indices` / :func:`~leanecd.splits.kfold_indices` with the
same seed and 10 % test fraction to a list of ids, which is what
:func:`leanecd.train.fit` does for the same ids in the same order.

Output
------
:func:`run_baseline` writes ``results/baselines/<name>-<reference run>/`` in the
layout of a training run (``config.json`` with a ``"baseline"`` entry and the
provenance, ``splits.json`` with ids, ``predictions.csv`` in the long format ``id,
split, fold, target, y_true, y_pred``, ``metrics.json`` with the same keys as a
training run's, computed by :func:`leanecd.metrics.recompute` from the predictions),
all written by :mod:`leanecd.runs`, so :func:`leanecd.tables.table2` reads baselines and
CNN runs alike. The baselines are named in :mod:`leanecd.registry` (kind ``"baseline"``).

Command line::

    python -m leanecd.baselines --reference results/A-bulk_modulus_GPa-... [--names mean rf]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import registry
from .cells import to_conventional
from .composition import composition_feature_table
from .data import load_dataset
from .errors import FileFormatError, LeanECDError
from .execution import device_select, provenance
from .features import dataset_features
from .lattice import find_cubic_cell
from .metrics import recompute
from .runs import (
    PREDICTION_COLUMNS,
    Run,
    read_config,
    read_run,
    write_config,
    write_metrics,
    write_predictions,
    write_splits,
)
from .settings import SETTINGS
from .splits import TEST_FRACTION, Split, split_indices, train_subset
from .tables import LEARNING_CURVE_COLUMNS
from .train import fit
from .trainconfig import TrainConfig

__all__ = [
    "split_from_run",
    "autocorrelation_feature_table",
    "make_ridge",
    "RIDGE_STEP",
    "MeanPredictor",
    "make_random_forest",
    "run_baseline",
    "learning_curve",
    "baselines_for_run",
    "raw_density_grid",
    "raw_density_inputs",
    "run_zhao_baseline",
    "DESCRIPTIONS",
]


DESCRIPTIONS = {
    "mean": "predicts the training-set mean of the target for every compound",
    "rf": ("scikit-learn RandomForestRegressor (500 trees, defaults otherwise) on Magpie-style composition "
           "features: stoichiometry-weighted mean, min, max, range and mean absolute deviation of 21 "
           "elemental properties (Magpie's elemental table as shipped with jarvis-tools) + number of elements; "
           "not matminer's Magpie preset"),
    "ridge": ("scikit-learn RidgeCV (alphas 1e-2..1e5, leave-one-out) on standardised autocorrelations "
              "subsampled to every 5th grid point (11^3 = 1,331 features, 1 A apart)"),
    "zhao": ("Zhao et al. 3D-CNN (Table 1) on the raw density ρ resampled onto a fixed in_size³ grid of the "
             "conventional cube, trained by leanecd.train.fit with the same protocol and split"),
}


# --------------------------------------------------------------------------- the split of a run


def split_from_run(run: Run | str | os.PathLike) -> Split:
    """The split of a training run: its compound ids, folds and order, from ``splits.json``."""
    run = run if isinstance(run, Run) else read_run(run)
    if run.splits is None:
        raise FileFormatError(run.path / "splits.json", "no splits.json: the run's split is unknown")
    sp = run.splits
    settings = run.settings
    return Split(trainval=list(sp["trainval_ids"]), test=list(sp["test_ids"]), folds=[list(f) for f in sp["fold_ids"]],
                 seed=int(settings.get("seed", SETTINGS.seed)),
                 test_fraction=float(settings.get("test_fraction", TEST_FRACTION)),
                 order=None if sp["order"] is None else list(sp["order"]),
                 source=f"the split of run {run.path}", reference=str(run.path))


# --------------------------------------------------------------------------- models


class MeanPredictor:
    """Predicts the training mean (per target column). scikit-learn style fit/predict."""

    def fit(self, X, y):
        y = np.asarray(y, float)
        self.mean_ = y.mean(axis=0)
        return self

    def predict(self, X):
        return np.full((len(X),) + np.shape(self.mean_), self.mean_, dtype=float)


#: Grid stride of the ``ridge`` baseline's features: every 5th point of the 51³ grid (1 Å apart).
RIDGE_STEP = 5


def autocorrelation_feature_table(ids: Sequence[str], X, step: int = RIDGE_STEP) -> pd.DataFrame:
    """The ``ridge`` baseline's features: autocorrelations ``X`` (N, n, n, n, e/Å³) on every
    ``step``-th point, by id."""
    X = np.asarray(X)
    if X.ndim == 5:
        X = X[:, 0]
    if X.ndim != 4 or len(X) != len(ids):
        raise LeanECDError(f"autocorrelations must be (N, n, n, n) with N = {len(ids)} ids; got {X.shape}")
    sub = X[:, ::step, ::step, ::step].reshape(len(ids), -1).astype(np.float64)
    return pd.DataFrame(sub, index=[str(i) for i in ids])


def make_ridge():
    """The ``ridge`` baseline's model: standardise, then ridge with a leave-one-out choice of the penalty."""
    # scikit-learn here: it takes seconds to import and only these two makers need it
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15)))


def make_random_forest(seed: int = SETTINGS.seed, n_estimators: int = 500):
    """The random forest of the ``rf`` baseline (scikit-learn, one thread, fixed seed)."""
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=n_estimators, random_state=seed, n_jobs=1)


def _make(name: str, seed: int):
    if name == "mean":
        return MeanPredictor()
    if name == "rf":
        return make_random_forest(seed)
    if name == "ridge":
        return make_ridge()
    known = ", ".join(repr(n) for n in registry.model_names("baseline"))
    raise LeanECDError(f"unknown baseline {name!r}: {known} (the 'zhao' CNN: run_zhao_baseline)")


def run_baseline(name: str, table: pd.DataFrame, targets: Sequence[str], split: Split,
                 out_dir: str | os.PathLike | None = None, labels: pd.DataFrame | None = None,
                 dataset_name: str | None = None, dataset_version: str | None = None,
                 features: pd.DataFrame | None = None) -> Run:
    """Fit and evaluate baseline ``name`` (``"mean"``, ``"rf"`` or ``"ridge"``) on ``split``.

    ``table``: the dataset table (index: ids; a ``formula`` column for ``rf``).
    ``features``: for ``ridge``, :func:`autocorrelation_feature_table` of (at least) the split's ids.
    ``labels``: id-indexed DataFrame of the target columns (default: ``table``).
    For every target: one model per CV fold (trained on the other folds, predicting
    the held-out fold) and one on the whole train+CV set, predicting train and test.
    Writes a run directory to ``out_dir`` if given. Returns the :class:`~leanecd.runs.Run`.
    """
    t0 = time.perf_counter()
    targets = [targets] if isinstance(targets, str) else list(targets)
    labels = table if labels is None else labels
    ids = list(split.trainval) + list(split.test)
    unknown = [i for i in ids if i not in labels.index]
    if unknown:
        raise LeanECDError(f"baseline {name}: ids of the split missing from the labels: {unknown[:5]}")
    if name == "rf":
        missing = [i for i in ids if i not in table.index]
        if missing:
            raise LeanECDError(f"baseline rf: ids of the split missing from the dataset table: {missing[:5]}")
        X = composition_feature_table(table.loc[ids, "formula"])
    elif name == "ridge":
        if features is None:
            raise LeanECDError("baseline ridge needs the autocorrelations: "
                               "features=autocorrelation_feature_table(ids, X)")
        missing = [i for i in ids if i not in features.index]
        if missing:
            raise LeanECDError(f"baseline ridge: ids of the split without autocorrelation features: {missing[:5]}")
        X = features.loc[ids]
    else:
        X = pd.DataFrame(index=ids, data={"none": np.zeros(len(ids))})
    rows = []
    n_params = 0
    for t in targets:
        y = labels.loc[ids, t].astype(float)
        for k, val in enumerate(split.folds, start=1):
            tr = [i for i in split.trainval if i not in set(val)]
            m = _make(name, split.seed + k).fit(X.loc[tr].to_numpy(), y.loc[tr].to_numpy())
            for i, p in zip(val, m.predict(X.loc[val].to_numpy())):
                rows.append((i, "cv", k, t, y.loc[i], p))
        m = _make(name, split.seed).fit(X.loc[split.trainval].to_numpy(), y.loc[split.trainval].to_numpy())
        for s, group in (("train", split.trainval), ("test", split.test)):
            if group:
                for i, p in zip(group, m.predict(X.loc[group].to_numpy())):
                    rows.append((i, s, None, t, y.loc[i], p))
        n_params += 1 if name == "mean" else 0
    preds = pd.DataFrame(rows, columns=PREDICTION_COLUMNS)
    preds["fold"] = preds["fold"].astype("Int64")
    preds["y_true"] = preds["y_true"].astype(float)
    preds["y_pred"] = preds["y_pred"].astype(float)
    metrics = recompute(preds)
    prov = provenance(torch.device("cpu"), dataset_version, dataset_name)
    prov["device_name"] = "cpu (scikit-learn)" if name in ("rf", "ridge") else "cpu (numpy)"
    metrics.update({
        "targets": targets, "model": name, "mode": "baseline", "shortcuts": [],
        "epochs": None, "n_parameters": n_params if name == "mean" else None,
        "model_note": DESCRIPTIONS[name],
        "wall_time_s_this_call": time.perf_counter() - t0, "provenance": prov,
    })
    config = {
        "config": {"model": name, "targets": targets, "epochs": None, "folds": len(split.folds), "seed": split.seed,
                   "test_fraction": split.test_fraction, "mode": "baseline"},
        "shortcuts": [],
        "provenance": prov,
        "data": {"n_samples": len(ids), "n_used": len(ids), "targets": targets,
                 "features": list(X.columns) if name == "rf" else []},
        "baseline": {"name": name, "description": DESCRIPTIONS[name], "split_source": split.source,
                     "reference_run": split.reference},
    }
    splits = {"trainval_ids": split.trainval, "test_ids": split.test, "fold_ids": split.folds, "order": split.order,
              "source": split.source}
    path = Path(out_dir) if out_dir is not None else Path(f"<in memory: {name} baseline>")
    if out_dir is not None:
        path.mkdir(parents=True, exist_ok=True)
        write_config(path, config)
        write_splits(path, splits, replace=True)
        write_predictions(path / "predictions.csv", rows)
        write_metrics(path, metrics)
    return Run(path=path, predictions=preds, metrics=metrics, config=config, provenance=prov, splits=splits)


def baselines_for_run(reference: Run | str | os.PathLike, table: pd.DataFrame, names: Sequence[str] = ("mean", "rf"),
                      out_root: str | os.PathLike | None = None, dataset_name: str | None = None,
                      dataset_version: str | None = None, features: pd.DataFrame | None = None) -> dict[str, Run]:
    """Run the baselines ``names`` on the split and targets of a CNN run (``features``: for ``ridge``).

    The labels are the run's own ``y_true`` (so the comparison holds even if the
    dataset has grown or changed since); ``table`` supplies the formulas. With
    ``out_root`` each baseline is written to ``<out_root>/<name>-<reference run name>/``.
    """
    ref = reference if isinstance(reference, Run) else read_run(reference)
    split = split_from_run(ref)
    p = ref.predictions[ref.predictions["split"].isin(["train", "test"])]
    labels = p.pivot_table(index="id", columns="target", values="y_true", aggfunc="first")
    prov = ref.provenance or {}
    dataset_name = dataset_name or prov.get("dataset_name")
    dataset_version = dataset_version or prov.get("dataset_version")
    out = {}
    for name in names:
        out_dir = None if out_root is None else Path(out_root) / f"{name}-{ref.name}"
        out[name] = run_baseline(name, table, ref.targets, split, out_dir=out_dir, labels=labels,
                                 dataset_name=dataset_name, dataset_version=dataset_version, features=features)
    return out


def learning_curve(table: pd.DataFrame, targets: Sequence[str], names: Sequence[str] = ("mean", "rf"),
                   fractions: Sequence[float] = (0.125, 0.25, 0.5, 1.0), ids: Sequence[str] | None = None,
                   seed: int = SETTINGS.seed, test_fraction: float = TEST_FRACTION,
                   features: pd.DataFrame | None = None) -> pd.DataFrame:
    """Test error of the baselines ``names`` against training-set size, on ``table`` as it is now.

    The split is the one :func:`leanecd.train.fit` makes for ``ids`` (default: the table's
    order, the order in which a dataset is featurised): the same 10 % test compounds at
    every size, and training on the nested share :func:`leanecd.splits.train_subset` of
    the 90 % for each of ``fractions``, as ``fit(..., train_fraction=f)`` trains Model A.
    So a CNN learning curve trained on the same data has the same test set and can be
    drawn on the same axes. Cheap (seconds): nothing is written.

    Returns a frame with :data:`leanecd.tables.LEARNING_CURVE_COLUMNS` (``epochs`` is
    ``None``; test_mae in the target's units, test_nmae in %), for
    :func:`leanecd.resultplots.learning_curve`.

    >>> t = pd.DataFrame({"formula": ["X"] * 40, "B": np.arange(40.0)}, index=[f"c{i}" for i in range(40)])
    >>> lc = learning_curve(t, ["B"], names=["mean"], fractions=[0.25, 1.0])
    >>> lc[["model", "train_fraction", "n_train", "n_test"]].to_dict("records")
    [{'model': 'mean', 'train_fraction': 0.25, 'n_train': 9, 'n_test': 4},
     {'model': 'mean', 'train_fraction': 1.0, 'n_train': 36, 'n_test': 4}]
    """
    targets = [targets] if isinstance(targets, str) else list(targets)
    ids = [str(i) for i in (table.index if ids is None else ids)]
    trainval, test = split_indices(len(ids), seed, test_fraction)
    rows = []
    for f in sorted(fractions):
        sub = train_subset(trainval, f, seed)
        split = Split(trainval=[ids[i] for i in sub], test=[ids[i] for i in test], folds=[], seed=seed,
                      test_fraction=test_fraction, order=ids,
                      source=f"leanecd.splits.split_indices(seed={seed}) on {len(ids)} ids, train_subset({f})")
        for name in names:
            run = run_baseline(name, table, targets, split, features=features)
            rec = recompute(run.predictions)
            for t in targets:
                rows.append({"model": name, "target": t, "epochs": None, "train_fraction": float(f),
                             "n_train": rec["n_train"], "n_test": rec["n_test"], "test_mae": rec["test_mae"][t],
                             "test_nmae": rec["test_nmae"][t], "test_spread_ratio": rec["test_spread_ratio"][t],
                             # the mean is constant by design: "collapsed" names a fit that failed
                             "collapsed": None if name == "mean" else rec["collapsed"][t],
                             "run": f"{name} baseline, train_fraction {f:g}"})
    df = pd.DataFrame(rows, columns=LEARNING_CURVE_COLUMNS)
    return df.sort_values(["model", "target", "n_train"], ignore_index=True)


# --------------------------------------------------------------------------- the Zhao et al. CNN on raw ρ


def raw_density_grid(field, in_size: int = 40, method: str = "spectral") -> np.ndarray:
    """ρ (e/Å³) of one field on an ``in_size``³ grid of its conventional cube (float32).

    The field is resampled onto its conventional cube with
    :func:`leanecd.cells.to_conventional` at spacing ``a / in_size`` (``method``:
    ``"spectral"``, the exact trigonometric interpolant evaluated at the cube's grid
    points - the default - or ``"sitk"``, the paper's trilinear resampling). So every
    compound gives an ``in_size``³ array covering exactly one cube: the grid spacing
    a/in_size (Å) differs between compounds (the physical scale is lost, as with any
    fixed-size raw-density input). The density is used as stored (no removal of
    negative values: the raw ρ, as Zhao et al. feed it). The default 40³ is
    :data:`leanecd.models.BASELINE_DEFAULT_IN_SIZE` for ``zhao``.
    """

    a = find_cubic_cell(field.lattice).a
    cube = to_conventional(field, method=method, spacing=a / in_size)
    if cube.rho.shape != (in_size,) * 3:
        raise LeanECDError(f"{field.source}: resampled to {cube.rho.shape}, expected {(in_size,) * 3}")
    return cube.rho.astype(np.float32)


def raw_density_inputs(dataset, ids: Sequence[str], in_size: int = 40, method: str = "spectral",
                       progress: bool = True) -> np.ndarray:
    """Stack :func:`raw_density_grid` for ``ids`` of ``dataset``: float32 ``(N, in_size, in_size, in_size)``."""
    out = np.empty((len(ids), in_size, in_size, in_size), dtype=np.float32)
    it = ids
    if progress:
        it = tqdm(ids, desc="raw ρ grids", unit="field")
    for n, i in enumerate(it):
        out[n] = raw_density_grid(dataset.field(i), in_size, method)
    return out


def run_zhao_baseline(dataset, reference: Run | str | os.PathLike | Split, run_dir: str | os.PathLike,
                      targets: Sequence[str] | None = None, in_size: int = 40, method: str = "spectral",
                      epochs: int | None = None, folds: int | None = None, mode: str | None = None,
                      device: str | None = None, progress: bool = True, **config_kwargs):
    """Train the Zhao et al. 3D-CNN on raw ρ with :func:`leanecd.train.fit`, on the reference split.

    ``reference``: a CNN run (its split, seed, test fraction and targets are reused)
    or a :class:`Split` with a known ``order``. The raw-density inputs are built for
    the split's ids in the order the reference's :func:`~leanecd.splits.split_indices`
    saw them, and ``fit`` is called without a sample subset, so it draws the same
    train/test split; this is checked after the run (an error if the test ids differ).
    ``epochs``/``folds``/``mode`` as in :class:`leanecd.trainconfig.TrainConfig` (``None``:
    the protocol of ``mode``). Expensive: ~2 M parameters; at the paper's protocol
    a GPU job. Returns the :class:`leanecd.train.FitResult`.
    """

    if isinstance(reference, Split):
        split, ref_targets = reference, None
    else:
        ref = reference if isinstance(reference, Run) else read_run(reference)
        split, ref_targets = split_from_run(ref), ref.targets
    if split.order is None:
        raise LeanECDError(f"{split.source}: the order of the ids is unknown, so fit cannot redraw the same split")
    targets = list(targets or ref_targets or ["bulk_modulus_GPa"])
    ids = split.order
    X = raw_density_inputs(dataset, ids, in_size, method, progress)
    y = dataset.subset(ids).targets(targets)
    cfg = TrainConfig(model="zhao", targets=tuple(targets), epochs=epochs, folds=folds, seed=split.seed,
                      test_fraction=split.test_fraction, max_samples=len(ids), device=device, mode=mode,
                      **config_kwargs)
    result = fit(X, y, cfg, run_dir, ids=ids, dataset_version=dataset.version, progress=progress,
                 dataset_name=dataset.name)
    got = read_run(run_dir)
    test = sorted(set(got.predictions.loc[got.predictions["split"] == "test", "id"]))
    if test != sorted(split.test):
        raise LeanECDError(f"{run_dir}: the Zhao run's test set differs from the reference split ({split.source})")
    stored = read_config(Path(run_dir) / "config.json")
    stored["baseline_of"] = {"name": "zhao", "description": DESCRIPTIONS["zhao"], "in_size": in_size,
                             "method": method, "split_source": split.source, "reference_run": split.reference}
    write_config(run_dir, stored)
    return result


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cheap baselines on the split of a CNN run and write them to results/baselines/."""
    ap = argparse.ArgumentParser(prog="python -m leanecd.baselines", description=main.__doc__)
    ap.add_argument("--reference", required=True, type=Path, help="a CNN run directory (its split and targets)")
    cheap = list(registry.model_names("baseline"))
    ap.add_argument("--names", nargs="+", default=cheap, choices=[*cheap, "zhao"])
    ap.add_argument("--out-root", type=Path, default=Path("results/baselines"))
    ap.add_argument("--dataset", default="embedded")
    ap.add_argument("--epochs", type=int, help="zhao only")
    ap.add_argument("--folds", type=int, help="zhao only")
    ap.add_argument("--final-only", action="store_true", help="zhao only: no cross-validation")
    ap.add_argument("--threads", type=int, help="zhao only: CPU threads for torch")
    ap.add_argument("--mode", choices=["full", "quick"], help="zhao only")
    ap.add_argument("--in-size", type=int, default=40, help="zhao only: raw-density grid points per cube edge")
    ap.add_argument("--device", help="zhao only")
    args = ap.parse_args(argv)

    ds = load_dataset(args.dataset)
    ref = read_run(args.reference)
    cheap = [n for n in args.names if n != "zhao"]
    if cheap:
        features = None
        if "ridge" in cheap:
            ids, X, _ = dataset_features(ds, progress=False)
            features = autocorrelation_feature_table(ids, X)
        runs = baselines_for_run(ref, ds.table, cheap, out_root=args.out_root, features=features)
        for name, r in runs.items():
            m = r.metrics
            for t in m["targets"]:
                print(f"{name} {t}: test MAE {m['test_mae'][t]:.4g}, test NMAE {m['test_nmae'][t]:.2f} %  -> {r.path}")
    if "zhao" in args.names:
        if args.threads:
            torch.set_num_threads(args.threads)
        e = ("e650" if args.epochs is None and args.mode == "full"
             else ("" if args.epochs is None else f"e{args.epochs}"))
        cv = "final" if args.final_only or args.folds == 0 else ("" if args.folds is None else f"cv{args.folds}")
        dev = device_select(args.device).type
        name = "-".join(x for x in ("zhao", e, cv, dev, "on", ref.name) if x)
        run_dir = args.out_root / name
        res = run_zhao_baseline(ds, ref, run_dir, in_size=args.in_size, epochs=args.epochs,
                                folds=None if args.final_only else args.folds, mode=args.mode, device=args.device,
                                final_only=args.final_only)
        print(f"zhao: test MAE {res.metrics['test_mae']} -> {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
