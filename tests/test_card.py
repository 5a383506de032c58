"""The dataset card's generator (``leanecd.card``): units, composition gap, convergence table."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from leanecd import card, eos
from leanecd.dft import LABEL_COLUMNS, PAPER_COMPOSITION
from leanecd.sources import default_embedded_root
from leanecd.store import read_json

ROOT = Path(__file__).resolve().parents[1]


def _embedded() -> Path:
    root = default_embedded_root()
    if not (root / "records").is_dir():
        pytest.skip("no embedded dataset")
    return root


def test_units_table_covers_every_labels_column():
    """Every column of labels.csv has a unit and a meaning, and the card's table lists it."""
    labels = _embedded() / "labels.csv"
    with open(labels, newline="") as fh:
        header = next(csv.reader(fh))
    missing = [c for c in header if c not in LABEL_COLUMNS]
    assert not missing, f"labels.csv columns without a unit in leanecd.dft.LABEL_COLUMNS: {missing}"
    table = card.units_table()
    rows = {line.split("|")[1].strip().strip("`") for line in table.splitlines()[2:]}
    assert set(header) <= rows
    assert len(table.splitlines()) == 2 + len(LABEL_COLUMNS)


def test_composition_gap_counts_the_records():
    root = _embedded()
    recs = [read_json(p) for p in sorted((root / "records").glob("*.json"))]
    gap = card.composition_gap(recs)
    counts = Counter(r["n_elements"] for r in recs)
    for k, name in card.N_ELEMENTS_NAMES.items():
        if k in counts or k in PAPER_COMPOSITION:
            assert gap.loc[name, "ours"] == counts.get(k, 0), name
            assert gap.loc[name, "paper"] == PAPER_COMPOSITION.get(k, 0), name
    assert gap["ours"].sum() == len(recs)
    assert gap["ours_%"].sum() == pytest.approx(100)
    assert gap.loc["ternary", "paper_%"] == pytest.approx(100 * 947 / sum(PAPER_COMPOSITION.values()))


def _birch_murnaghan(v, e0, v0, b_gpa, bp):
    """Third-order Birch–Murnaghan E(V) (eV; V in Å³, B in GPa)."""
    b = b_gpa / eos.EV_PER_A3_IN_GPA
    eta = (v0 / v) ** (2 / 3)
    return e0 + 9 * v0 * b / 16 * ((eta - 1) ** 3 * bp + (eta - 1) ** 2 * (6 - 4 * eta))


def _write_scan(root: Path, cid: str, ecut: float, kd: float, reference: bool, b_gpa: float, e0: float = -10.0,
                width: float | None = None):
    v = 20.0 * np.array([0.91, 0.94, 0.97, 1.0, 1.03, 1.06, 1.09])
    doc = {"id": cid, "kind": "hard", "ecut_eV": ecut, "kpt_density": kd, "reference": reference,
           "eos_volumes_A3": v.tolist(), "eos_energies_eV": _birch_murnaghan(v, e0, 20.0, b_gpa, 4.5).tolist(),
           "natoms": 2, "cpu_s": 12.5}
    if width is not None:  # files of the k and cut-off scans name no width: they ran at the protocol's
        doc["smearing_eV"] = width
    p = root / cid / (f"{ecut:.0f}eV-k{kd:g}" + ("" if width is None else f"-w{width:g}") + ".json")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc))
    return p


def test_convergence_table_recovers_a_known_curve(tmp_path):
    ref = _write_scan(tmp_path, "LiF-rocksalt", 900.0, 5.0, True, 100.0)
    _write_scan(tmp_path, "LiF-rocksalt", 450.0, 4.0, False, 110.0, e0=-9.9)
    _write_scan(tmp_path, "Cu-cscl", 450.0, 4.0, False, 100.0)  # no reference: no deltas
    _write_scan(tmp_path, "Sr-fcc", 650.0, 10.0, True, 12.5)
    _write_scan(tmp_path, "Sr-fcc", 450.0, 16.0, False, 11.25, width=0.01)
    full = card.convergence_table(tmp_path)
    sr = full[full["id"] == "Sr-fcc"].set_index("smearing_eV")
    assert set(sr.index) == {card.DFTSettings().smearing_eV, 0.01}  # a file without a width: the protocol's
    assert not sr.loc[0.01, "reference"] and sr.loc[0.01, "dB_%"] == pytest.approx(-10.0, rel=1e-2)
    assert "| 0.01 |" in card._convergence_md(full)
    df = full[full["id"] != "Sr-fcc"].set_index(["id", "ecut_eV"])
    assert list(card.convergence_table(tmp_path).columns) == card.CONVERGENCE_COLUMNS
    r = df.loc[("LiF-rocksalt", 900.0)]
    assert r["reference"]
    assert r["B_GPa"] == pytest.approx(100.0, rel=1e-3)
    assert r["Bprime"] == pytest.approx(4.5, rel=1e-2)
    assert r["a0_A"] == pytest.approx((4 * 20.0) ** (1 / 3), rel=1e-6)  # rocksalt: primitive cell, 4 per cube
    assert r["E0_eV_atom"] == pytest.approx(-5.0, abs=1e-6)
    assert r["dB_%"] == 0 and r["da0_%"] == 0 and r["dE_meV_atom"] == 0
    # the same numbers as a brute-force non-linear least-squares refit of that file
    from scipy.optimize import curve_fit

    doc = read_json(ref)
    v, e = np.array(doc["eos_volumes_A3"]), np.array(doc["eos_energies_eV"])
    (e0, v0, b, bp), _ = curve_fit(_birch_murnaghan, v, e, p0=(e.min(), v.mean(), 50.0, 4.0), maxfev=20000)
    assert r["B_GPa"] == pytest.approx(b, rel=1e-6)
    assert r["Bprime"] == pytest.approx(bp, rel=1e-5)
    assert r["a0_A"] == pytest.approx((4 * v0) ** (1 / 3), rel=1e-8)
    o = df.loc[("LiF-rocksalt", 450.0)]
    assert o["dB_%"] == pytest.approx(10.0, rel=1e-2)
    assert o["dE_meV_atom"] == pytest.approx(50.0, abs=1e-3)
    c = df.loc[("Cu-cscl", 450.0)]
    assert c["a0_A"] == pytest.approx(20.0 ** (1 / 3), rel=1e-6)  # simple cubic: 1 cell per cube
    assert np.isnan(c["dB_%"])


