"""Metrics and result tables: hand-computed values, synthetic run directories, stored results.

The run directories built here are SYNTHETIC (made-up compounds and predictions);
the last tests check every real run under results/ (skipped when there is none).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leanecd import metrics as M
from leanecd import registry
from leanecd import runs as R
from leanecd import tables as T
from leanecd.errors import FileFormatError, LeanECDError

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- the metrics by hand


def test_mae_nmae_rmse_by_hand():
    y = np.array([100.0, 200.0, 300.0])
    p = np.array([110.0, 190.0, 330.0])  # errors 10, -10, 30
    assert M.mae(y, p) == pytest.approx(50 / 3)
    assert M.nmae(y, p) == pytest.approx((50 / 3) / 200 * 100)
    assert M.rmse(y, p) == pytest.approx(math.sqrt((100 + 100 + 900) / 3))
    # per target column
    Y, P = np.stack([y, 2 * y], 1), np.stack([p, 2 * p], 1)
    assert np.allclose(M.mae(Y, P), [50 / 3, 100 / 3])
    assert np.allclose(M.nmae(Y, P), [M.nmae(y, p)] * 2)


def test_nmae_of_negative_target_is_positive():
    """Total energies are negative: the paper's |(S - Ŝ)/S_average| keeps the NMAE positive."""
    y = np.array([-4.0, -2.0])
    p = np.array([-3.0, -2.0])
    assert M.nmae(y, p) == pytest.approx(0.5 / 3 * 100)


def test_train_reexports_the_same_functions():
    from leanecd import train

    assert train.mae is M.mae and train.nmae is M.nmae


def test_per_sample_nmae_and_fractions():
    y = np.array([10.0, 10.0, 10.0, 10.0, 10.0])
    p = np.array([10.5, 11.5, 12.0, 14.0, 6.0])  # |err|/10*100 = 5, 15, 20, 40, 40 %
    v = M.per_sample_nmae(y, p)
    assert np.allclose(v, [5, 15, 20, 40, 40])
    assert v.mean() == pytest.approx(M.nmae(y, p))
    assert M.fraction_below(v, 10) == pytest.approx(0.2)
    assert M.fraction_above(v, 30) == pytest.approx(0.4)
    assert M.fraction_below(np.array([10.0]), 10) == 0.0  # strictly below
    assert math.isnan(M.fraction_above([], 30))
    assert np.allclose(M.per_sample_nmae(y, p, reference_mean=20.0), v / 2)


# ---------------------------------------------------------------- a synthetic run directory


def write_run(d: Path, rows, model="A", targets=("bulk_modulus_GPa",), epochs=20, folds=0, mode="quick",
              metrics=None, dataset_version="test", **settings):
    """A run directory in train.fit's layout with the given prediction rows (``settings``: more config entries)."""
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(R.PREDICTION_COLUMNS)
        for r in rows:
            w.writerow([r[0], r[1], "" if r[2] is None else r[2], r[3], repr(r[4]), repr(r[5])])
    prov = {"device": "cpu", "device_name": "cpu (test)", "dataset_name": "synthetic",
            "dataset_version": dataset_version, "git_commit": "0" * 40, "timestamp_utc": "2026-01-01T00:00:00Z"}
    cfg = {"config": {"model": model, "targets": list(targets), "epochs": epochs, "folds": folds, "mode": mode,
                      "seed": 0, "test_fraction": 0.1, **settings},
           "shortcuts": ["synthetic test run"], "provenance": prov,
           "data": {"n_samples": len({r[0] for r in rows}), "input_shape": [51, 51, 51]}}
    (d / "config.json").write_text(json.dumps(cfg))
    preds = R.read_predictions(d / "predictions.csv")
    m = M.recompute(preds) if metrics is None else metrics
    m.update(model=model, targets=list(targets), mode=mode, epochs=epochs, provenance=prov)
    (d / "metrics.json").write_text(json.dumps(m))
    return d


