"""The paper's result tables and the book's comparisons, recomputed from run directories (§4).

:func:`table2`, :func:`table3` and :func:`learning_curve` (test error against
training-set size) RECOMPUTE every number from ``predictions.csv``
(:func:`leanecd.metrics.recompute`); ``metrics.json`` is never the source of a table,
only a cross-check (:func:`leanecd.runs.check_run`). Each table carries rows that say
exactly what was run (epochs, CV folds, train/test sizes, device, mode), taken from the
run's own ``config.json``, so a shortened run cannot pass for the paper's protocol. The
paper's own numbers sit in columns labelled :data:`PAPER_LABEL`: they were obtained on
a different dataset (JARVIS-DFT, OptB88vdW labels), so they are a reference, not a
target to match digit for digit. Models and targets are named and ordered by
:mod:`leanecd.registry`; target names are canonical (:mod:`leanecd.runs` reads them so).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import registry
from .errors import LeanECDError
from .log import logger
from .metrics import nmae, per_sample_nmae, recompute, rmse
from .registry import canonical_target, model_label, target_label, target_unit
from .runs import Run, as_runs, find_runs, run_rank, select_runs

__all__ = [
    "paired_comparison",
    "format_table",
    "table2",
    "table3",
    "error_analysis",
    "learning_curve",
    "learning_curve_exponents",
    "LEARNING_CURVE_COLUMNS",
    "verdict",
    "element_counts",
    "PAPER_LABEL",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "PAPER_FIG6",
]

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
PAPER_PROTOCOL = {"epochs": "650", "CV folds": "9", "lr": "5e-3", "inputs": "not stated",
                  "n train / n test": "≈1,269 / ≈141", "device": "NVIDIA A100", "mode": "paper",
                  "run": "Table 2 of the paper"}

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


def paired_comparison(a: Run, b: Run, target: str, split: str = "test") -> dict:
    """Compare two runs on the compounds of ``split`` that both predicted ``target``.

    Returns ``{"n", "mae_a", "mae_b", "ratio" (mae_a / mae_b), "wins_a" (compounds where
    a's absolute error is smaller), "rmse_a", "rmse_b", "nmae_a", "nmae_b"}``. For
    ``split="cv"`` the out-of-fold predictions are compared (only meaningful when the
    two runs share their folds).
    """
    target = canonical_target(target, strict=False)

    def errors(run):
        p = run.predictions
        names = [x for x in run.targets if x == target]
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


# --------------------------------------------------------------------------- Table 2


def _fmt(x):
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return None
    return float(x)


def table2(runs, models: Sequence[str] | None = None, targets: Sequence[str] | None = None,
           paper: bool = True, missing: str = "not run yet", pick: str = "preferred",
           dataset: tuple[str, str] | None = None) -> pd.DataFrame:
    """The paper's Table 2 for ``runs`` (run directories or :class:`Run`), recomputed.

    Rows: CV-MAE, Train-MAE, Test-MAE (in the target's units: the column names say
    which), CV-, Train-, Test-NMAE (%), Test-RMSE, then the protocol rows (epochs, CV
    folds, n train / n test, device, mode, run), which say exactly what was run.
    Columns: a MultiIndex (model, property (unit), source) where source is ``"ours"``
    or :data:`PAPER_LABEL` (the paper's published numbers, where it has them).

    ``models``: the models to show, in order (default: the registry's lean models, then
    every other model found in ``runs``, in the registry's order); ``targets``: default
    every registered target; a model/target without a run gets ``missing`` in its cells.
    ``pick="preferred"`` keeps one run per (model, target) (:func:`select_runs`, which
    prefers runs on ``dataset`` = (name, version) when given);
    ``pick="all"`` shows every run, the source reading ``"ours: <run name>"``.
    Every number comes from ``predictions.csv`` via :func:`recompute`; a metric that
    does not exist for a run (CV-MAE of a final-only run) is ``"— (no CV)"``.
    """
    runs = as_runs(runs)
    if pick not in ("preferred", "all"):
        raise LeanECDError(f"pick must be 'preferred' or 'all', not {pick!r}")
    found_models = list(dict.fromkeys(r.model for r in runs))
    if models is None:
        lean = registry.model_names("lean")
        models = list(lean) + [m for m in registry.MODELS if m in found_models and m not in lean]
        models += [m for m in found_models if m not in models]
    targets = [canonical_target(t, strict=False) for t in (registry.TARGETS if targets is None else targets)]
    by_key: dict[tuple[str, str], list[Run]] = {}
    if pick == "preferred":
        for k, r in select_runs(runs, dataset).items():
            by_key[k] = [r]
    else:
        for r in runs:
            for t in r.targets:
                by_key.setdefault((r.model, t), []).append(r)

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
                rec = recompute(r.predictions)
                col = {
                    "CV-MAE": _fmt(rec["cv_mae"][t]) if rec["cv_mae"] else "— (no CV)",
                    "Train-MAE": _fmt(rec["train_mae"][t]) if rec["train_mae"] else None,
                    "Test-MAE": _fmt(rec["test_mae"][t]) if rec["test_mae"] else None,
                    "CV-NMAE (%)": _fmt(rec["cv_nmae"][t]) if rec["cv_nmae"] else "— (no CV)",
                    "Train-NMAE (%)": _fmt(rec["train_nmae"][t]) if rec["train_nmae"] else None,
                    "Test-NMAE (%)": _fmt(rec["test_nmae"][t]) if rec["test_nmae"] else None,
                    "Test-RMSE": _fmt(rec["test_rmse"][t]) if rec["test_rmse"] else None,
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
    from .models import build_model, count_parameters  # here: torch is needed only for this count

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
    runs = as_runs(runs)
    t = canonical_target(target, strict=False)
    rows = []
    for r in runs:
        names = [x for x in r.targets if x == t]
        if not names:
            continue
        rec = recompute(r.predictions)
        p = r.protocol()
        inp = registry.MODELS[r.model].input if r.model in registry.MODELS else "none"
        rows.append({
            "model": f"{model_label(r.model)} (ours)",
            "input": inp,
            "dataset": (f"embedded GPAW-PBE v{r.provenance.get('dataset_version')}"
                        if r.provenance.get("dataset_version") else "ours"),
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
    runs = find_runs(runs, verbose=verbose) if is_results_dir else as_runs(runs)
    want = None if target is None else canonical_target(target, strict=False)
    curves: dict[tuple, list[tuple[str, Run]]] = {}
    for r in runs:
        if r.kind != "cnn" or (model is not None and r.model != model):
            continue
        for t in r.targets:
            if want is None or t == want:
                curves.setdefault((r.model, t, r.epochs), []).append((t, r))

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
                    logger.info(f"{r.path}: test set differs from the learning-curve runs of {model_label(m)}, "
                          f"{target_label(t)}, {epochs} epochs; left out of that curve")
        if same:
            reduced.append(max(same, key=lambda nr: run_rank(nr[1])))
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
    t = canonical_target(target, strict=False)

    def test_mae(r: Run) -> float:
        return float(recompute(r.predictions)["test_mae"][t])

    pool = [r for r in others if t in r.targets and r.ids("test") == cnn.ids("test")]
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
    run = as_runs(run)[0]
    target = canonical_target(target, strict=False) if target else run.targets[0]
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
