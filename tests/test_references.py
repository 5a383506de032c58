"""The independent references (``leanecd.dft.references``): the ACWF file refits, the volume → a0
conversion per prototype, and the rule that flags a label far from a GPAW-PBE reference."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from leanecd import eos
from leanecd.dft import label_reliability, label_row
from leanecd.dft.compounds import build_atoms
from leanecd.dft.references import (
    ACWF_FILE,
    VALIDATION_TARGETS,
    Reference,
    a0_from_volume,
    acwf_references,
    disagreement,
    references,
)
from leanecd.store import read_json, write_json

ROOT = Path(__file__).resolve().parents[1]
ACWF = ROOT / "data" / "references" / ACWF_FILE


def _bm(v, e0, v0, b_gpa, bp):
    """Third-order Birch–Murnaghan E(V) (eV; V in Å³, B in GPa)."""
    b = b_gpa / eos.EV_PER_A3_IN_GPA
    eta = (v0 / v) ** (2 / 3)
    return e0 + 9 * v0 * b / 16 * ((eta - 1) ** 3 * bp + (eta - 1) ** 2 * (6 - 4 * eta))


def test_our_fit_of_each_acwf_scan_gives_the_studys_own_parameters():
    """leanecd.eos.fit on the study's stored 7 E(V) points reproduces the study's own Birch–Murnaghan
    V0, B and B′ for every compound and code: an independent fitter, and a check of the transcription."""
    for cid, codes in read_json(ACWF)["compounds"].items():
        for code in ("gpaw", "wien2k", "fleur"):
            c = codes[code]
            v, e = np.array(c["eos_per_atom"]).T
            f = eos.fit(v, e)
            assert f.v0 == pytest.approx(c["V0_A3_per_atom"], rel=1e-6), (cid, code)
            assert f.b == pytest.approx(c["B0_eV_per_A3"] * eos.EV_PER_A3_IN_GPA, rel=1e-5), (cid, code)
            assert f.bprime == pytest.approx(c["Bprime"], rel=1e-4), (cid, code)


@pytest.mark.parametrize("cid, species", [("Cu-fcc", ("Cu",)), ("MgO-rocksalt", ("Mg", "O")),
                                          ("Li2O-fluorite", ("O", "Li", "Li")), ("WO3-reo3", ("W", "O", "O", "O")),
                                          ("SrTiO3-perovskite", ("Sr", "Ti", "O", "O", "O"))])
def test_a0_from_volume_inverts_the_volume_of_the_built_cell(cid, species):
    a = 4.321
    atoms = build_atoms(cid.split("-", 1)[1], species, a)
    assert a0_from_volume(cid, atoms.get_volume() / len(atoms)) == pytest.approx(a, rel=1e-12)


def test_every_acwf_compound_is_a_stored_compound_of_the_same_structure():
    """Each reference maps onto a stored record, and the stored volume is within 2 % of the study's
    GPAW volume: a wrong prototype (say, a different XO3 structure) would be tens of per cent off."""
    refs = [r for r in acwf_references(ACWF) if r.source == "ACWF GPAW"]
    assert len(refs) == len(read_json(ACWF)["compounds"]) > 0
    for ref in refs:
        path = ROOT / "data" / "embedded" / "records" / f"{ref.id}.json"
        assert path.is_file(), ref.id
        assert read_json(path)["a0_A"] == pytest.approx(ref.a0_A, rel=0.02 / 3), ref.id


def _record(cid="Cu-fcc", v0=11.95, b=140.0, bp=4.8):
    vols = list(np.linspace(0.91, 1.09, 7) * v0)
    return {"id": cid, "a0_A": a0_from_volume(cid, v0), "bulk_modulus_GPa": b, "bulk_modulus_prime": bp,
            "eos_volumes_A3": vols, "eos_energies_eV": [_bm(v, -4.0, v0, b, bp) for v in vols],
            "fit_rms_meV_per_atom": 0.0, "species": [cid.split("-")[0]], "protocol": "0.7.0",
            "settings": {"ecut_eV": 450.0, "kpt_density": 8.0}}


def test_a_label_far_from_a_gpaw_reference_is_flagged_and_one_far_from_all_electron_is_not():
    rec = _record()
    a0 = rec["a0_A"]
    near = Reference("Cu-fcc", "ACWF GPAW", a0, 140.0 * 1.02, True)
    far_b = Reference("Cu-fcc", "ACWF GPAW", a0, 140.0 / 1.10, True)
    far_a = Reference("Cu-fcc", "ACWF GPAW", a0 * 1.006, 140.0, True)
    all_electron = Reference("Cu-fcc", "ACWF all-electron", a0 * 1.02, 100.0, False)
    other = Reference("Ag-fcc", "ACWF GPAW", 4.0, 10.0, True)
    assert label_reliability(rec) == ("ok", "")
    assert label_reliability(rec, refs=[near, all_electron, other]) == ("ok", "")
    flag, why = label_reliability(rec, refs=[far_b])
    assert flag == "uncertain" and "B +10.0 %" in why and "ACWF GPAW" in why
    flag, why = label_reliability(rec, refs=[far_a])
    assert flag == "uncertain" and "a0 -0.60 %" in why
    assert disagreement(rec, [Reference("Cu-fcc", "audit", math.nan, 140.0 * 1.2, True)]).startswith("B -16.7 %")
    assert label_row(rec, [far_b])["reliability"] == "uncertain"
    assert VALIDATION_TARGETS == {"B": 0.05, "a0": 0.005}


def test_references_read_the_acwf_file_next_to_the_dataset(tmp_path):
    """Without ``references/acwf-pbe.json`` there are only the built-in references; with it, two per
    compound (GPAW and the all-electron mean of WIEN2k and FLEUR)."""
    base = references(tmp_path)
    assert {r.source for r in base} == {"Δ-project WIEN2k", "audit GPAW 700–800 eV"}
    cu = read_json(ACWF)["compounds"]["Cu-fcc"]
    write_json(tmp_path / "references" / ACWF_FILE, {"compounds": {"Cu-fcc": cu}})
    extra = references(tmp_path)[len(base):]
    assert [(r.id, r.source, r.gpaw) for r in extra] == [("Cu-fcc", "ACWF GPAW", True),
                                                         ("Cu-fcc", "ACWF all-electron", False)]
    ae_v = (cu["wien2k"]["V0_A3_per_atom"] + cu["fleur"]["V0_A3_per_atom"]) / 2
    assert extra[1].a0_A == pytest.approx((4 * ae_v) ** (1 / 3))
    assert extra[0].B_GPa == pytest.approx(cu["gpaw"]["B0_eV_per_A3"] * eos.EV_PER_A3_IN_GPA)


def test_a_label_far_from_its_convergence_study_reference_is_flagged(tmp_path):
    """FeSc stored at the protocol's k density with B 14 % above the study's dense reference run
    (Birch–Murnaghan points, B 82 GPa at 650 eV, k 10 Å; a coarser reference run and a non-reference
    run beside it): labels.csv flags it, and the card's table lists the densest reference only."""
    from leanecd import card
    from leanecd.dft import write_labels
    from leanecd.dft.references import study_references

    v0, b, bp = 15.55, 82.0, 10.8  # Å³ per cell, GPa
    vols = list(np.linspace(0.91, 1.09, 7) * v0)
    a0 = a0_from_volume("FeSc-cscl", v0 / 2)

    def run(ecut, kd, reference, b_run):
        return {"id": "FeSc-cscl", "kind": "metal", "ecut_eV": ecut, "kpt_density": kd, "reference": reference,
                "natoms": 2, "eos_volumes_A3": vols, "eos_energies_eV": [_bm(v, -13.7, v0, b_run, bp) for v in vols]}

    study = tmp_path / "convergence" / "FeSc-cscl"
    write_json(study / "650eV-k10.json", run(650.0, 10.0, True, b))
    write_json(study / "650eV-k8.json", run(650.0, 8.0, True, 90.0))  # a coarser reference (read last): unused
    write_json(study / "450eV-k4.json", run(450.0, 4.0, False, 94.0))
    [ref] = study_references(tmp_path / "convergence")
    assert (ref.source, ref.gpaw) == ("study 650 eV, k 10 Å", True)
    assert ref.B_GPa == pytest.approx(b, rel=1e-6) and ref.a0_A == pytest.approx(a0, rel=1e-9)
    assert ref in references(tmp_path)

    ens = [_bm(v, -13.7, v0, 1.14 * b, 4.5) for v in vols]
    rec = {"id": "FeSc-cscl", "a0_A": a0, "bulk_modulus_GPa": 1.14 * b, "bulk_modulus_prime": 4.5,
           "species": ["Fe", "Sc"], "eos_volumes_A3": vols, "eos_energies_eV": ens, "fit_rms_meV_per_atom": 0.0,
           "protocol": "0.7.0", "settings": {"ecut_eV": 450.0, "kpt_density": 4.0}}
    write_json(tmp_path / "embedded" / "records" / "FeSc-cscl.json", rec)
    write_labels(tmp_path / "embedded")
    row = next(csv.DictReader(open(tmp_path / "embedded" / "labels.csv")))
    assert row["reliability"] == "uncertain" and "B +14.0 %" in row["reliability_reason"]
    assert "study 650 eV, k 10 Å" in row["reliability_reason"]
    val = card.validation_table(tmp_path / "embedded")
    assert val["reference"].tolist() == ["study 650 eV, k 10 Å"] and not val["within"].any()
    assert val["reliability"].tolist() == ["uncertain"]
    write_json(tmp_path / "embedded" / "records" / "FeSc-cscl.json", {**rec, "bulk_modulus_GPa": 1.01 * b})
    assert label_reliability(read_json(tmp_path / "embedded" / "records" / "FeSc-cscl.json"),
                             refs=references(tmp_path))[0] == "ok"