def synthetic_rows(targets=("bulk_modulus_GPa",), folds=3, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"X{i}-proto" for i in range(20)]
    test, trainval = ids[:3], ids[3:]
    rows = []
    for j, t in enumerate(targets):
        scale = 100.0 if j == 0 else -5.0
        y = {i: scale * (1 + rng.random()) for i in ids}
        if folds:
            for k, chunk in enumerate(np.array_split(np.array(trainval), folds), start=1):
                for i in chunk:
                    rows.append((str(i), "cv", k, t, y[i], y[i] + rng.normal(0, 0.2 * abs(scale))))
        for split, group, noise in (("train", trainval, 0.05), ("test", test, 0.1)):
            for i in group:
                rows.append((i, split, None, t, y[i], y[i] + rng.normal(0, noise * abs(scale))))
    return rows


def test_read_run_and_recompute(tmp_path):
    rows = synthetic_rows(targets=("bulk_modulus_GPa", "energy_per_atom_eV"))
    d = write_run(tmp_path / "C-run", rows, model="C", targets=("bulk_modulus_GPa", "energy_per_atom_eV"), folds=3)
    run = R.read_run(d)
    assert run.model == "C" and run.targets == ["bulk_modulus_GPa", "energy_per_atom_eV"]
    assert len(run.predictions) == len(rows)
    assert str(run.predictions["fold"].dtype) == "Int64"
    assert run.provenance["device_name"] == "cpu (test)"
    rec = M.recompute(run.predictions)
    # by hand: CV-MAE is the mean over folds of each fold's MAE
    cv = [r for r in rows if r[1] == "cv" and r[3] == "energy_per_atom_eV"]
    per_fold = [np.mean([abs(r[4] - r[5]) for r in cv if r[2] == k]) for k in (1, 2, 3)]
    assert rec["cv_mae"]["energy_per_atom_eV"] == pytest.approx(np.mean(per_fold), abs=1e-12)
    test = [r for r in rows if r[1] == "test" and r[3] == "bulk_modulus_GPa"]
    yt, yp = np.array([r[4] for r in test]), np.array([r[5] for r in test])
    assert rec["test_mae"]["bulk_modulus_GPa"] == pytest.approx(np.mean(np.abs(yt - yp)), abs=1e-12)
    assert rec["test_nmae"]["bulk_modulus_GPa"] == pytest.approx(np.mean(np.abs(yt - yp)) / yt.mean() * 100)
    assert rec["test_rmse"]["bulk_modulus_GPa"] == pytest.approx(np.sqrt(np.mean((yt - yp) ** 2)))
    assert rec["n_train"] == 17 and rec["n_test"] == 3 and rec["folds"] == 3
    assert "epochs 20 (paper: 650)" in run.describe()


