"""Baselines: composition features, the mean predictor, the random forest, same-split logic,
raw-density inputs and the Zhao et al. CNN run. All data here are SYNTHETIC (made-up
formulas, labels and Gaussian densities); they check the machinery, not physics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leanecd import baselines as B
from leanecd import composition as C
from leanecd import registry
from leanecd import runs as R
from leanecd import splits as S
from leanecd import tables as T
from leanecd.errors import LeanECDError

pytest.importorskip("jarvis.core", reason="composition features need jarvis-tools")


# ---------------------------------------------------------------- composition features


def test_nacl_features_by_hand():
    f = C.composition_features("NaCl")  # Na: Z 11, Cl: Z 17, 1:1
    assert f["n_elements"] == 2
    assert f["mean Number"] == pytest.approx(14.0)
    assert f["min Number"] == 11 and f["max Number"] == 17
    assert f["range Number"] == pytest.approx(6.0)
    assert f["mad Number"] == pytest.approx(3.0)
    assert f["mean Electronegativity"] == pytest.approx((0.93 + 3.16) / 2)
    assert f["mean NValence"] == pytest.approx((1 + 7) / 2)  # Na 3s1; Cl 3s2 3p5
    assert len(f) == 1 + 5 * len(C.ELEMENT_PROPERTIES) == len(C.feature_names())


def test_stoichiometry_weights():
    f = C.composition_features("CaKF3")  # Z 20, 19, 9 x3 -> fractions 1/5, 1/5, 3/5
    assert f["mean Number"] == pytest.approx((20 + 19 + 3 * 9) / 5)
    mean = (20 + 19 + 27) / 5
    assert f["mad Number"] == pytest.approx((abs(20 - mean) + abs(19 - mean) + 3 * abs(9 - mean)) / 5)
    # the same composition written differently gives the same features
    assert np.allclose(C.composition_features("Ca2K2F6"), f)
    g = C.composition_features("Cu")
    assert g["range Number"] == 0 and g["mad Number"] == 0 and g["mean Number"] == 29


def test_feature_table_and_bad_formula():
    t = C.composition_feature_table(pd.Series({"a": "NaCl", "b": "MgO"}))
    assert list(t.index) == ["a", "b"] and t.loc["b", "mean Number"] == pytest.approx(10.0)
    with pytest.raises(LeanECDError):
        C.composition_features("Xx2")


# ---------------------------------------------------------------- the baselines


def synthetic_compounds(n=60, seed=0):
    """Made-up binary AB compounds whose label is an easy function of composition."""
    rng = np.random.default_rng(seed)
    metals = ["Li", "Na", "K", "Mg", "Ca", "Sr", "Ba", "Al", "Ga", "In", "Ti", "Zr", "Hf", "Cu", "Ag", "Zn"]
    anions = ["F", "Cl", "Br", "I", "O", "S", "Se", "Te", "N", "P"]
    pairs = sorted({(a, b) for a, b in zip(rng.choice(metals, 3 * n), rng.choice(anions, 3 * n))})[:n]
    ids = [f"{a}{b}-synthetic" for a, b in pairs]
    formulas = [f"{a}{b}" for a, b in pairs]
    table = pd.DataFrame({"formula": formulas}, index=ids)
    feats = C.composition_feature_table(table["formula"])
    table["bulk_modulus_GPa"] = 300.0 / feats["mean CovalentRadius"] * 50 + 2 * feats["range Electronegativity"] ** 2
    return table


def test_mean_predictor_mae_is_mean_absolute_deviation():
    table = synthetic_compounds(30)
    split = S.split_for_ids(table.index, seed=0, folds=3)
    run = B.run_baseline("mean", table, ["bulk_modulus_GPa"], split)
    y = table["bulk_modulus_GPa"]
    mu = y.loc[split.trainval].mean()
    assert run.metrics["test_mae"]["bulk_modulus_GPa"] == pytest.approx(np.mean(np.abs(y.loc[split.test] - mu)))
    assert run.metrics["train_mae"]["bulk_modulus_GPa"] == pytest.approx(np.mean(np.abs(y.loc[split.trainval] - mu)))
    # CV: each fold predicted by the mean of the other folds
    fold1 = split.folds[0]
    mu1 = y.loc[[i for i in split.trainval if i not in fold1]].mean()
    p = run.predictions
    assert np.allclose(p.loc[(p["split"] == "cv") & (p["fold"] == 1), "y_pred"], mu1)


def test_random_forest_beats_mean_on_an_easy_relation(tmp_path):
    table = synthetic_compounds(60)
    split = S.split_for_ids(table.index, seed=0)
    rf = B.run_baseline("rf", table, ["bulk_modulus_GPa"], split, out_dir=tmp_path / "rf")
    mean = B.run_baseline("mean", table, ["bulk_modulus_GPa"], split, out_dir=tmp_path / "mean")
    assert rf.metrics["test_mae"]["bulk_modulus_GPa"] < 0.5 * mean.metrics["test_mae"]["bulk_modulus_GPa"]
    # written in the run layout: tables.table2 reads it, metrics.json equals the recomputation
    back = R.read_run(tmp_path / "rf")
    assert back.kind == "baseline" and back.model == "rf"
    R.check_run(back, atol=1e-12)
    t = T.table2([tmp_path / "rf", tmp_path / "mean"], paper=True)
    col = ("random forest (composition)", "bulk modulus (GPa)", "ours")
    assert t.loc["Test-MAE", col] == pytest.approx(rf.metrics["test_mae"]["bulk_modulus_GPa"])
    assert t.loc["epochs", col].startswith("n/a")
    assert t.loc["Test-NMAE (%)", ("random forest (composition)", "bulk modulus (GPa)", T.PAPER_LABEL)] == 22.3


def test_split_for_ids_is_train_split_indices():
    from leanecd.splits import split_indices

    ids = [f"c{i}" for i in range(25)]
    s = S.split_for_ids(ids, seed=3)
    tv, te = split_indices(25, 3, 0.1)
    assert s.trainval == [ids[i] for i in tv] and s.test == [ids[i] for i in te]
    assert len(s.test) == 2


# ---------------------------------------------------------------- same split as a CNN run, and the Zhao CNN


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_baseline_learning_curve_has_fits_test_set_and_nested_training_sets(tmp_path, one_thread):
    """The baselines' learning curve uses the split and nested subsets of fit(train_fraction=f):
    checked against a real 1-epoch fit (SYNTHETIC features) and by brute force for the mean."""
    import matplotlib

    from leanecd import resultplots
    from leanecd.settings import SETTINGS
    from leanecd.splits import split_indices, train_subset
    from leanecd.train import fit
    from leanecd.trainconfig import TrainConfig

    matplotlib.use("Agg")
    table = synthetic_compounds(40)
    y = table["bulk_modulus_GPa"]
    lc = B.learning_curve(table, ["bulk_modulus_GPa"], fractions=(0.25, 0.5, 1.0))
    assert list(lc.columns) == T.LEARNING_CURVE_COLUMNS
    assert list(lc["n_train"]) == [9, 18, 36] * 2 and set(lc["n_test"]) == {4}
    # the same test set and training subset as a CNN fit at train_fraction 0.5 on these ids
    X = np.random.default_rng(0).random((len(table), 19, 19, 19), dtype=np.float32)
    cfg = TrainConfig(model="A", targets=("bulk_modulus_GPa",), epochs=1, batch_size=8, final_only=True,
                      train_fraction=0.5, mode="full", device="cpu")
    fit(X, y.to_numpy(), cfg, tmp_path / "A-f0.5", ids=list(table.index), progress=False)
    cnn = R.read_run(tmp_path / "A-f0.5")
    tv, te = split_indices(len(table), SETTINGS.seed, 0.1)
    subsets = {f: set(table.index[train_subset(tv, f, SETTINGS.seed)]) for f in (0.25, 0.5, 1.0)}
    assert set(cnn.ids("test")) == set(table.index[te])
    assert set(cnn.ids("train")) == subsets[0.5]
    assert subsets[0.25] < subsets[0.5] < subsets[1.0]  # nested
    # the mean baseline's test MAE, by brute force, at every size
    for f, sub in subsets.items():
        row = lc[(lc["model"] == "mean") & (lc["train_fraction"] == f)].iloc[0]
        assert row["test_mae"] == pytest.approx(np.mean(np.abs(y.loc[table.index[te]] - y.loc[list(sub)].mean())))
    # the random forest learns the (easy, synthetic) relation better with more data here
    rf = lc[lc["model"] == "rf"].set_index("train_fraction")["test_mae"]
    assert rf[1.0] < rf[0.25]
    # drawn together with the CNN's curve (baselines have no epochs)
    both = pd.concat([lc, T.learning_curve([cnn], verbose=False)], ignore_index=True)
    fig = resultplots.learning_curve(both)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    curves = [lab for lab in labels if "collapsed" not in lab]  # collapsed runs get crosses of their own
    assert len(curves) == 3 and any("epochs" not in lab for lab in curves)
    flagged = both["collapsed"].fillna(False).astype(bool)
    assert len(labels) - len(curves) == both[flagged].groupby(["model", "epochs"], dropna=False).ngroups
    assert all("1 epochs" in lab for lab in labels if lab.startswith("Model A"))


def fcc_dataset(n=14):
    """A synthetic Dataset of FCC Gaussian densities with a made-up 'bulk modulus' falling with a."""
    from leanecd.cells import synthetic_field
    from leanecd.dataset import Dataset

    ids = [f"S{i}-synthetic" for i in range(n)]
    a = {i: 3.4 + 0.1 * k for k, i in enumerate(ids)}
    fields = {i: synthetic_field("fcc", a=a[i], n=12, sigma=0.5) for i in ids}
    table = pd.DataFrame({"formula": "NaCl", "bulk_modulus_GPa": [400.0 / a[i] ** 2 for i in ids]}, index=ids)
    return Dataset(name="synthetic-fcc", version="test", source="synthetic", table=table,
                   loaders={i: (lambda f=fields[i]: f) for i in ids})


def test_split_from_run_and_zhao_on_the_same_split(tmp_path, one_thread):
    from leanecd.train import fit
    from leanecd.trainconfig import TrainConfig

    ds = fcc_dataset(14)
    rng = np.random.default_rng(0)
    X = rng.random((14, 19, 19, 19), dtype=np.float32)
    y = ds.targets("bulk_modulus_GPa")
    # reference CNN run on a seeded subset of 12 of the 14 compounds, 2-fold CV
    cfg = TrainConfig(model="A", targets=("bulk_modulus_GPa",), epochs=1, folds=2, max_samples=12, mode="quick",
                      device="cpu", seed=5)
    fit(X, y, cfg, tmp_path / "ref", ids=ds.ids, progress=False)
    ref = R.read_run(tmp_path / "ref")
    split = B.split_from_run(ref)
    assert sorted(split.ids) == sorted(set(ref.predictions["id"]))
    assert len(split.ids) == 12 and len(split.folds) == 2 and split.seed == 5
    # the reconstructed order redraws exactly the reference split
    again = S.split_for_ids(split.order, seed=5, folds=2)
    assert again.trainval == split.trainval and again.test == split.test
    assert [sorted(f) for f in again.folds] == [sorted(f) for f in split.folds]

    # cheap baselines on that split: the same test compounds
    runs = B.baselines_for_run(ref, ds.table, out_root=tmp_path / "baselines")
    for r in runs.values():
        assert sorted(r.predictions.loc[r.predictions["split"] == "test", "id"]) == sorted(split.test)
        assert (tmp_path / "baselines" / f"{r.model}-ref" / "metrics.json").is_file()

    # the Zhao CNN on raw densities, same split (checked inside), tiny grid
    res = B.run_zhao_baseline(ds, ref, tmp_path / "zhao", in_size=22, epochs=1, folds=0, mode="quick",
                              device="cpu", progress=False)
    z = R.read_run(tmp_path / "zhao")
    assert z.model == "zhao" and z.config["baseline_of"]["in_size"] == 22
    assert sorted(z.predictions.loc[z.predictions["split"] == "test", "id"]) == sorted(split.test)
    assert res.metrics["test_mae"]["bulk_modulus_GPa"] >= 0
    t3 = T.table3([z])
    assert t3.iloc[0]["trainable parameters"] == 334_633  # zhao built for 22³ input


def test_raw_density_grid_samples_the_cube():
    from leanecd.cells import synthetic_density, synthetic_field, to_conventional

    f = synthetic_field("fcc", a=4.0, n=20, sigma=0.45)
    g = B.raw_density_grid(f, in_size=16)
    assert g.shape == (16, 16, 16) and g.dtype == np.float32
    cube = to_conventional(f)  # the cube's frame and atoms
    idx = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij"), -1).reshape(-1, 3)
    exact = synthetic_density(cube, idx * 4.0 / 16).reshape(16, 16, 16)
    assert np.abs(g - exact).max() < 1e-3 * exact.max()


# ---------------------------------------------------------------- ridge on the autocorrelation


def test_ridge_recovers_a_linear_law_of_the_subsampled_autocorrelation(tmp_path):
    """Labels made linear in a few grid values of the (synthetic) autocorrelation: the ridge
    baseline must find the law (test error near the noise), the mean predictor cannot."""
    rng = np.random.default_rng(0)
    n, g = 80, 11
    ids = [f"c{i}" for i in range(n)]
    X = rng.random((n, g, g, g)).astype(np.float32)
    y = 200 * X[:, 0, 0, 0] - 80 * X[:, 5, 5, 5] + 50 * X[:, 10, 5, 0] + 100 + rng.normal(0, 0.5, n)
    table = pd.DataFrame({"formula": ["NaCl"] * n, "bulk_modulus_GPa": y}, index=ids)
    feats = B.autocorrelation_feature_table(ids, X)
    assert feats.shape == (n, 3**3)  # every 5th of 11 points: 0, 5, 10
    assert feats.loc["c3"].iloc[0] == pytest.approx(float(X[3, 0, 0, 0]))
    split = S.split_for_ids(ids, seed=0)
    ridge = B.run_baseline("ridge", table, ["bulk_modulus_GPa"], split, out_dir=tmp_path / "ridge", features=feats)
    mean = B.run_baseline("mean", table, ["bulk_modulus_GPa"], split)
    assert ridge.metrics["test_mae"]["bulk_modulus_GPa"] < 0.1 * mean.metrics["test_mae"]["bulk_modulus_GPa"]
    back = R.read_run(tmp_path / "ridge")
    assert back.model == "ridge" and registry.model_label("ridge").startswith("ridge")
    R.check_run(back, atol=1e-12)
    with pytest.raises(LeanECDError, match="autocorrelations"):
        B.run_baseline("ridge", table, ["bulk_modulus_GPa"], split)
    with pytest.raises(LeanECDError, match="without autocorrelation features"):
        B.run_baseline("ridge", table, ["bulk_modulus_GPa"], split, features=feats.iloc[:10])