def test_convergence_table_without_a_study(tmp_path):
    assert card.convergence_table(tmp_path / "none").empty
    assert "has not run" in card._convergence_md(card.convergence_table(tmp_path))


def test_reliability_counts():
    import pandas as pd

    assert "no reliability flag" in card.reliability_counts(pd.DataFrame({"id": ["a"]}))
    text = card.reliability_counts(pd.DataFrame({
        "reliability": ["ok", "uncertain", "uncertain"],
        "reliability_reason": ["", "B′ = 9.10 outside [2.5, 7.0]", "B′ = 1.20 outside [2.5, 7.0]; fit residual 0.3"]}))
    assert "| uncertain | 2 |" in text and "| ok | 1 |" in text
    assert "| B′ = … outside [2.5, 7.0] | 2 |" in text


def test_card_has_no_unfilled_placeholder(tmp_path):
    root = _embedded()
    text = card.write_card(root, card=tmp_path / "card.md").read_text()
    assert "{{" not in text and "}}" not in text
    assert "gpaw_data" in text and "SHA-256" in text


def test_citation_file_parses():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["authors"] and cff["title"]
    assert any("Lean CNNs" in r["title"] for r in cff["references"])


def test_validation_table_measures_each_label_against_its_reference(tmp_path):
    """Cu at the Δ-project's a0 and 6 % above its B fails the 5 % target; at its B it passes;
    a compound without a reference is not listed."""
    from leanecd.dft.references import DELTA_WIEN2K
    from leanecd.store import write_json

    v0, b = DELTA_WIEN2K["Cu"]
    a0 = (4 * v0) ** (1 / 3)
    vols = list(np.linspace(0.91, 1.09, 7) * v0)
    ens = [_birch_murnaghan(v, -4.0, v0, b * 1.06, 4.8) for v in vols]
    rec = {"id": "Cu-fcc", "a0_A": a0, "bulk_modulus_GPa": b * 1.06, "bulk_modulus_prime": 4.8, "protocol": "0.7.0",
           "eos_volumes_A3": vols, "eos_energies_eV": ens, "fit_rms_meV_per_atom": 0.0, "species": ["Cu"],
           "settings": {"ecut_eV": 450.0, "kpt_density": 8.0}}
    write_json(tmp_path / "embedded" / "records" / "Cu-fcc.json", rec)
    write_json(tmp_path / "embedded" / "records" / "NaCl-rocksalt.json", {**rec, "id": "NaCl-rocksalt"})
    df = card.validation_table(tmp_path / "embedded")
    assert list(df["id"]) == ["Cu-fcc"]
    row = df.iloc[0]
    assert row["dB_%"] == pytest.approx(6.0) and abs(row["da0_%"]) < 1e-9 and not row["within"]
    assert "| Δ-project WIEN2k | no | 1 | 0 | Cu-fcc (B +6.0 %, a₀ +0.00 %) |" in card._validation_md(df)
    write_json(tmp_path / "embedded" / "records" / "Cu-fcc.json", {**rec, "bulk_modulus_GPa": b * 1.04})
    assert bool(card.validation_table(tmp_path / "embedded").iloc[0]["within"])


def test_failure_status_follows_a_retry_from_plan_to_record(tmp_path):
    from leanecd import dft
    from leanecd.store import write_json

    fail = {"id": "Fe2SiTi-heusler", "prototype": "heusler", "species": ["Ti", "Si", "Fe", "Fe"],
            "reason": "SCF failed", "status": "failed", "protocol": "0.6.2"}
    write_json(tmp_path / "failures" / "Fe2SiTi-heusler.json", fail)
    df = card.failure_status(tmp_path)
    assert df.to_dict("records") == [{"id": "Fe2SiTi-heusler", "reason": "SCF failed", "retry": "antiferro",
                                      "retry_result": "not run"}]
    write_json(tmp_path / "history" / f"Fe2SiTi-heusler@{dft.DATASET_VERSION}-antiferro-failed.json",
               {**fail, "reason": "fit residual 3 meV/atom", "start": "antiferro"})
    assert card.failure_status(tmp_path)["retry_result"].tolist() == ["failed: fit residual 3 meV/atom"]
    (tmp_path / "failures" / "Fe2SiTi-heusler.json").unlink()
    write_json(tmp_path / "records" / "Fe2SiTi-heusler.json",
               {"id": "Fe2SiTi-heusler", "start": "antiferro", "retried_failure": "SCF failed"})
    assert card.failure_status(tmp_path).to_dict("records") == [
        {"id": "Fe2SiTi-heusler", "reason": "SCF failed", "retry": "antiferro", "retry_result": "stored"}]
    assert card.spin_probes(tmp_path).empty