def test_table2_numbers_are_recomputed_from_predictions(tmp_path):
    rows = synthetic_rows(folds=3)
    # metrics.json deliberately WRONG: the table must not read it
    bogus = {k: {"bulk_modulus_GPa": 1e6} for k in ("cv_mae", "train_mae", "test_mae", "cv_nmae", "train_nmae",
                                                   "test_nmae")}
    d = write_run(tmp_path / "A-bulk", rows, folds=3, metrics=bogus)
    t = T.table2([d])
    ours = ("Model A", "bulk modulus (GPa)", "ours")
    test = [r for r in rows if r[1] == "test"]
    train = [r for r in rows if r[1] == "train"]
    assert t.loc["Test-MAE", ours] == pytest.approx(np.mean([abs(r[4] - r[5]) for r in test]), abs=1e-12)
    assert t.loc["Train-MAE", ours] == pytest.approx(np.mean([abs(r[4] - r[5]) for r in train]), abs=1e-12)
    assert t.loc["Test-NMAE (%)", ours] == pytest.approx(
        np.mean([abs(r[4] - r[5]) for r in test]) / np.mean([r[4] for r in test]) * 100)
    assert t.loc["CV-MAE", ours] == pytest.approx(M.recompute(R.read_run(d).predictions)["cv_mae"]["bulk_modulus_GPa"])
    # the paper's column, labelled as such
    paper = ("Model A", "bulk modulus (GPa)", T.PAPER_LABEL)
    assert T.PAPER_LABEL == "paper (JARVIS OptB88vdW, 1,410 compounds; different dataset)"
    assert t.loc["Test-MAE", paper] == 7.73 and t.loc["CV-MAE", paper] == 9.94
    assert t.loc["Train-MAE", ("Model B", "total energy (eV/atom)", T.PAPER_LABEL)] == 0.81
    # protocol rows state what was run
    assert t.loc["epochs", ours] == "20 (paper: 650)"
    assert t.loc["CV folds", ours] == "3 (paper: 9)"
    assert t.loc["n train / n test", ours] == "17 / 3"
    assert t.loc["device", ours] == "cpu (test)"
    # a model/target that was not run
    assert t.loc["Test-MAE", ("Model B", "bulk modulus (GPa)", "ours")] == "not run yet"
    assert t.loc["Test-MAE", ("Model A", "total energy (eV/atom)", "ours")] == "not run yet"
    # check_run notices the disagreement with metrics.json
    with pytest.raises(LeanECDError, match="disagrees"):
        R.check_run(d)


def test_table2_final_only_and_pick(tmp_path):
    d1 = write_run(tmp_path / "A-short", synthetic_rows(folds=0), folds=0, epochs=5)
    d2 = write_run(tmp_path / "A-long", synthetic_rows(folds=0, seed=1), folds=0, epochs=50)
    t = T.table2([d1, d2])
    ours = ("Model A", "bulk modulus (GPa)", "ours")
    assert t.loc["CV-MAE", ours] == "— (no CV)"
    assert t.loc["CV folds", ours] == "none (final fit only)"
    assert t.loc["run", ours] == "A-long"  # more epochs preferred
    t_all = T.table2([d1, d2], pick="all", paper=False)
    assert ("Model A", "bulk modulus (GPa)", "ours: A-short") in t_all.columns
    assert T.PAPER_LABEL not in t_all.columns.get_level_values(2)


def test_table3(tmp_path):
    d = write_run(tmp_path / "A-bulk", synthetic_rows(folds=0))
    t = T.table3([d])
    ours = t.loc["Model A (ours)"]
    test = [r for r in synthetic_rows(folds=0) if r[1] == "test"]
    assert ours["RMSE (GPa)"] == pytest.approx(np.sqrt(np.mean([(r[4] - r[5]) ** 2 for r in test])))
    assert ours["trainable parameters"] == 80_825
    assert t.loc["3D-CNN (Zhao et al.)", "RMSE (GPa)"] == 26.82
    assert t.loc["3D-CNN (Zhao et al.)", "trainable parameters"] == "2.36M"
    assert t.loc["3D-CNN (Mirzaee et al.)", "RMSE (GPa)"] == 6.158
    assert t.loc["lean CNN (paper, Model A)", "RMSE (GPa)"] == 10.11


def test_error_analysis(tmp_path):
    rows = synthetic_rows(folds=0)
    d = write_run(tmp_path / "A-bulk", rows)
    ids = sorted({r[0] for r in rows})
    els = {i: ["Na", "Cl"] for i in ids}
    els["X0-proto"] = ["Na", "Xe"]  # a test compound with an element no training compound has
    table = pd.DataFrame({"formula": ["NaCl"] * len(ids), "prototype": "rocksalt", "elements": [els[i] for i in ids],
                          "a0_A": 5.0}, index=ids)
    e = T.error_analysis(d, table)
    assert list(e["abs_error"]) == sorted(e["abs_error"], reverse=True)
    assert len(e) == 3
    row = e.set_index("id").loc["X0-proto"]
    assert row["rarest_element"] == "Xe" and row["rarest_element_train_count"] == 0
    assert e.set_index("id").loc["X1-proto", "rarest_element_train_count"] == 17


