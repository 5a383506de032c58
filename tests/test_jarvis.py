"""Tests of the JARVIS route: selection, CHGCAR matching, GPAW work items, download cache.

No test touches the network. The records are SYNTHETIC ``dft_3d``-shaped dicts made
up here (fake ``J-*`` ids, made-up labels, structures from ``ase.build``); the fields
are smooth random numbers on tiny grids. The download boundary
(:func:`leanecd.download._fetch` and :func:`leanecd.download._probe`) is replaced in
every test by a fake that fails the test if it is called unexpectedly.
"""

from __future__ import annotations

import io
import json
import socket
import zipfile
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from ase.build import bulk

import leanecd.download as dl
from leanecd.data import load_dataset
from leanecd.dataset import TARGETS
from leanecd.errors import DownloadError, FileFormatError, NetworkUnavailableError
from leanecd.io import ECDField, write_chgcar
from leanecd.jarvis import (
    PAPER_COUNTS,
    fetch_jarvis_entries,
    jarvis_atoms_to_ase,
    jarvis_cache_file,
    jarvis_dft_entries,
    jarvis_source,
    select_paper_compounds,
    with_jarvis_labels,
)
from leanecd.store import save_field, write_json

matplotlib.use("Agg")
REAL_PROBE, REAL_FETCH = dl._probe, dl._fetch  # before the autouse fixture replaces them


# --------------------------------------------------------------------------- synthetic records


def _atoms_dict(atoms, cartesian=False) -> dict:
    coords = atoms.get_positions() if cartesian else atoms.get_scaled_positions(wrap=False)
    return {"lattice_mat": atoms.cell[:].tolist(), "coords": coords.tolist(),
            "elements": atoms.get_chemical_symbols(), "cartesian": cartesian}


def _entry(jid, spg, b, e, atoms, formula=None) -> dict:
    return {"jid": jid, "spg_number": spg, "spg_symbol": {225: "Fm-3m", 216: "F-43m", 221: "Pm-3m"}.get(spg, "other"),
            "formula": formula or atoms.get_chemical_formula(mode="metal"),
            "bulk_modulus_kv": b, "optb88vdw_total_energy": e, "atoms": _atoms_dict(atoms)}


def _perovskite():
    from ase import Atoms

    return Atoms("SrTiO3", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
                 cell=np.eye(3) * 3.9, pbc=True)


RECORDS = [  # (made-up labels) selected: J-1, J-2, J-3, J-4, J-5, J-9
    _entry("J-1", 225, 24.0, -3.3, bulk("NaCl", "rocksalt", a=5.6)),
    _entry("J-2", 216, 70.0, -3.1, bulk("ZnS", "zincblende", a=5.4)),
    _entry("J-3", 221, 17.0, -2.9, bulk("CsCl", "cesiumchloride", a=4.1)),
    _entry("J-4", 221, 170.0, -7.9, _perovskite()),
    _entry("J-5", 225, 140.0, -3.7, bulk("Cu", "fcc", a=3.6)),
    _entry("J-6", 194, 100.0, -5.0, bulk("Mg", "hcp", a=3.2)),  # hexagonal: not cubic
    _entry("J-7", 12, 50.0, -4.0, bulk("Cu", "fcc", a=3.6, orthorhombic=True)),  # other space group
    _entry("J-8", 225, "na", -2.0, bulk("KBr", "rocksalt", a=6.6)),  # no bulk modulus
    _entry("J-9", 221, 30.0, -3.0, bulk("NaCl", "cesiumchloride", a=3.4)),  # NaCl again: a polymorph
    _entry("J-10", 216, 40.0, "na", bulk("GaAs", "zincblende", a=5.7)),  # no energy
    _entry("J-11", 221, "na", "na", bulk("CsBr", "cesiumchloride", a=4.3)),  # neither
    _entry("J-12", 225, -3.0, -1.0, bulk("LiF", "rocksalt", a=4.0)),  # unstable: B <= 0
]
SELECTED = ["J-1", "J-2", "J-3", "J-4", "J-5", "J-9"]


