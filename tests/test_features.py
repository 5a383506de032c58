"""Tests of :mod:`leanecd.features`: the cached, parallel feature store.

Every field here is synthetic (random positive densities with made-up atoms, no DFT
behind them), written to temporary directories as CHGCAR files with
:func:`leanecd.io.write_chgcar`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms

from leanecd import correlations, features
from leanecd.errors import FileFormatError
from leanecd.features import chgcar_sources, feature_key, featurize, load_features
from leanecd.io import ECDField, read_chgcar, write_chgcar

SIZE = 11  # small output grids keep the tests fast; one test uses the paper's 51


def _field(kind: str, seed: int, negative: bool = False) -> ECDField:
    rng = np.random.default_rng(seed)
    if kind == "sc":
        lattice, shape = 3.1 * np.eye(3), (6, 7, 8)
    else:  # fcc primitive
        lattice, shape = 2.2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], float), (8, 8, 8)
    atoms = Atoms("Cu", scaled_positions=[[0, 0, 0]], cell=lattice, pbc=True)
    rho = 0.05 + rng.random(shape)
    if negative:
        rho[0, 1, 2] = -0.01
    return ECDField(rho=rho, lattice=lattice, atoms=atoms, source=f"synthetic: {kind} random, seed {seed}")


@pytest.fixture()
def chgcar_dir(tmp_path):
    d = tmp_path / "chgcars"
    d.mkdir()
    write_chgcar(_field("sc", 1), d / "A.CHGCAR")
    write_chgcar(_field("fcc", 2), d / "B.CHGCAR")
    write_chgcar(_field("sc", 3), d / "C.CHGCAR")
    write_chgcar(_field("sc", 4, negative=True), d / "neg.CHGCAR")
    good = (d / "A.CHGCAR").read_text().splitlines()
    (d / "bad.CHGCAR").write_text("\n".join(good[: len(good) // 2]) + "\n")  # truncated data block
    (d / ".hidden").write_text("not a CHGCAR\n")
    return d


class _Counter:
    """Counts successful calls of leanecd.correlations.autocorrelation (monkeypatched)."""

    def __init__(self, monkeypatch):
        self.n = 0
        real = correlations.autocorrelation

        def counted(*args, **kwargs):
            out = real(*args, **kwargs)
            self.n += 1
            return out

        monkeypatch.setattr(correlations, "autocorrelation", counted)


def test_directory_of_chgcars_with_failures_and_cache(chgcar_dir, tmp_path, monkeypatch):
    count = _Counter(monkeypatch)
    store = tmp_path / "store"
    r = featurize(chgcar_dir, store, size=SIZE, progress=False)
    assert r.ids == ["A.CHGCAR", "B.CHGCAR", "C.CHGCAR"]
    assert set(r.failures) == {"bad.CHGCAR", "neg.CHGCAR"}
    assert "remove_negative" in r.failures["neg.CHGCAR"] and "FieldError" in r.failures["neg.CHGCAR"]
    assert "bad.CHGCAR" in r.failures["bad.CHGCAR"] and "FileFormatError" in r.failures["bad.CHGCAR"]
    assert (r.computed, r.cached, count.n) == (3, 0, 3)

    X = r.load()
    assert X.shape == (3, SIZE, SIZE, SIZE) and X.dtype == np.float32 and np.all(np.isfinite(X))
    for n, fid in enumerate(r.ids):
        field = read_chgcar(chgcar_dir / fid)
        ref = correlations.autocorrelation(field, size=SIZE).astype(np.float32)
        assert np.array_equal(X[n], ref), fid
        assert r.files[fid].name == f"{fid}-{feature_key(field, 0.2, SIZE)[:16]}.npy"
        assert X[n][SIZE // 2, SIZE // 2, SIZE // 2] == pytest.approx(field.rho.mean(), rel=1e-6)
    assert np.array_equal(load_features(store, r.ids), X)
    assert np.array_equal(load_features(store, ["C.CHGCAR", "A.CHGCAR"], mmap_mode="r"), X[[2, 0]])
    assert not list(store.glob("*.part")) and not list(store.glob(".*"))

    index = json.loads((store / "index.json").read_text())
    assert set(index["entries"]) == set(r.ids) and set(index["failures"]) == set(r.failures)
    assert index["entries"]["A.CHGCAR"]["key"] == r.keys["A.CHGCAR"]

    # a second run recomputes nothing
    count.n = 0
    r2 = featurize(chgcar_dir, store, size=SIZE, progress=False)
    assert (r2.computed, r2.cached, count.n) == (0, 3, 0)
    assert r2.files == r.files and r2.failures.keys() == r.failures.keys()

    # a change of settings recomputes, and both versions stay in the store
    r3 = featurize(chgcar_dir, store, size=SIZE + 2, progress=False)
    assert (r3.computed, r3.cached, count.n) == (3, 0, 3)
    assert load_features(store, r3.ids).shape == (3, SIZE + 2, SIZE + 2, SIZE + 2)
    r4 = featurize(chgcar_dir, store, spacing=0.25, size=SIZE, progress=False)
    assert (r4.computed, r4.cached) == (3, 0)
    assert len(list(store.glob("*.npy"))) == 9

    # a change of content recomputes that field only
    write_chgcar(_field("sc", 99), chgcar_dir / "C.CHGCAR")
    count.n = 0
    r5 = featurize(chgcar_dir, store, size=SIZE, progress=False)
    assert (r5.computed, r5.cached, count.n) == (1, 2, 1)
    assert r5.keys["C.CHGCAR"] != r.keys["C.CHGCAR"]


def clip_negative(field: ECDField) -> ECDField:
    """Test preprocessing (not the paper's renormalisation): clip rho at zero."""
    return field.with_rho(np.clip(field.rho, 0, None))


def test_preprocess_hook_is_applied_and_keyed(chgcar_dir, tmp_path):
    store = tmp_path / "store"
    plain = featurize(chgcar_dir, store, size=SIZE, progress=False)
    pre = featurize(chgcar_dir, store, size=SIZE, progress=False, preprocess=clip_negative)
    assert "neg.CHGCAR" in pre.ids and set(pre.failures) == {"bad.CHGCAR"}
    assert pre.computed == 4  # a different preprocessing is a different key
    assert all(pre.keys[i] != plain.keys[i] for i in plain.ids)
    field = read_chgcar(chgcar_dir / "neg.CHGCAR")
    want = correlations.autocorrelation(clip_negative(field), size=SIZE).astype(np.float32)
    assert np.array_equal(pre.load(["neg.CHGCAR"])[0], want)
    assert features.preprocess_name(clip_negative).endswith("test_features.clip_negative")
    again = featurize(chgcar_dir, store, size=SIZE, progress=False, preprocess=clip_negative)
    assert (again.computed, again.cached) == (0, 4)
    assert np.array_equal(again.features, pre.load())
    with pytest.raises(ValueError, match="preprocess_label"):
        featurize(chgcar_dir, store, size=SIZE, progress=False, preprocess=lambda f: f)
    labelled = featurize(chgcar_dir, store, size=SIZE, progress=False, preprocess=lambda f: clip_negative(f),
                         preprocess_label="clip")
    assert labelled.computed == 4 and labelled.keys["A.CHGCAR"] not in (pre.keys["A.CHGCAR"], plain.keys["A.CHGCAR"])


def test_id_loader_pairs_and_loader_errors(tmp_path):
    def broken():
        raise FileFormatError("x/CHGCAR", "simulated broken file")

    sources = [
        ("one", lambda: _field("sc", 5)),
        ("two", _field("fcc", 6)),  # an ECDField in place of a loader
        ("three", broken),
        ("four", lambda: "not a field"),
    ]
    r = featurize(sources, tmp_path / "s", size=SIZE, progress=False, scheduler="sync")
    assert r.ids == ["one", "two"]
    assert "simulated broken file" in r.failures["three"] and "not an ECDField" in r.failures["four"]
    with pytest.raises(ValueError, match="duplicate"):
        featurize([("a", broken), ("a", broken)], tmp_path / "s", progress=False)
    with pytest.raises(ValueError, match="safe file name"):
        featurize([("../evil", broken)], tmp_path / "s", progress=False)
    with pytest.raises(KeyError):
        load_features(tmp_path / "s", ["three"])
    with pytest.raises(FileFormatError):
        load_features(tmp_path / "nowhere")
    with pytest.raises(FileFormatError):
        chgcar_sources(tmp_path / "nowhere")


def test_paper_grid_and_progress_bar(tmp_path, capsys):
    r = featurize([("sc", lambda: _field("sc", 8))], tmp_path / "s", progress=True)
    assert r.load().shape == (1, 51, 51, 51)
    assert "autocorrelations" in capsys.readouterr().err


def test_distributed_client_and_address(tmp_path, chgcar_dir):
    distributed = pytest.importorskip("distributed")
    store = tmp_path / "store"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            r = featurize(chgcar_dir, store, size=SIZE, progress=False, scheduler=client)
            assert (r.computed, len(r.failures)) == (3, 2)
        r2 = featurize(chgcar_dir, store, size=SIZE, progress=False, scheduler=cluster.scheduler_address)
        assert (r2.computed, r2.cached, set(r2.failures)) == (0, 3, {"bad.CHGCAR", "neg.CHGCAR"})
    threaded = featurize(chgcar_dir, tmp_path / "other", size=SIZE, progress=False)
    assert np.array_equal(threaded.load(), r.load())


def test_local_distributed_cluster(tmp_path, chgcar_dir):
    # starts worker processes (a few seconds); the CHGCAR loaders are importable functions
    pytest.importorskip("distributed")
    r = featurize(chgcar_dir, tmp_path / "store", size=SIZE, progress=False, scheduler="distributed")
    assert (r.ids, r.computed, set(r.failures)) == (["A.CHGCAR", "B.CHGCAR", "C.CHGCAR"], 3,
                                                    {"bad.CHGCAR", "neg.CHGCAR"})


# --------------------------------------------------------------------------- dataset_features


def _embedded_dataset(root):
    """A tiny synthetic dataset in the embedded layout: a primitive-FCC field with negative
    voxels, a simple-cubic one, and one whose total charge is negative (cannot be featurised)."""
    from leanecd.store import save_field, write_json

    write_json(root / "dataset.json", {"name": "synthetic-embedded", "version": "0.0-test"})
    neg_fcc = _field("fcc", 11)
    neg_fcc.rho[2:4, 1, 5] = -0.3  # a negative pocket that remove_negative must fill
    hopeless = _field("sc", 13).with_rho(-0.05 - _field("sc", 13).rho, source="synthetic: all negative")
    fields = {"synth-fcc": neg_fcc, "synth-sc": _field("sc", 12), "synth-zbad": hopeless}
    for k, (id_, field) in enumerate(fields.items()):
        save_field(root / "fields" / f"{id_}.npz", field)
        write_json(root / "records" / f"{id_}.json", {
            "id": id_, "formula": "Cu", "prototype": "fcc", "spacegroup": 225, "spacegroup_symbol": "Fm-3m",
            "bulk_modulus_GPa": 100.0 + k, "energy_per_atom_eV": -3.0 - k, "field_electrons": field.n_electrons,
            "status": "ok",
        })
    return root


def test_dataset_features_route_cache_and_failures(tmp_path, monkeypatch):
    from leanecd.data import load_dataset
    from leanecd.renormalize import remove_negative

    ds = load_dataset(_embedded_dataset(tmp_path / "embedded"))
    count = _Counter(monkeypatch)
    store = tmp_path / "store"
    with pytest.warns(UserWarning, match=r"1 of 3 compounds .*synth-zbad"):
        ids, X, r = features.dataset_features(ds, store, progress=False)
    assert ids == ["synth-fcc", "synth-sc"] and r.ids == ids
    assert list(r.failures) == ["synth-zbad"] and "total charge" in r.failures["synth-zbad"]
    assert X.shape == (2, 51, 51, 51) and X.dtype == np.float32
    assert (r.computed, r.cached, count.n) == (2, 0, 2)
    for n, id_ in enumerate(ids):  # the route: the field as stored -> remove_negative -> autocorrelation
        field = ds.field(id_)
        want = correlations.autocorrelation(remove_negative(field)).astype(np.float32)
        assert np.array_equal(X[n], want), id_
        assert X[n, 25, 25, 25] == pytest.approx(field.rho.mean(), rel=1e-6)  # f0 = mean density, kept
    assert ds.field("synth-fcc").rho.min() < 0  # the stored field has negative voxels; the features are fine
    assert r.records[0]["file"].startswith("synth-fcc-")

    count.n = 0  # a second call computes nothing
    with pytest.warns(UserWarning, match="synth-zbad"):
        ids2, X2, r2 = features.dataset_features(ds, store, progress=False)
    assert (r2.computed, r2.cached, count.n) == (0, 2, 0)
    assert ids2 == ids and np.array_equal(X2, X)


def test_dataset_features_default_store(tmp_path, monkeypatch):
    from leanecd.data import load_dataset

    ds = load_dataset(_embedded_dataset(tmp_path / "data" / "embedded"))
    monkeypatch.delenv("LEANECD_CACHE", raising=False)
    assert features.default_cache_dir(ds) == (
        tmp_path / "data" / "features-cache" / "synthetic-embedded-0.0-test+3cpd").resolve()
    monkeypatch.setenv("LEANECD_CACHE", str(tmp_path / "cache"))
    assert features.default_cache_dir(ds) == tmp_path / "cache" / "synthetic-embedded-0.0-test+3cpd"
    with pytest.warns(UserWarning):
        ids, X, r = features.dataset_features(ds.subset(["synth-sc", "synth-zbad"]), progress=False)
    assert r.store_dir == tmp_path / "cache" / "synthetic-embedded-0.0-test+3cpd"
    assert ids == ["synth-sc"] and (tmp_path / "cache" / "synthetic-embedded-0.0-test+3cpd" / "index.json").is_file()