def test_find_runs_skips_unfinished(tmp_path, capsys):
    write_run(tmp_path / "done", synthetic_rows(folds=0))
    (tmp_path / "running").mkdir()
    (tmp_path / "running" / "config.json").write_text("{}")
    runs = R.find_runs(tmp_path)
    assert [r.name for r in runs] == ["done"]
    assert "running" in capsys.readouterr().out


def test_bad_predictions_file(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "predictions.csv").write_text("id,split,target\nx,train,b\n")
    (d / "metrics.json").write_text("{}")
    with pytest.raises(FileFormatError, match="missing column"):
        R.read_run(d)


def test_fit_metrics_equal_recomputation(tmp_path):
    """train.fit's metrics.json and a recomputation from its predictions.csv agree to 1e-9."""
    import torch

    from leanecd.train import fit
    from leanecd.trainconfig import TrainConfig

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.random((16, 19, 19, 19), dtype=np.float32)
    y = np.stack([100 * X.mean(axis=(1, 2, 3)), -3 - X.std(axis=(1, 2, 3))], 1)
    cfg = TrainConfig(model="C", targets=("bulk_modulus_GPa", "energy_per_atom_eV"), epochs=2, folds=2, mode="quick",
                      max_samples=16, device="cpu")
    fit(X, y, cfg, tmp_path / "run", ids=[f"c{i}" for i in range(16)], progress=False)
    report = R.check_run(tmp_path / "run", atol=1e-9)
    assert set(report) >= {"cv_mae", "train_mae", "test_mae", "test_nmae"}


# ---------------------------------------------------------------- learning curve


def test_learning_curve_from_real_runs(tmp_path, capsys):
    """Two tiny real fits (SYNTHETIC features, 1 epoch, CPU) at train_fraction 0.5 and 1."""
    import matplotlib
    import torch

    from leanecd import resultplots
    from leanecd.train import fit
    from leanecd.trainconfig import TrainConfig

    matplotlib.use("Agg")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.random((22, 19, 19, 19), dtype=np.float32)
    y = 100 * X.mean(axis=(1, 2, 3)) + rng.normal(0, 1, 22)
    ids = [f"c{i}" for i in range(22)]
    results = tmp_path / "results"
    for f, d in ((0.5, results / "learning-curve" / "A-f0.5"), (1.0, results / "A-full")):
        cfg = TrainConfig(model="A", targets=("bulk_modulus_GPa",), epochs=1, batch_size=8, final_only=True,
                          train_fraction=f, mode="full", device="cpu")
        fit(X, y, cfg, d, ids=ids, progress=False)
    # a full-data run on another test set (other seed) is not part of the curve, and says so
    other = write_run(results / "A-other-split", synthetic_rows(folds=0), epochs=1)
    df = T.learning_curve(results)
    assert "A-other-split" in capsys.readouterr().out
    assert list(df.columns) == T.LEARNING_CURVE_COLUMNS
    assert list(df["run"]) == ["A-f0.5", "A-full"] and list(df["train_fraction"]) == [0.5, 1.0]
    assert list(df["n_train"]) == [10, 20] and list(df["n_test"]) == [2, 2]
    assert set(df["model"]) == {"A"} and set(df["target"]) == {"bulk_modulus_GPa"} and set(df["epochs"]) == {1}
    for _, row in df.iterrows():
        rec = M.recompute(R.read_run(results / ("learning-curve/A-f0.5" if row["train_fraction"] < 1 else "A-full"))
                          .predictions)
        assert row["test_mae"] == pytest.approx(rec["test_mae"]["bulk_modulus_GPa"], abs=1e-12)
        assert row["test_nmae"] == pytest.approx(rec["test_nmae"]["bulk_modulus_GPa"], abs=1e-12)
    assert T.learning_curve(results, model="B").empty
    assert T.learning_curve(results, target="energy_per_atom_eV").empty
    assert T.learning_curve([other]).empty  # no run with train_fraction < 1: no curve
    fig = resultplots.learning_curve(df)
    assert len(fig.axes) == 1 and fig.axes[0].get_xscale() == fig.axes[0].get_yscale() == "log"