def _field(seed, atoms=None, shape=(4, 4, 6)) -> ECDField:
    atoms = atoms if atoms is not None else bulk("NaCl", "rocksalt", a=5.6)
    rho = 0.05 + np.random.default_rng(seed).random(shape)
    return ECDField(rho=rho, lattice=atoms.cell[:], atoms=atoms, source=f"synthetic seed {seed}")


# --------------------------------------------------------------------------- the download boundary


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Fail on any network use; keep every cache in tmp_path."""
    def probe(*a, **k):
        raise AssertionError("network probe called unexpectedly")

    def fetch(*a, **k):
        raise AssertionError("download called unexpectedly")

    def requests_get(*a, **k):
        raise AssertionError("requests.get called")

    monkeypatch.setattr(dl, "_probe", probe)
    monkeypatch.setattr(dl, "_fetch", fetch)
    monkeypatch.setattr("requests.get", requests_get)
    monkeypatch.setenv("LEANECD_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.delenv("LEANECD_OFFLINE", raising=False)


class FakeServer:
    """Serves ``payload`` through the ``_fetch`` interface; can stop early or insist on offsets."""

    def __init__(self, payload: bytes, stop_at: int | None = None, expect_offsets=None):
        self.payload, self.stop_at = payload, stop_at
        self.expect_offsets = list(expect_offsets) if expect_offsets is not None else None
        self.offsets: list[int] = []

    def __call__(self, url, part, offset):
        if self.expect_offsets is not None:
            assert offset == self.expect_offsets[len(self.offsets)], (offset, self.expect_offsets)
        self.offsets.append(offset)
        end = len(self.payload)
        if self.stop_at is not None:
            end, self.stop_at = self.stop_at, None  # the connection drops once
        with open(part, "r+b" if offset else "wb") as fh:
            fh.seek(offset)
            fh.truncate()
            fh.write(self.payload[offset:end])
        if end < len(self.payload):
            raise DownloadError("connection dropped (simulated)")
        return len(self.payload)


def _jarvis_zip(records=RECORDS, text: str | None = None) -> bytes:
    member = jarvis_source("dft_3d")[1]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, text if text is not None else json.dumps(records))
    return buf.getvalue()


def _serve(monkeypatch, server, online=True):
    monkeypatch.setattr(dl, "_probe", lambda host, port, timeout_s: online)
    monkeypatch.setattr(dl, "_fetch", server)


# --------------------------------------------------------------------------- selection


def test_selection_rule():
    selected, report = select_paper_compounds(RECORDS)
    assert [e["jid"] for e in selected] == SELECTED
    assert selected[0] is RECORDS[0]  # the input dicts, untouched
    assert report.funnel == {"entries": 12, "in_space_groups": 10, "with_bulk_modulus": 8,
                             "with_both_labels": 7, "selected": 6}
    assert report.excluded == {"bulk_modulus_kv missing": ["J-8", "J-11"],
                               "optb88vdw_total_energy missing": ["J-10"],
                               "bulk_modulus_kv <= 0 GPa": ["J-12"]}
    assert report.by_space_group == {225: 2, 216: 1, 221: 3}
    assert report.by_n_elements == {1: 1, 2: 4, 3: 1}
    assert report.elements == ["Cl", "Cs", "Cu", "Na", "O", "S", "Sr", "Ti", "Zn"]
    assert report.table["bulk_modulus_GPa"].tolist() == [24.0, 70.0, 17.0, 170.0, 140.0, 30.0]
    assert report.table["energy_per_atom_eV"].tolist() == [-3.3, -3.1, -2.9, -7.9, -3.7, -3.0]
    # other space groups, and keeping unstable moduli
    assert [e["jid"] for e in select_paper_compounds(RECORDS, [194, 12])[0]] == ["J-6", "J-7"]
    kept = select_paper_compounds(RECORDS, positive_bulk_modulus=False)[0]
    assert [e["jid"] for e in kept] == SELECTED[:5] + ["J-9", "J-12"]


def test_selection_keeps_and_reports_duplicate_formulas():
    selected, report = select_paper_compounds(RECORDS)
    assert {"J-1", "J-9"} <= {e["jid"] for e in selected}
    assert report.duplicate_formulas == {"NaCl": ["J-1", "J-9"]}
    counts = report.as_dict()
    assert counts["duplicate_formulas"] == 1 and counts["entries_with_duplicate_formula"] == 2
    json.dumps(counts)  # JSON-able
    assert "formulas selected more than once: 1 (2 compounds, all kept)" in str(report)


def test_selection_compared_with_paper():
    _, report = select_paper_compounds(RECORDS)
    table = report.comparison()
    assert table["paper"].tolist() == [1410, 15, 494, 947, 93, 1, 1550, 62]
    assert table["this selection"].tolist() == [6, 1, 4, 1, 0, 0, 6, 9]
    assert table.index[1] == "unary (1)" and table.index[5] == "quinary (5)"
    assert PAPER_COUNTS["compounds"] == 1410
    text = str(report)
    assert "12 entries -> 10 in space groups [225, 216, 221]" in text and "6 selected" in text
    assert "dropped, bulk_modulus_kv missing: 2" in text


def test_selection_rejects_malformed_entries():
    with pytest.raises(FileFormatError, match="duplicate jid 'J-1'"):
        select_paper_compounds(RECORDS + [RECORDS[0]], source="x.json")
    with pytest.raises(FileFormatError, match="entry 1 is not an object with a string 'jid'"):
        select_paper_compounds([RECORDS[0], {"spg_number": 225}])
    no_atoms = dict(RECORDS[0], atoms={})
    with pytest.raises(FileFormatError, match="J-1: 'atoms' lacks"):
        select_paper_compounds([no_atoms])


def test_selection_histograms():
    from leanecd.plots import selection_histograms

    _, report = select_paper_compounds(RECORDS)
    fig = selection_histograms(report)
    ax_a, ax_b, ax_c, ax_d = fig.axes
    stacked = {}  # space group label -> total bar height
    for bar in ax_a.patches:
        stacked[bar.get_x()] = stacked.get(bar.get_x(), 0) + bar.get_height()
    assert sorted(stacked.values()) == [1, 2, 3]
    heights = [p.get_height() for p in ax_b.patches]
    assert heights == [1, 4, 1, 0, 0, 15, 494, 947, 93, 1]  # ours for 1..5 elements, then the paper's
    assert sum(p.get_height() for p in ax_c.patches) == 6
    matplotlib.pyplot.close(fig)


# --------------------------------------------------------------------------- densities from CHGCAR files


def _chgcar_dir(root: Path) -> Path:
    """CHGCARs named by id in every recognised form; J-5 has none, J-6 is outside the selection."""
    write_chgcar(_field(1), root / "J-1.CHGCAR")
    write_chgcar(_field(2), root / "J-2" / "CHGCAR")
    write_chgcar(_field(3), root / "CHGCAR" / "J-3.CHGCAR")
    write_chgcar(_field(4), root / "J-4")
    write_chgcar(_field(9), root / "CHGCAR" / "J-9")
    write_chgcar(_field(6), root / "J-6.CHGCAR")
    (root / "notes.txt").write_text("not a CHGCAR")
    return root


def test_chgcar_dir_matching_lists_missing_ids(tmp_path):
    root = _chgcar_dir(tmp_path / "chg")
    with pytest.warns(UserWarning, match="1 of 6 selected JARVIS compounds have no CHGCAR"):
        ds = load_dataset("jarvis", chgcar_dir=root, entries=RECORDS)
    assert ds.ids == ["J-1", "J-2", "J-3", "J-4", "J-9"]
    assert ds.info["missing_chgcar"] == ["J-5"]
    assert "no CHGCAR named J-5" in ds.skipped["J-5"]
    assert ds.info["chgcar_outside_selection"] == ["J-6"]
    assert ds.info["selection"]["funnel"]["selected"] == 6
    for seed, jid in [(1, "J-1"), (2, "J-2"), (3, "J-3"), (4, "J-4"), (9, "J-9")]:
        np.testing.assert_allclose(ds.field(jid).rho, _field(seed).rho, rtol=1e-10, err_msg=jid)
    np.testing.assert_array_equal(ds.targets(list(TARGETS)),
                                  [[24.0, -3.3], [70.0, -3.1], [17.0, -2.9], [170.0, -7.9], [30.0, -3.0]])
    assert ds.table.loc["J-4", "n_elements"] == 3 and ds.table.loc["J-4", "natoms"] == 5
    # the same from a JSON file given by path, without a root
    jpath = tmp_path / "jdft_3d-synthetic.json"
    jpath.write_text(json.dumps(RECORDS))
    with pytest.warns(UserWarning, match="no CHGCAR"):
        ds2 = load_dataset("jarvis", chgcar_dir=root, jarvis_json=jpath)
    assert ds2.ids == ds.ids and ds2.version == "jdft_3d-synthetic"


def test_chgcar_dir_errors(tmp_path):
    root = _chgcar_dir(tmp_path / "chg")
    write_chgcar(_field(7), root / "J-1" / "CHGCAR")  # a second file for J-1
    with pytest.raises(FileFormatError, match="several CHGCAR files for J-1"):
        load_dataset("jarvis", chgcar_dir=root, entries=RECORDS)
    with pytest.raises(FileFormatError, match="no such directory"):
        load_dataset("jarvis", chgcar_dir=tmp_path / "nope", entries=RECORDS)
    with pytest.raises(ValueError, match="chgcar_dir="):
        load_dataset("jarvis", entries=RECORDS)


# --------------------------------------------------------------------------- densities from GPAW


@pytest.mark.parametrize("cartesian", [False, True])
def test_jarvis_atoms_to_ase(cartesian):
    from jarvis.core.atoms import Atoms as JarvisAtoms

    nacl = bulk("NaCl", "rocksalt", a=5.64)  # primitive FCC cell, 2 atoms
    d = _atoms_dict(nacl, cartesian=cartesian)
    atoms = jarvis_atoms_to_ase(d)
    np.testing.assert_allclose(atoms.cell[:], nacl.cell[:], atol=1e-12)
    assert atoms.get_chemical_symbols() == ["Na", "Cl"]
    np.testing.assert_allclose(atoms.get_positions(), nacl.get_positions(), atol=1e-12)
    assert atoms.pbc.all()
    theirs = JarvisAtoms(lattice_mat=d["lattice_mat"], coords=d["coords"], elements=d["elements"],
                         cartesian=cartesian).ase_converter()
    np.testing.assert_allclose(atoms.get_positions(), theirs.get_positions(), atol=1e-10)
    with pytest.raises(FileFormatError, match="one row of 3 per element"):
        jarvis_atoms_to_ase(dict(d, elements=["Na"]))
    with pytest.raises(FileFormatError, match="malformed JARVIS atoms"):
        jarvis_atoms_to_ase({"coords": d["coords"]})


def test_jarvis_dft_entries_round_trip():
    from ase import Atoms

    selected, _ = select_paper_compounds(RECORDS)
    items = jarvis_dft_entries(selected)
    assert [i["id"] for i in items] == SELECTED
    json.dumps(items)  # a JSON work list for `leanecd.dft run --entries`
    for item, rec in zip(items, selected):
        s = item["structure"]
        atoms = Atoms(numbers=s["numbers"], cell=s["cell"], scaled_positions=s["scaled_positions"], pbc=s["pbc"])
        ref = jarvis_atoms_to_ase(rec["atoms"])
        assert atoms.get_chemical_symbols() == rec["atoms"]["elements"]
        np.testing.assert_allclose(atoms.cell[:], rec["atoms"]["lattice_mat"], atol=1e-12)
        np.testing.assert_allclose(atoms.get_positions(), ref.get_positions(), atol=1e-10)
        assert item["meta"]["jid"] == rec["jid"]
        assert item["meta"]["bulk_modulus_kv"] == rec["bulk_modulus_kv"]
        assert item["meta"]["optb88vdw_total_energy"] == rec["optb88vdw_total_energy"]
        assert item["meta"]["spg_number"] == rec["spg_number"]
    assert items[3]["meta"]["formula"] == "SrTiO3" and len(items[3]["structure"]["numbers"]) == 5


def test_with_jarvis_labels(tmp_path):
    root = tmp_path / "jarvis-gpaw"  # the generator's output layout, made up here
    write_json(root / "dataset.json", {"name": "synthetic-gpaw", "version": "0.0-test"})
    pbe = {"J-1": (27.0, -3.5), "J-3": (19.0, -3.0), "J-99": (50.0, -4.0)}
    for k, (jid, (b, e)) in enumerate(pbe.items()):
        save_field(root / "fields" / f"{jid}.npz", _field(k))
        write_json(root / "records" / f"{jid}.json", {"id": jid, "formula": "X", "spacegroup": 225,
                                                       "bulk_modulus_GPa": b, "energy_per_atom_eV": e,
                                                       "status": "ok"})
    ds = with_jarvis_labels(load_dataset(root), RECORDS)
    assert ds.ids == ["J-1", "J-3"]
    assert ds.skipped == {"J-99": "no JARVIS entry with this jid"}
    np.testing.assert_array_equal(ds.targets(list(TARGETS)), [[24.0, -3.3], [17.0, -2.9]])
    np.testing.assert_array_equal(ds.targets(["pbe_bulk_modulus_GPa", "pbe_energy_per_atom_eV"]),
                                  [[27.0, -3.5], [19.0, -3.0]])
    np.testing.assert_allclose(ds.field("J-3").rho, _field(1).rho, rtol=1e-6)
    assert "OptB88vdW" in ds.source and "PBE" in ds.source


# --------------------------------------------------------------------------- download cache


def test_download_is_validated_cached_and_reused(tmp_path, monkeypatch):
    payload = _jarvis_zip()
    server = FakeServer(payload, expect_offsets=[0])
    _serve(monkeypatch, server)
    entries = fetch_jarvis_entries(cache_dir=tmp_path)
    assert entries == json.loads(json.dumps(RECORDS)) and server.offsets == [0]
    path = jarvis_cache_file(cache_dir=tmp_path)
    assert path.read_bytes() == payload
    digest = dl.file_sha256(path)
    assert (tmp_path / (path.name + ".sha256")).read_text() == f"{digest}  {path.name}\n"
    assert not list(tmp_path.glob("*.part"))
    # reuse: no probe, no fetch (the fixture's fakes would fail), works offline
    monkeypatch.setattr(dl, "_probe", lambda *a: pytest.fail("probed although cached"))
    monkeypatch.setattr(dl, "_fetch", lambda *a: pytest.fail("fetched although cached"))
    assert fetch_jarvis_entries(cache_dir=tmp_path) == entries


def test_default_cache_is_the_projects(tmp_path, monkeypatch):
    assert jarvis_cache_file().parent == tmp_path / "env-cache" / "jarvis"
    monkeypatch.delenv("LEANECD_CACHE")
    assert dl.default_cache_dir() == Path.home() / ".cache" / "leanecd" / "jarvis"
    assert "site-packages" not in str(jarvis_cache_file())


def test_truncated_cached_file_is_detected_and_refetched(tmp_path, monkeypatch):
    payload = _jarvis_zip()
    _serve(monkeypatch, FakeServer(payload))
    fetch_jarvis_entries(cache_dir=tmp_path)
    path = jarvis_cache_file(cache_dir=tmp_path)
    path.write_bytes(payload[: len(payload) // 2])  # truncated behind the cache's back
    server = FakeServer(payload, expect_offsets=[0])
    _serve(monkeypatch, server)
    with pytest.warns(UserWarning, match="truncated or corrupt"):
        entries = fetch_jarvis_entries(cache_dir=tmp_path)
    assert server.offsets == [0] and path.read_bytes() == payload
    assert [e["jid"] for e in entries] == [r["jid"] for r in RECORDS]


def test_interrupted_download_resumes_from_its_offset(tmp_path, monkeypatch):
    payload = _jarvis_zip()
    cut = len(payload) * 2 // 5
    # within one call: the connection drops at `cut`, the retry asks for the rest
    server = FakeServer(payload, stop_at=cut, expect_offsets=[0, cut])
    _serve(monkeypatch, server)
    fetch_jarvis_entries(cache_dir=tmp_path / "a")
    assert server.offsets == [0, cut]
    assert jarvis_cache_file(cache_dir=tmp_path / "a").read_bytes() == payload
    # across calls: a .part left by an earlier, killed run
    path = jarvis_cache_file(cache_dir=tmp_path / "b")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(path.name + ".part").write_bytes(payload[:cut])
    server = FakeServer(payload, expect_offsets=[cut])
    _serve(monkeypatch, server)
    assert len(fetch_jarvis_entries(cache_dir=tmp_path / "b")) == len(RECORDS)
    assert server.offsets == [cut] and path.read_bytes() == payload


def test_download_that_keeps_stopping_is_kept_for_later(tmp_path, monkeypatch):
    payload = _jarvis_zip()

    def stalls(url, part, offset):  # always 10 bytes more, never the end
        with open(part, "ab") as fh:
            fh.write(payload[offset: offset + 10])
        return len(payload)

    _serve(monkeypatch, stalls)
    with pytest.raises(DownloadError, match="stopped at 30 of"):
        fetch_jarvis_entries(cache_dir=tmp_path)
    path = jarvis_cache_file(cache_dir=tmp_path)
    assert not path.exists() and path.with_name(path.name + ".part").read_bytes() == payload[:30]


@pytest.mark.parametrize("damage", ["not a zip", "bad crc", "not a list"])
def test_corrupt_download_is_never_used(tmp_path, monkeypatch, damage):
    payload = _jarvis_zip()
    if damage == "not a zip":
        bad = b"<html>rate limited</html>"
    elif damage == "bad crc":
        bad = bytearray(payload)
        bad[60] ^= 0xFF  # inside the compressed member
        bad = bytes(bad)
    else:
        bad = _jarvis_zip(text=json.dumps({"jid": "J-1"}))
    _serve(monkeypatch, FakeServer(bad))
    with pytest.raises(DownloadError, match="is corrupt"):
        fetch_jarvis_entries(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no file, no checksum, no .part


def test_corrupt_resumed_part_restarts_from_zero(tmp_path, monkeypatch):
    payload = _jarvis_zip()
    path = jarvis_cache_file(cache_dir=tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(path.name + ".part").write_bytes(b"garbage from another file")
    server = FakeServer(payload, expect_offsets=[25, 0])
    _serve(monkeypatch, server)
    with pytest.warns(UserWarning, match="resumed download is corrupt"):
        fetch_jarvis_entries(cache_dir=tmp_path)
    assert server.offsets == [25, 0] and path.read_bytes() == payload


def test_unreadable_json_is_deleted(tmp_path, monkeypatch):
    _serve(monkeypatch, FakeServer(_jarvis_zip(text="[1,,2]")))  # a good zip of bad JSON
    with pytest.raises(DownloadError, match="unreadable"):
        fetch_jarvis_entries(cache_dir=tmp_path)
    assert not jarvis_cache_file(cache_dir=tmp_path).exists()
    assert not list(tmp_path.glob("*.sha256"))


def test_hand_placed_file_is_validated_and_adopted(tmp_path):
    path = jarvis_cache_file(cache_dir=tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_jarvis_zip())  # copied in from a machine with internet; offline here
    with pytest.warns(UserWarning, match="no checksum file"):
        assert len(fetch_jarvis_entries(cache_dir=tmp_path)) == len(RECORDS)
    assert (tmp_path / (path.name + ".sha256")).read_text().split()[0] == dl.file_sha256(path)


def test_expected_checksum(tmp_path, monkeypatch):
    payload = b"some bytes"
    _serve(monkeypatch, FakeServer(payload))
    with pytest.raises(DownloadError, match="differs from the expected"):
        dl.cached_download("https://example.org/f", tmp_path / "f", sha256="0" * 64)
    good = dl.cached_download("https://example.org/f", tmp_path / "f", sha256=dl.hashlib.sha256(payload).hexdigest())
    assert good.read_bytes() == payload


# --------------------------------------------------------------------------- offline


def test_offline_fails_fast_naming_the_embedded_dataset(tmp_path, monkeypatch):
    probes = []
    monkeypatch.setattr(dl, "_probe", lambda host, port, timeout_s: probes.append((host, port, timeout_s)) or False)
    with pytest.raises(NetworkUnavailableError) as info:
        fetch_jarvis_entries(cache_dir=tmp_path)
    msg = str(info.value)
    assert msg.startswith("no network: cannot reach ndownloader.figshare.com:443 within 3 s")
    assert 'load_dataset("embedded")' in msg and str(jarvis_cache_file(cache_dir=tmp_path)) in msg
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert probes == [("ndownloader.figshare.com", 443, 3.0)]
    # the same through load_dataset
    with pytest.raises(NetworkUnavailableError, match="embedded"):
        load_dataset("jarvis", chgcar_dir=tmp_path, cache_dir=tmp_path)


def test_offline_switch_skips_the_probe(monkeypatch):
    monkeypatch.setenv("LEANECD_OFFLINE", "1")
    assert dl.network_available("https://ndownloader.figshare.com/files/1") is False  # the probe fake would fail


def test_probe_uses_the_proxy(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://proxy.example.edu:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert dl._probe_target("https://ndownloader.figshare.com/files/1") == ("proxy.example.edu", 3128)


def test_real_probe_on_localhost():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert REAL_PROBE("127.0.0.1", port, 2.0) is True
    finally:
        server.close()
    assert REAL_PROBE("127.0.0.1", port, 2.0) is False  # nothing listens any more


class _Response:
    def __init__(self, status, body, headers):
        self.status_code, self.body, self.headers = status, body, headers

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def raise_for_status(self):
        import requests

        if self.status_code >= 400:
            raise requests.HTTPError(f"{self.status_code}")

    def iter_content(self, size):
        yield from (self.body[i: i + size] for i in range(0, len(self.body), size))


def test_real_fetch_ranges_and_errors(tmp_path, monkeypatch):
    import requests

    fetch = REAL_FETCH
    part = tmp_path / "f.part"
    part.write_bytes(b"0123")
    calls = []

    def get(url, stream, headers, timeout):
        calls.append(headers)
        return _Response(206, b"456789", {"Content-Range": "bytes 4-9/10", "Content-Length": "6"})

    monkeypatch.setattr(requests, "get", get)
    assert fetch("https://x/f", part, 4) == 10 and part.read_bytes() == b"0123456789"
    assert calls == [{"Range": "bytes=4-"}]
    # a server that ignores Range sends the whole file: start over
    monkeypatch.setattr(requests, "get", lambda *a, **k: _Response(200, b"ABCDEFGHIJ", {"Content-Length": "10"}))
    assert fetch("https://x/f", part, 4) == 10 and part.read_bytes() == b"ABCDEFGHIJ"
    # nothing left to send
    monkeypatch.setattr(requests, "get", lambda *a, **k: _Response(416, b"", {"Content-Range": "bytes */10"}))
    assert fetch("https://x/f", part, 10) == 10

    def refused(*a, **k):
        raise requests.ConnectionError("Max retries exceeded ... [Errno -2] Name or service not known")

    monkeypatch.setattr(requests, "get", refused)
    with pytest.raises(DownloadError, match="failed \\(ConnectionError") as info:
        fetch("https://x/f", part, 10)
    assert info.value.__suppress_context__ and info.value.__cause__ is None
    assert "10 bytes kept" in str(info.value)



def test_command_line(tmp_path, monkeypatch, capsys):
    from leanecd.data import main

    _serve(monkeypatch, FakeServer(_jarvis_zip()))
    out = tmp_path / "entries.json"
    assert main(["jarvis", "--cache", str(tmp_path / "cache"), "--entries", str(out)]) == 0
    assert [i["id"] for i in json.loads(out.read_text())] == SELECTED
    assert "6 selected" in capsys.readouterr().out
    monkeypatch.setattr(dl, "_probe", lambda *a: False)
    assert main(["jarvis", "--cache", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no network") and "Traceback" not in err
