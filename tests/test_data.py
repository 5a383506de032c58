"""Tests of :mod:`leanecd.data`: the three dataset sources and the Dataset object.

Every dataset built here is synthetic: made-up ids, made-up labels and synthetic
fields (smooth random numbers on tiny grids, no DFT behind them). Only the last
test reads the project's real embedded dataset, when it exists.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk

from leanecd.data import load_dataset
from leanecd.dataset import TARGETS, Dataset
from leanecd.errors import FileFormatError
from leanecd.io import ECDField, write_chgcar
from leanecd.sources import default_embedded_root
from leanecd.store import save_field, write_json

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers


def _synthetic_field(seed: int, formula="NaCl", shape=(4, 4, 6)) -> ECDField:
    """A synthetic field on a tiny grid of a rocksalt primitive cell (no DFT)."""
    atoms = bulk(formula, "rocksalt", a=5.0 + 0.1 * seed)
    rho = 0.05 + np.random.default_rng(seed).random(shape)
    return ECDField(rho=rho, lattice=atoms.cell[:], atoms=atoms, source=f"synthetic seed {seed}")


EMBEDDED = [  # synthetic records: (id, formula, spacegroup, symbol, B, E)
    ("synth-NaCl", "NaCl", 225, "Fm-3m", 25.0, -3.4),
    ("synth-KBr", "KBr", 225, "Fm-3m", 15.5, -2.9),
    ("synth-MgO", "MgO", 225, "Fm-3m", 160.0, -6.0),
]


def _make_embedded(root: Path, labels_csv: bool = True) -> Path:
    write_json(root / "dataset.json", {"name": "synthetic-embedded", "version": "0.0-test", "settings": {"xc": "none"}})
    rows = []
    for k, (id_, formula, spg, sym, b, e) in enumerate(EMBEDDED):
        field = _synthetic_field(k, formula)
        save_field(root / "fields" / f"{id_}.npz", field)
        rec = {
            "id": id_, "formula": formula, "prototype": "rocksalt", "spacegroup": spg, "spacegroup_symbol": sym,
            "n_elements": 2, "elements": sorted(set(field.atoms.get_chemical_symbols())), "natoms": 2,
            "a0_A": 5.0 + 0.1 * k, "bulk_modulus_GPa": b, "bulk_modulus_prime": 4.5, "energy_per_atom_eV": e,
            "fit_rms_meV_per_atom": 0.1, "magmom_total": 0.0, "n_valence": 16, "cell": "primitive",
            "field_electrons": field.n_electrons, "status": "ok",
        }
        write_json(root / "records" / f"{id_}.json", rec)
        rows.append(rec)
    write_json(root / "failures" / "synth-CsAu.json",
               {"id": "synth-CsAu", "formula": "CsAu", "prototype": "CsCl", "reason": "E(V) fit rms too large"})
    if labels_csv:
        pd.DataFrame(rows).drop(columns=["elements"]).to_csv(root / "labels.csv", index=False)
    return root


def _assert_format_error(call, path, *phrases):
    with pytest.raises(FileFormatError) as info:
        call()
    msg = str(info.value)
    assert str(path) in msg, msg
    assert any(p.lower() in msg.lower() for p in phrases), msg
    return msg


# --------------------------------------------------------------------------- embedded layout


def test_embedded_layout_loads(tmp_path):
    _make_embedded(tmp_path)
    ds = load_dataset("embedded", root=tmp_path)
    assert isinstance(ds, Dataset)
    assert len(ds) == 3
    assert ds.ids == sorted(r[0] for r in EMBEDDED)
    assert ds.version == "0.0-test+3cpd" and ds.name == "synthetic-embedded"
    assert str(tmp_path) in ds.source
    assert ds.info["settings"] == {"xc": "none"}
    assert set(TARGETS) <= set(ds.table.columns)
    assert ds.table.index.name == "id"
    assert ds.table.loc["synth-MgO", "bulk_modulus_GPa"] == 160.0
    assert ds.table.loc["synth-MgO", "spacegroup"] == 225

    y = ds.targets(list(TARGETS))
    assert y.shape == (3, 2) and y.dtype == np.float64
    np.testing.assert_array_equal(ds.targets("bulk_modulus_GPa"), [15.5, 160.0, 25.0])  # id order: KBr, MgO, NaCl

    assert ds.skipped == {}
    assert list(ds.failures["id"]) == ["synth-CsAu"]
    assert list(ds.failures.columns[:4]) == ["id", "formula", "prototype", "reason"]


def test_embedded_fields_are_lazy_and_match_records(tmp_path):
    _make_embedded(tmp_path)
    ds = load_dataset("embedded", root=tmp_path)
    f = ds.field("synth-NaCl")
    assert isinstance(f, ECDField) and f.shape == (4, 4, 6)
    assert f.meta["id"] == "synth-NaCl"
    np.testing.assert_allclose(f.rho, _synthetic_field(0).rho, rtol=1e-6)  # float32 storage
    for id_, loader in ds.items():
        field = loader()
        assert field.n_electrons == pytest.approx(ds.table.loc[id_, "field_electrons"], rel=1e-6)
        assert pickle.loads(pickle.dumps(loader))().shape == field.shape  # picklable for worker processes
    with pytest.raises(KeyError, match="no compound"):
        ds.field("synth-CsAu")


def test_embedded_directory_path_and_env_var(tmp_path, monkeypatch):
    _make_embedded(tmp_path / "data" / "embedded")
    assert len(load_dataset(tmp_path / "data" / "embedded")) == 3  # a directory with dataset.json
    monkeypatch.setenv("LEANECD_DATA", str(tmp_path / "data"))
    assert default_embedded_root() == tmp_path / "data" / "embedded"
    assert len(load_dataset()) == 3
    monkeypatch.setenv("LEANECD_DATA", str(tmp_path / "data" / "embedded"))
    assert len(load_dataset("embedded")) == 3


def test_embedded_missing_dataset(tmp_path):
    _assert_format_error(lambda: load_dataset("embedded", root=tmp_path / "nowhere"), tmp_path / "nowhere",
                         "dataset.json missing")


def test_subset(tmp_path):
    ds = load_dataset("embedded", root=_make_embedded(tmp_path))
    sub = ds.subset(["synth-NaCl", "synth-KBr"])
    assert sub.ids == ["synth-NaCl", "synth-KBr"] and len(sub) == 2
    np.testing.assert_array_equal(sub.targets("energy_per_atom_eV"), [-3.4, -2.9])
    with pytest.raises(KeyError):
        ds.subset(["nope"])


def test_malformed_record_json(tmp_path):
    _make_embedded(tmp_path)
    bad = tmp_path / "records" / "synth-KBr.json"
    bad.write_text('{"id": "synth-KBr", "formula": ')
    _assert_format_error(lambda: load_dataset("embedded", root=tmp_path), bad, "malformed JSON")


@pytest.mark.parametrize(
    "change, phrase",
    [
        ({"bulk_modulus_GPa": None}, "bulk_modulus_GPa"),
        ({"bulk_modulus_GPa": float("nan")}, "finite"),
        ({"bulk_modulus_GPa": -5.0}, "not positive"),
        ({"energy_per_atom_eV": "na"}, "energy_per_atom_eV"),
        ({"status": "failed"}, "status"),
        ({"id": "synth-other"}, "does not match"),
        ({"spacegroup": "225"}, "spacegroup"),
    ],
)
def test_malformed_record_values(tmp_path, change, phrase):
    _make_embedded(tmp_path)
    p = tmp_path / "records" / "synth-KBr.json"
    rec = json.loads(p.read_text())
    rec.update(change)
    p.write_text(json.dumps(rec))
    _assert_format_error(lambda: load_dataset("embedded", root=tmp_path), p, phrase)


def test_record_missing_key(tmp_path):
    _make_embedded(tmp_path)
    p = tmp_path / "records" / "synth-KBr.json"
    rec = json.loads(p.read_text())
    del rec["energy_per_atom_eV"]
    p.write_text(json.dumps(rec))
    _assert_format_error(lambda: load_dataset("embedded", root=tmp_path), p, "lacks keys")


def test_missing_and_corrupt_field_file(tmp_path):
    _make_embedded(tmp_path)
    fpath = tmp_path / "fields" / "synth-MgO.npz"
    fpath.write_bytes(b"not a zip file")
    ds = load_dataset("embedded", root=tmp_path)  # lazy: loading the table does not read fields
    _assert_format_error(lambda: ds.field("synth-MgO"), fpath, "unreadable field file")
    fpath.unlink()
    _assert_format_error(lambda: load_dataset("embedded", root=tmp_path), fpath, "field file missing")


def test_targets_refuse_missing_values(tmp_path):
    ds = load_dataset("embedded", root=_make_embedded(tmp_path))
    with pytest.raises(KeyError, match="no label column"):
        ds.targets("shear_modulus_GPa")
    ds.table.loc["synth-KBr", "bulk_modulus_GPa"] = np.nan
    with pytest.raises(ValueError, match="synth-KBr"):
        ds.targets("bulk_modulus_GPa")


# --------------------------------------------------------------------------- CHGCAR directory


def _make_chgcar_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_chgcar(_synthetic_field(1), root / "synth-a.CHGCAR")
    write_chgcar(_synthetic_field(2, "KBr"), root / "synth-b")  # file name == id
    write_chgcar(_synthetic_field(3, "MgO"), root / "synth-c.vasp")
    write_chgcar(_synthetic_field(4), root / "synth-unlabelled.CHGCAR")
    (root / "README.md").write_text("synthetic CHGCARs for a test\n")
    pd.DataFrame(
        {
            "id": ["synth-a", "synth-b", "synth-c", "synth-missing"],
            "bulk_modulus_GPa": [25.0, 15.0, 160.0, 50.0],
            "energy_per_atom_eV": [-3.4, -2.9, -6.0, -1.0],
        }
    ).to_csv(root / "labels.csv", index=False)
    return root


def test_chgcar_directory(tmp_path):
    root = _make_chgcar_dir(tmp_path / "chg")
    ds = load_dataset(root)
    assert ds.ids == ["synth-a", "synth-b", "synth-c"]
    assert ds.version == "local"
    np.testing.assert_array_equal(ds.targets("bulk_modulus_GPa"), [25.0, 15.0, 160.0])
    assert set(ds.skipped) == {"synth-missing", "synth-unlabelled"}
    assert "no CHGCAR" in ds.skipped["synth-missing"]
    assert "no row" in ds.skipped["synth-unlabelled"]
    f = ds.field("synth-b")
    np.testing.assert_allclose(f.rho, _synthetic_field(2, "KBr").rho, rtol=1e-10)
    assert f.atoms.get_chemical_formula() == "BrK"
    assert ds.failures.empty


def test_chgcar_directory_label_errors(tmp_path):
    root = _make_chgcar_dir(tmp_path / "chg")
    lab = root / "labels.csv"
    lab.write_text("name,bulk_modulus_GPa\nsynth-a,1\n")
    _assert_format_error(lambda: load_dataset(root), lab, "no 'id' column")
    lab.write_text("id,bulk_modulus_GPa\nsynth-a,1\nsynth-a,2\n")
    _assert_format_error(lambda: load_dataset(root), lab, "duplicate")
    lab.unlink()
    _assert_format_error(lambda: load_dataset(root), lab, "no label table")
    _assert_format_error(lambda: load_dataset(tmp_path / "absent"), tmp_path / "absent", "no such directory")


def test_chgcar_directory_ambiguous_files(tmp_path):
    root = _make_chgcar_dir(tmp_path / "chg")
    write_chgcar(_synthetic_field(5), root / "synth-a.CHG")
    _assert_format_error(lambda: load_dataset(root), root, "several CHGCAR")


# --------------------------------------------------------------------------- JARVIS


def _jarvis_entry(jid, spg, b, e, formula="NaCl", elements=("Na", "Cl")):
    atoms = bulk("NaCl", "rocksalt", a=5.6)
    return {
        "jid": jid, "spg_number": spg, "spg_symbol": {225: "Fm-3m", 216: "F-43m", 221: "Pm-3m"}.get(spg, "P6_3/mmc"),
        "formula": formula, "bulk_modulus_kv": b, "optb88vdw_total_energy": e,
        "atoms": {"lattice_mat": atoms.cell[:].tolist(), "coords": atoms.get_scaled_positions().tolist(),
                  "elements": list(elements), "cartesian": False},
    }


def _make_jarvis(root: Path) -> Path:
    """A fake dft_3d JSON (made-up jids and numbers) + synthetic CHGCARs in both layouts."""
    entries = [
        _jarvis_entry("JVASP-fake1", 225, 24.0, -3.3),
        _jarvis_entry("JVASP-fake2", 216, 60.5, -4.1, "ZnS", ["Zn", "S"]),
        _jarvis_entry("JVASP-fake3", 221, 80.0, -5.0, "CsCl", ["Cs", "Cl"]),  # no CHGCAR -> skipped
        _jarvis_entry("JVASP-fake4", 194, 90.0, -5.5),  # hexagonal: filtered out
        _jarvis_entry("JVASP-fake5", 225, "na", -2.0),  # no bulk modulus: filtered out
        _jarvis_entry("JVASP-fake6", 221, -1.0, -2.0),  # non-positive modulus: filtered out
        _jarvis_entry("JVASP-fake7", 225, 30.0, "na"),  # no energy: filtered out
        _jarvis_entry("JVASP-fake8", 221, 12.0, -1.5, None, ["Cs", "Cl", "Cs", "Cl"]),  # formula from atoms
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "jdft_3d-fake.json").write_text(json.dumps(entries))
    write_chgcar(_synthetic_field(1), root / "CHGCAR" / "JVASP-fake1.CHGCAR")
    write_chgcar(_synthetic_field(2), root / "JVASP-fake2" / "CHGCAR")
    write_chgcar(_synthetic_field(3), root / "CHGCAR" / "JVASP-fake4.CHGCAR")  # present but filtered by spg
    write_chgcar(_synthetic_field(4), root / "JVASP-fake8" / "CHGCAR")
    return root


def test_jarvis_route(tmp_path):
    root = _make_jarvis(tmp_path / "jarvis")
    with pytest.warns(UserWarning, match="1 of 4 selected JARVIS compounds have no CHGCAR"):
        ds = load_dataset("jarvis", root=root)
    assert ds.ids == ["JVASP-fake1", "JVASP-fake2", "JVASP-fake8"]
    assert list(ds.skipped) == ["JVASP-fake3"]
    assert "no CHGCAR" in ds.skipped["JVASP-fake3"]
    assert ds.info["missing_chgcar"] == ["JVASP-fake3"]
    assert ds.info["chgcar_outside_selection"] == ["JVASP-fake4"]
    assert ds.version == "jdft_3d-fake"
    assert ds.info["selection"]["funnel"] == {"entries": 8, "in_space_groups": 7, "with_bulk_modulus": 6,
                                              "with_both_labels": 5, "selected": 4}
    assert ds.info["with_chgcar"] == 3
    np.testing.assert_array_equal(ds.targets(list(TARGETS)), [[24.0, -3.3], [60.5, -4.1], [12.0, -1.5]])
    assert list(ds.table["spacegroup"]) == [225, 216, 221]
    assert ds.table.loc["JVASP-fake8", "formula"] == "CsCl"
    assert ds.table.loc["JVASP-fake8", "natoms"] == 4
    assert ds.table.loc["JVASP-fake2", "n_elements"] == 2
    f = ds.field("JVASP-fake2")
    np.testing.assert_allclose(f.rho, _synthetic_field(2).rho, rtol=1e-10)


def test_jarvis_space_group_choice(tmp_path):
    root = _make_jarvis(tmp_path / "jarvis")
    ds = load_dataset("jarvis", root=root, space_groups=[225])
    assert ds.ids == ["JVASP-fake1"] and ds.skipped == {}
    ds = load_dataset("jarvis", root=root, space_groups=[194])
    assert ds.ids == ["JVASP-fake4"]


@pytest.mark.filterwarnings("ignore:.*have no CHGCAR")
def test_jarvis_input_errors(tmp_path):
    root = _make_jarvis(tmp_path / "jarvis")
    with pytest.raises(ValueError, match="needs the charge densities: chgcar_dir="):
        load_dataset("jarvis")
    (root / "other.json").write_text("[]")
    _assert_format_error(lambda: load_dataset("jarvis", root=root / "nope"), root / "nope", "no such directory")
    assert len(load_dataset("jarvis", root=root)) == 3  # the dft_3d-named file wins
    (root / "other_dft_3d.json").write_text("[]")
    _assert_format_error(lambda: load_dataset("jarvis", root=root), root, "several")
    assert len(load_dataset("jarvis", root=root, jarvis_json="jdft_3d-fake.json")) == 3
    bad = root / "bad.json"
    bad.write_text(json.dumps({"jid": "x"}))
    _assert_format_error(lambda: load_dataset("jarvis", root=root, jarvis_json=bad), bad, "list")
    bad.write_text(json.dumps([{"spg_number": 225}]))
    _assert_format_error(lambda: load_dataset("jarvis", root=root, jarvis_json=bad), bad, "jid")
    write_chgcar(_synthetic_field(9), root / "JVASP-fake1" / "CHGCAR")  # second copy, other layout
    _assert_format_error(lambda: load_dataset("jarvis", root=root, jarvis_json="jdft_3d-fake.json"), root,
                         "several CHGCAR files for JVASP-fake1")


# --------------------------------------------------------------------------- the real embedded dataset

EMBEDDED_ROOT = REPO / "data" / "embedded"


@pytest.mark.skipif(
    not (EMBEDDED_ROOT / "dataset.json").is_file() or not any((EMBEDDED_ROOT / "records").glob("*.json")),
    reason=f"no embedded dataset with records at {EMBEDDED_ROOT} (generate it with leanecd-dft)",
)
def test_real_embedded_dataset():
    ds = load_dataset("embedded", root=EMBEDDED_ROOT)
    assert len(ds) > 0 and ds.version
    for id_ in ds.ids:
        assert (EMBEDDED_ROOT / "fields" / f"{id_}.npz").is_file(), id_
    labels = EMBEDDED_ROOT / "labels.csv"
    if labels.is_file():
        lab = pd.read_csv(labels, dtype={"id": str}).set_index("id")
        assert sorted(lab.index) == sorted(ds.ids)
        for col in TARGETS:
            np.testing.assert_allclose(lab.loc[ds.ids, col].to_numpy(float), ds.targets(col), rtol=1e-9, err_msg=col)
    if "field_electrons" in ds.table.columns:
        for id_, loader in ds.items():
            f = loader()
            assert f.n_electrons == pytest.approx(ds.table.loc[id_, "field_electrons"], rel=1e-4), id_


def test_dataset_card_matches_the_files(tmp_path):
    """data/README.md is what the generator writes from records/ and failures/ now."""
    from leanecd.card import write_card

    root = default_embedded_root()
    if not (root / "records").is_dir():
        pytest.skip("no embedded dataset")
    fresh = write_card(root, card=tmp_path / "card.md").read_text()
    assert fresh == (root.parent / "README.md").read_text(), "run `leanecd-dft labels --out data/embedded`"


def test_reliable_subset_drops_exactly_the_flagged_labels_and_says_why():
    ds = load_dataset("embedded")
    flagged = set(ds.table.index[ds.table["reliability"] != "ok"])
    rel = ds.reliable()
    assert set(rel.ids) == set(ds.ids) - flagged and flagged <= set(rel.skipped)
    assert all(rel.skipped[i].startswith("label uncertain: ") and len(rel.skipped[i]) > 18 for i in flagged)
    assert rel.version == f"{ds.version}-reliable{len(rel)}"
    # the flag is the one labels.csv carries (records are the truth; the table is derived from them)
    import pandas as pd

    labels = pd.read_csv(EMBEDDED_ROOT / "labels.csv", index_col="id")
    if "reliability" in labels.columns:
        assert (labels.loc[ds.ids, "reliability"] == ds.table["reliability"]).all()