def test_learning_curve_refuses_mixed_test_sets(tmp_path):
    rows = synthetic_rows(folds=0)
    a = write_run(tmp_path / "A-f0.5", rows, train_fraction=0.5)
    # the same compounds, one test compound swapped with a training one: another test set
    swap = {"X0-proto": "train", "X5-proto": "test"}
    b = write_run(tmp_path / "A-f0.25", [(r[0], swap.get(r[0], r[1]), *r[2:]) for r in rows], train_fraction=0.25)
    assert R.read_run(a).train_fraction == 0.5 and R.read_run(b).ids("test") != R.read_run(a).ids("test")
    with pytest.raises(LeanECDError, match="different test sets"):
        T.learning_curve(tmp_path)
    assert len(T.learning_curve([a])) == 1
    # other epochs make another curve, not a mixed one
    c = write_run(tmp_path / "other-epochs" / "A-f0.25", [(r[0], swap.get(r[0], r[1]), *r[2:]) for r in rows],
                  epochs=5, train_fraction=0.25)
    assert sorted(T.learning_curve([a, c])["epochs"]) == [5, 20]


def test_tables_prefer_full_data_runs_to_learning_curve_points(tmp_path):
    rows = synthetic_rows(folds=0)
    write_run(tmp_path / "A-f0.5-long", rows, epochs=650, train_fraction=0.5)
    write_run(tmp_path / "A-full-short", rows, epochs=5)
    assert R.select_runs(R.find_runs(tmp_path))[("A", "bulk_modulus_GPa")].name == "A-full-short"


def test_tables_prefer_runs_on_the_data_loaded_now(tmp_path):
    rows = synthetic_rows(folds=0)
    write_run(tmp_path / "A-old-data-paper", rows, epochs=650, folds=0, dataset_version="0.1.0+39cpd")
    write_run(tmp_path / "A-new-data-short", rows, epochs=50, dataset_version="0.6.2+600cpd")
    runs = R.find_runs(tmp_path)
    key = ("A", "bulk_modulus_GPa")
    # without a dataset: the longer run, as before
    assert R.select_runs(runs)[key].name == "A-old-data-paper"
    assert R.select_runs(runs, dataset=("synthetic", "0.6.2+600cpd"))[key].name == "A-new-data-short"
    assert R.select_runs(runs, dataset=("synthetic", "0.1.0+39cpd"))[key].name == "A-old-data-paper"
    # no run on the data loaded now: the usual order decides
    assert R.select_runs(runs, dataset=("synthetic", "9.9.9"))[key].name == "A-old-data-paper"
    # Table 2 shows the same choice
    col = ("Model A", registry.target_label("bulk_modulus_GPa"), "ours")
    assert T.table2(runs, models=["A"], targets=["bulk_modulus_GPa"], paper=False,
                    dataset=("synthetic", "0.6.2+600cpd")).loc["epochs", col].startswith("50 ")


# ---------------------------------------------------------------- the stored results

STORED = sorted(p.parent for p in (REPO / "results").rglob("metrics.json")) if (REPO / "results").is_dir() else []


