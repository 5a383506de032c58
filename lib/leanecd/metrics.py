"""Error metrics (paper §4), recomputed from stored predictions.

Every metric is in the units of the target, except the NMAEs, in %:

* :func:`mae` - mean |y − ŷ|;
* :func:`nmae` - the paper's normalised MAE (§4): mean |y − ŷ| / |mean(y)| × 100 over
  the set in question. The paper writes it as (1/N) Σ |(Sᵢ − Ŝᵢ) / S_average| × 100,
  so the mean enters in absolute value: total energies per atom are negative, and
  their NMAE is still positive;
* :func:`per_sample_nmae` - |yᵢ − ŷᵢ| / |mean(y)| × 100 for each sample (the quantity
  histogrammed in Fig. 6; its mean is :func:`nmae`);
* :func:`rmse` - √mean (y − ŷ)² (Table 3 compares bulk-modulus RMSEs);
* :func:`fraction_below` / :func:`fraction_above` - the share of samples whose
  per-sample NMAE lies below 10 % / above 30 % (the numbers the paper quotes for Fig. 6);
* :func:`spread_ratio`, :func:`is_collapsed` - whether a model predicts about one value
  for every compound.

:func:`recompute` gives every metric of a run's ``metrics.json`` from its predictions
(the long format of ``predictions.csv``, :mod:`leanecd.runs`). The run directory is
read and written by :mod:`leanecd.runs`; the paper's tables are in :mod:`leanecd.tables`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "mae",
    "nmae",
    "rmse",
    "per_sample_nmae",
    "fraction_below",
    "fraction_above",
    "recompute",
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