@pytest.mark.skipif(not STORED, reason="no runs in results/ yet")
@pytest.mark.parametrize("run_dir", STORED, ids=[str(p.relative_to(REPO)) for p in STORED])
def test_stored_results_are_recomputable(run_dir):
    """The numbers the results chapter prints are recomputed from predictions.csv; they
    must equal what the run itself stored in metrics.json (to 1e-9)."""
    run = R.read_run(run_dir)
    R.check_run(run, atol=1e-9)
    t = T.table2([run], paper=False)
    for target in run.targets:
        col = (registry.model_label(run.model), registry.target_label(target), "ours")
        assert t.loc["Test-MAE", col] == pytest.approx(run.metrics["test_mae"][target], abs=1e-9)
    # splits.json names the compounds that predictions.csv has in each split
    assert sorted(run.splits["trainval_ids"]) == run.ids("train")
    assert sorted(run.splits["test_ids"]) == run.ids("test")


def test_splits_without_ids_are_refused_naming_the_file(tmp_path):
    d = write_run(tmp_path / "old", synthetic_rows(folds=0))
    (d / "splits.json").write_text(json.dumps({"n_samples": 3, "subset": [0, 1, 2], "trainval": [0, 1],
                                               "test": [2], "folds": []}))
    with pytest.raises(FileFormatError, match=r"old/splits.json.*no compound ids"):
        R.read_run(d)


def test_alias_target_names_are_canonical_when_read(tmp_path):
    rows = [(i, s, f, "bulk_modulus", yt, yp) for i, s, f, _, yt, yp in synthetic_rows(folds=3)]
    d = write_run(tmp_path / "old-names", rows, targets=("bulk_modulus",), folds=3)
    stored = (d / "metrics.json").read_text()
    (d / "metrics.json").write_text(stored.replace('"bulk_modulus_GPa"', '"bulk_modulus"'))  # as old runs spell it
    assert '"bulk_modulus_GPa"' not in (d / "metrics.json").read_text()
    run = R.read_run(d)
    assert run.targets == ["bulk_modulus_GPa"] and set(run.predictions["target"]) == {"bulk_modulus_GPa"}
    assert set(run.metrics["cv_mae"]) == set(run.metrics["cv_mae_per_fold"]) == {"bulk_modulus_GPa"}
    R.check_run(run)
    assert ("A", "bulk_modulus_GPa") in R.select_runs([run])


def test_runs_on_other_data_are_named(tmp_path):
    """A run trained on an older version of the data is reported with its compound count;
    one on the data loaded now is not."""
    old = R.read_run(write_run(tmp_path / "old", synthetic_rows(folds=0)))
    new = R.read_run(write_run(tmp_path / "new", synthetic_rows(folds=0)))
    old.provenance.update(dataset_name="leanecd-gpaw-cubic", dataset_version="0.1.0+39cpd")
    new.provenance.update(dataset_name="leanecd-gpaw-cubic", dataset_version="0.5.0+235cpd")
    lines = R.runs_on_other_data([old, new], "leanecd-gpaw-cubic", "0.5.0+235cpd")
    assert lines == ["old: trained on leanecd-gpaw-cubic 0.1.0+39cpd (20 compounds), not on the data "
                     "loaded now (leanecd-gpaw-cubic 0.5.0+235cpd)"]
    assert R.runs_on_other_data([new], "leanecd-gpaw-cubic", "0.5.0+236cpd")[0].startswith("new: ")


def test_paired_comparison_and_same_split(tmp_path):
    rows = synthetic_rows(folds=0)
    a = R.read_run(write_run(tmp_path / "a", rows))
    # b: same compounds, every prediction twice as far off
    rows_b = [(r[0], r[1], r[2], r[3], r[4], r[4] + 2 * (r[5] - r[4])) for r in rows]
    b = R.read_run(write_run(tmp_path / "b", rows_b, model="rf"))
    assert R.same_split(a, b)
    c = T.paired_comparison(a, b, "bulk_modulus_GPa")
    assert c["n"] == 3 and c["ratio"] == pytest.approx(0.5)
    assert c["wins_a"] == 3
    assert c["mae_a"] == pytest.approx(M.recompute(a.predictions)["test_mae"]["bulk_modulus_GPa"])


def test_collapsed_runs_are_named(tmp_path):
    """A run whose test predictions barely vary (SD < 10 % of the labels') is collapsed; a fitted one is not."""
    rows = synthetic_rows(folds=0)
    flat = [(i, s, f, t, yt, 150.0 + 0.01 * k) if s == "test" else (i, s, f, t, yt, yp)
            for k, (i, s, f, t, yt, yp) in enumerate(rows)]
    good = R.read_run(write_run(tmp_path / "good", rows))
    bad = R.read_run(write_run(tmp_path / "bad", flat))
    assert not good.collapsed() and bad.collapsed() and bad.collapsed("bulk_modulus")
    rec = M.recompute(bad.predictions)
    test_y = np.array([r[4] for r in flat if r[1] == "test"])
    test_p = np.array([r[5] for r in flat if r[1] == "test"])
    assert rec["test_spread_ratio"]["bulk_modulus_GPa"] == pytest.approx(np.std(test_p) / np.std(test_y))
    assert rec["collapsed"] == {"bulk_modulus_GPa": True}


SHIPPED_LC = REPO / "results" / "learning-curve"


@pytest.mark.skipif(not (SHIPPED_LC / "A-bulk_modulus_GPa-f0.25-e50-cpu").is_dir(), reason="shipped runs absent")
def test_the_shipped_short_learning_curve_runs_at_135_and_270_compounds_collapsed():
    """Measured, not assumed: the 50-epoch CPU runs at 1/4 and 1/2 of the training set predict
    almost one value (the issue that started the training study); the full-data run does not."""
    df = T.learning_curve(REPO / "results", model="A", target="bulk_modulus_GPa", verbose=False)
    flags = dict(zip(df["train_fraction"], df["collapsed"]))
    assert flags[0.25] and flags[0.5]
    assert not flags[1.0]


def test_learning_curve_exponents_leave_collapsed_runs_out():
    n = np.array([50, 100, 200, 400])
    df = pd.DataFrame({"model": "A", "target": "bulk_modulus_GPa", "epochs": 650, "n_train": n,
                       "test_mae": 100 * n ** -0.5, "collapsed": [False, False, False, False]})
    e = T.learning_curve_exponents(df)
    assert e.loc[0, "slope"] == pytest.approx(-0.5) and e.loc[0, "points"] == 4 and e.loc[0, "left_out"] == []
    df.loc[1, "test_mae"] = 55.0  # a collapsed run at the training-mean error
    df.loc[1, "collapsed"] = True
    e = T.learning_curve_exponents(df)
    assert e.loc[0, "slope"] == pytest.approx(-0.5) and e.loc[0, "left_out"] == [100]
    df.loc[2, "collapsed"] = True
    e = T.learning_curve_exponents(df)
    assert np.isnan(e.loc[0, "slope"]) and "no exponent" in e.loc[0, "note"]


def test_verdict_names_the_winner_and_a_collapse(tmp_path):
    rows = synthetic_rows(folds=0)
    good = R.read_run(write_run(tmp_path / "A", rows, epochs=650))
    worse = [(i, s, f, t, yt, yp + (30.0 if s == "test" else 0.0)) for i, s, f, t, yt, yp in rows]
    rf = R.read_run(write_run(tmp_path / "rf", worse, model="rf", epochs=None))
    text = T.verdict(good, [rf], "bulk_modulus")
    assert "beats every baseline" in text and "random forest" in text and "650 epochs" in text
    flat = [(i, s, f, t, yt, 150.0 + 0.01 * k if s == "test" else yp) for k, (i, s, f, t, yt, yp) in enumerate(rows)]
    bad = R.read_run(write_run(tmp_path / "A-flat", flat, epochs=50))
    text = T.verdict(bad, [rf, good], "bulk_modulus_GPa")
    assert "collapsed" in text and "loses to the Model A" in text
