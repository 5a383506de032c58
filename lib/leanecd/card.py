"""The dataset card, ``data/README.md``: its tables, generated from the files.

The prose lives in ``data/card_template.md``; :func:`write_card` fills in its
``{{placeholders}}`` from ``records/``, ``failures/``, ``labels.csv``, ``dataset.json``
and the convergence study (``data/convergence/``), so the card's numbers always match
the data. Regenerate it with ``leanecd-dft labels --out data/embedded``.

Also here: :func:`core_seconds` and :func:`cost_table` (what a compound costs),
:func:`composition_gap` (ours against the paper's mix) and :func:`convergence_table`
(B, a0 and E of the convergence study against its references).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from . import eos
from .dataset import embedded_version
from .dft import (
    DATASET_VERSION,
    HISTORY,
    LABEL_COLUMNS,
    PAPER_COMPOSITION,
    PROBES,
    PROTOTYPES,
    DFTSettings,
    label_reliability,
    probe_plan,
    protocol_version,
    retry_plan,
    scan_offset,
)
from .dft.layout import is_done, probe_moment, recompute_failure
from .dft.references import VALIDATION_TARGETS, deviation, references, study_fit
from .store import atomic_path, read_json

#: Names of the numbers of elements of a compound.
N_ELEMENTS_NAMES = {1: "unary", 2: "binary", 3: "ternary", 4: "quaternary", 5: "quinary"}


def _hist_rows(values, bins=12, width=30):
    counts, edges = np.histogram(values, bins=bins)
    top = max(counts.max(), 1)
    return [f"| {lo:9.3g} – {hi:<9.3g} | {c:4d} | `{'█' * int(round(width * c / top))}` |"
            for lo, hi, c in zip(edges[:-1], edges[1:], counts)]


def _core_s(rec: dict) -> float:
    """Core-seconds of one compound: CPU seconds of its single-threaded process, else wall seconds."""
    return float(rec.get("cpu_s") or rec["wall_s"])


def _protocol_counts(recs: list[dict]) -> str:
    reused = sum(bool(r["settings"].get("reuse_wavefunctions")) for r in recs)
    return f"{reused} compounds were computed with it, {len(recs) - reused} without"


def _off_centre_line(recs: list[dict], limit: float = 0.02) -> str:
    off = [r for r in recs if abs(scan_offset(r)) > limit]
    by = {}
    for r in off:
        by[protocol_version(r)] = by.get(protocol_version(r), 0) + 1
    versions = ", ".join(f"{c} from {v}" for v, c in sorted(by.items()))
    return (f"{len(off)} of {len(recs)} compounds have V₀ more than {limit:.0%} (in volume) from the centre of "
            f"their scan ({versions or 'none'})")


def _size_line(out: Path, n: int) -> str:
    """Bytes of the committed dataset (records, fields, failures, tables) and the projection to 1,410 compounds."""
    files = [p for d in ("records", "fields", "failures") for p in (out / d).glob("*") if p.is_file()]
    files += [p for p in (out / "labels.csv", out / "dataset.json") if p.exists()]
    total = sum(p.stat().st_size for p in files)
    per = total / max(n, 1)
    return (f"{total / 1e6:.1f} MB for {n} compounds ({per / 1e3:.0f} kB each; about "
            f"{per * 1410 / 1e6:.0f} MB at the paper's 1,410)")


def core_seconds(table) -> pd.Series:
    """Core-seconds of each compound of a labels table: ``cpu_s`` where recorded, else ``wall_s``."""
    cpu = pd.to_numeric(table["cpu_s"], errors="coerce") if "cpu_s" in table else pd.Series(np.nan, index=table.index)
    return cpu.fillna(table["wall_s"]).astype(float)


def cost_table(table) -> pd.DataFrame:
    """Core-seconds per compound by prototype, from a labels table (``load_dataset("embedded").table``).

    A compound's core-seconds are its process's CPU seconds (``cpu_s``; one core per
    compound), else its wall seconds (older records: an upper bound on a shared machine).
    Columns: compounds, atoms (per stored cell), share spin-polarised, median and max
    core-s, median SCF runs, and how many were CPU-timed; sorted by the median."""
    df = pd.DataFrame(table).copy()
    df["core_s"] = core_seconds(df)
    df["cpu_timed"] = pd.to_numeric(df["cpu_s"], errors="coerce").notna() if "cpu_s" in df else False
    df["spin_polarized"] = df.get("spin_polarized", False)
    df["spin_polarized"] = df["spin_polarized"].astype(str).str.lower().eq("true")
    return df.groupby("prototype").agg(
        compounds=("core_s", "size"), atoms=("natoms", "first"), spin_polarized=("spin_polarized", "mean"),
        median_core_s=("core_s", "median"), max_core_s=("core_s", "max"),
        median_scf=("n_scf", "median"), cpu_timed=("cpu_timed", "sum"),
    ).sort_values("median_core_s")


# --------------------------------------------------------------------------- the card's tables


def units_table() -> str:
    """Markdown table of every column of ``labels.csv``: column | unit | meaning (from ``dft.LABEL_COLUMNS``)."""
    rows = [f"| `{c}` | {unit or '–'} | {meaning} |" for c, (unit, meaning) in LABEL_COLUMNS.items()]
    return "\n".join(["| column | unit | meaning |", "|---|---|---|", *rows])


def composition_gap(recs: list[dict]) -> pd.DataFrame:
    """Compounds by number of elements, ours (from ``recs``) against the paper's
    (``dft.PAPER_COMPOSITION``), with each share in %. Index: unary, binary, …"""
    ours = Counter(int(r["n_elements"]) for r in recs)
    ks = sorted(set(PAPER_COMPOSITION) | set(ours))
    df = pd.DataFrame({"ours": [ours.get(k, 0) for k in ks], "paper": [PAPER_COMPOSITION.get(k, 0) for k in ks]},
                      index=pd.Index([N_ELEMENTS_NAMES.get(k, str(k)) for k in ks], name="elements"))
    df["ours_%"] = 100 * df["ours"] / max(df["ours"].sum(), 1)
    df["paper_%"] = 100 * df["paper"] / max(df["paper"].sum(), 1)
    return df[["ours", "ours_%", "paper", "paper_%"]]


def _composition_gap_md(df) -> str:
    rows = [f"| {k} | {int(df.at[k, 'ours'])} | {df.at[k, 'ours_%']:.1f} % | {int(df.at[k, 'paper'])} | "
            f"{df.at[k, 'paper_%']:.1f} % | {df.at[k, 'ours_%'] - df.at[k, 'paper_%']:+.1f} |" for k in df.index]
    rows.append(f"| all | {df['ours'].sum()} | 100 % | {df['paper'].sum()} | 100 % | |")
    return "\n".join(["| elements | ours | share | paper | share | gap (points) |", "|---|---|---|---|---|---|",
                      *rows])


def _gpaw_data_version() -> str:
    """Version of the installed ``gpaw-data`` package (the PAW setups), or "not installed"."""

    try:
        return version("gpaw-data")
    except PackageNotFoundError:
        return "not installed"


def _code_line(recs: list[dict]) -> str:
    """The code versions of the records (a key with several values lists each with its count), and the
    PAW setups' package ``gpaw_data`` (from the records, else the version installed now)."""
    values: dict[str, Counter] = {}
    for r in recs:
        for k, v in r.get("code", {}).items():
            values.setdefault(k, Counter())[v] += 1
    parts = []
    for k, c in values.items():
        if len(c) == 1:
            parts.append(f"{k} {next(iter(c))}")
        else:
            parts.append(f"{k} " + ", ".join(f"{v} ({n} compounds)" for v, n in sorted(c.items())))
    line = ", ".join(parts)
    if "gpaw_data" not in values:
        line += (f"{', ' if line else ''}gpaw_data {_gpaw_data_version()} (the PAW setups: the `gpaw-data` "
                 f"package installed when this card was generated; the records do not name it)")
    return line


def _reason_kind(reason: str) -> str:
    """A reason with its measured value (its first number) replaced by "…", so like reasons count together."""
    return re.sub(r"-?\d+(\.\d+)?", "…", reason.strip(), count=1)


def reliability_counts(labels) -> str:
    """Markdown: compounds per ``reliability`` value and the most common reasons, from a labels
    table; a line saying there is no flag when the column is absent or empty."""
    df = pd.DataFrame(labels)
    if "reliability" not in df or df["reliability"].isna().all() or not df["reliability"].astype(str).str.strip().any():
        return "The labels carry no reliability flag yet (`labels.csv` has no `reliability` values)."
    flag = df["reliability"].fillna("").astype(str).str.strip().replace("", "(none)")
    lines = ["| reliability | compounds |", "|---|---|"]
    lines += [f"| {v} | {c} |" for v, c in flag.value_counts().sort_index().items()]
    reasons = Counter()
    if "reliability_reason" in df:
        for text in df["reliability_reason"].dropna().astype(str):
            reasons.update({_reason_kind(p) for p in text.split(";") if p.strip()})
    if reasons:
        lines += ["", "| most common reasons (… : the compound's value) | compounds |", "|---|---|"]
        lines += [f"| {r} | {c} |" for r, c in sorted(reasons.items(), key=lambda x: (-x[1], x[0]))[:8]]
    return "\n".join(lines)


def _reliability_rule() -> str:
    lo, hi = eos.BPRIME_RANGE
    return (f"B′ outside [{lo}, {hi}], a fit residual above {eos.MAX_RESIDUAL_MEV} meV/atom, or a refit "
            f"without one E(V) point or with B′ = 4 that moves B by more than {eos.MAX_B_SPREAD:.0%} or a₀ by "
            f"more than {eos.MAX_A_SPREAD:.1%}; where the E(V) points mix spin-paired and magnetic SCFs "
            f"(`leanecd.dft.labels.magnetic_transition`); where the convergence study (below) finds the settings not "
            f"converged for the compound's kind; where the compound's recomputation under this protocol failed; "
            f"where a spin probe found a local moment that its spin-paired labels lack (until it is recomputed); "
            f"or where B or a₀ misses the validation targets (B "
            f"{VALIDATION_TARGETS['B']:.0%}, a₀ {VALIDATION_TARGETS['a0']:.1%}) against a reference computed with "
            f"GPAW-PBE: an independent one, or the convergence study's dense run of the compound (below)")


CONVERGENCE_COLUMNS = ["id", "kind", "ecut_eV", "kpt_density", "smearing_eV", "reference", "a0_A", "B_GPa",
                       "Bprime", "E0_eV_atom", "cpu_s", "dB_%", "da0_%", "dE_meV_atom"]


def convergence_table(root: str | os.PathLike = "data/convergence") -> pd.DataFrame:
    """One row per file ``<root>/<id>/<ecut>eV-k<kd>[-w<width>].json`` of the convergence study.

    Columns: id, kind, ecut_eV, kpt_density, smearing_eV (Fermi–Dirac width, eV; the protocol's where
    the file names none), reference, a0_A (Å), B_GPa, Bprime,
    E0_eV_atom (eV/atom), cpu_s, and against the same compound's reference file dB_% and
    da0_% (%) and dE_meV_atom (meV/atom; NaN without a reference). Birch–Murnaghan fits by
    :func:`leanecd.eos.fit` (NaN where it finds no minimum). Empty if there are no files."""

    rows = []
    for p in sorted(Path(root).glob("*/*.json")):
        r = read_json(p)
        fitted = study_fit(r)
        row = {"id": r["id"], "kind": r["kind"], "ecut_eV": float(r["ecut_eV"]),
               "kpt_density": float(r["kpt_density"]),
               "smearing_eV": float(r.get("smearing_eV", DFTSettings().smearing_eV)),
               "reference": bool(r["reference"]),
               "a0_A": np.nan, "B_GPa": np.nan, "Bprime": np.nan, "E0_eV_atom": np.nan,
               "cpu_s": float(r.get("cpu_s", np.nan))}
        if fitted is not None:
            a0, f = fitted
            row.update(a0_A=a0, B_GPa=f.b, Bprime=f.bprime, E0_eV_atom=f.e0 / r["natoms"])
        rows.append(row)
    df = pd.DataFrame(rows, columns=CONVERGENCE_COLUMNS[:11])
    df["reference"] = df["reference"].astype(bool)
    refs = df[df["reference"]].sort_values(["ecut_eV", "kpt_density"]).drop_duplicates("id", keep="last")
    ref = refs.set_index("id").reindex(df["id"])  # each row's reference (the densest, if several)
    for col, d, scale in (("B_GPa", "dB_%", 100), ("a0_A", "da0_%", 100), ("E0_eV_atom", "dE_meV_atom", 1000)):
        x, x_ref = df[col].to_numpy(float), ref[col].to_numpy(float)
        df[d] = scale * (x / x_ref - 1) if scale == 100 else scale * (x - x_ref)
    return df.sort_values(["kind", "id", "reference", "ecut_eV", "kpt_density", "smearing_eV"],
                          ascending=[True, True, False, True, True, False]).reset_index(drop=True)[CONVERGENCE_COLUMNS]


def _convergence_md(df) -> str:
    if df.empty:
        return ("The convergence study (`benchmarks/dft_settings_study.py`) has not run yet: "
                "`data/convergence/` is empty.")

    def num(x, fmt):
        return "–" if not np.isfinite(x) else format(x, fmt)

    lines = ["| compound | kind | cut-off (eV) | k density (Å) | smearing (eV) | a₀ (Å) | B (GPa) | B′ | ΔB (%) "
             "| Δa₀ (%) | ΔE (meV/atom) | CPU-s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        tag = " (reference)" if r["reference"] else ""
        lines.append(f"| {r['id']} | {r['kind']} | {r['ecut_eV']:.0f}{tag} | {r['kpt_density']:g} | "
                     f"{r['smearing_eV']:g} | "
                     f"{num(r['a0_A'], '.4f')} | {num(r['B_GPa'], '.1f')} | {num(r['Bprime'], '.2f')} | "
                     f"{num(r['dB_%'], '+.2f')} | {num(r['da0_%'], '+.3f')} | {num(r['dE_meV_atom'], '+.1f')} | "
                     f"{num(r['cpu_s'], '.0f')} |")
    return "\n".join(lines)


def validation_table(root: str | os.PathLike = "data/embedded") -> pd.DataFrame:
    """The stored labels against the references next to the dataset
    (:func:`leanecd.dft.references.references`: the Δ-project's elements, the audit's scans, the ACWF
    study's GPAW and all-electron values, the convergence study's reference runs).
    One row per (compound, reference): stored and reference a0 (Å) and B (GPa), deviations (%),
    the record's protocol and reliability flag, ``within`` (both targets met) and ``gpaw``
    (the reference was computed with GPAW-PBE)."""
    root = Path(root)
    refs = references(root.parent)
    rows = []
    for ref in refs:
        path = root / "records" / f"{ref.id}.json"
        if not path.exists():
            continue
        rec = read_json(path)
        db, da, within = deviation(rec, ref)
        rows.append({"id": ref.id, "reference": ref.source, "protocol": protocol_version(rec), "a0_A": rec["a0_A"],
                     "ref_a0_A": ref.a0_A, "da0_%": 100 * da, "B_GPa": rec["bulk_modulus_GPa"],
                     "ref_B_GPa": ref.B_GPa, "dB_%": 100 * db, "within": within, "gpaw": ref.gpaw,
                     "reliability": label_reliability(rec, refs=refs, failure=recompute_failure(root, rec),
                                                      probe=probe_moment(root, rec))[0]})
    return pd.DataFrame(rows, columns=["id", "reference", "protocol", "a0_A", "ref_a0_A", "da0_%", "B_GPa",
                                       "ref_B_GPa", "dB_%", "within", "gpaw", "reliability"])


def _validation_md(df: pd.DataFrame) -> str:
    """Markdown: per reference source, comparisons, how many meet both targets, the compounds outside."""
    if df.empty:
        return "No stored compound has an independent reference."

    def miss(r) -> str:
        a = "" if np.isnan(r["da0_%"]) else f", a₀ {r['da0_%']:+.2f} %"
        return f"{r['id']} (B {r['dB_%']:+.1f} %{a})"

    df = df.assign(source=df["reference"].where(~df["reference"].str.startswith("study"), "convergence study (ours)"))
    lines = ["| reference | GPAW | compared | within both targets | outside |", "|---|---|---|---|---|"]
    for source, g in df.groupby("source", sort=False):
        outside = ", ".join(miss(r) for _, r in g[~g["within"]].iterrows()) or "–"
        lines.append(f"| {source} | {'yes' if g['gpaw'].all() else 'no'} | {len(g)} | {int(g['within'].sum())} "
                     f"| {outside} |")
    return "\n".join(lines)


def spin_probes(root: str | os.PathLike = "data/embedded") -> pd.DataFrame:
    """The spin probes of stored compounds (``probes/<id>@<protocol>.json``, :func:`leanecd.dft.probe_plan`):
    id, largest local and total moment (μB), whether a moment was found, CPU seconds; and how many
    compounds still wait for one (``.attrs["waiting"]``)."""
    root = Path(root)
    rows = [read_json(p) for p in sorted((root / PROBES).glob("*.json"))]
    df = pd.DataFrame([{k: r.get(k) for k in ("id", "max_local_moment_muB", "total_moment_muB", "moment_found",
                                               "cpu_s", "protocol")} for r in rows],
                      columns=["id", "max_local_moment_muB", "total_moment_muB", "moment_found", "cpu_s", "protocol"])
    df.attrs["waiting"] = sum(not is_done(root, e) for e in probe_plan(root))
    return df


def failure_status(root: str | os.PathLike = "data/embedded") -> pd.DataFrame:
    """Every compound that failed a gate, with the first reason and what its retry did: ``retry``
    (the start tried, or the start :func:`leanecd.dft.retry_plan` would try), ``retry_result``
    (``stored`` when the retry gave a record, ``failed: <reason>``, or ``not run``). A stored
    compound whose recomputation under this protocol failed is listed too: its earlier record stays."""
    root = Path(root)
    planned = {e["id"]: e["retry"] for e in retry_plan(root)}
    failed = [read_json(p) for p in sorted((root / "failures").glob("*.json"))]
    for p in sorted((root / "records").glob("*.json")):
        if (f := recompute_failure(root, read_json(p))) is not None:
            failed.append({**f, "reason": f"recomputation ({f.get('supersedes')} record kept): {f.get('reason', '')}"})
    rows = []
    for f in failed:
        start = planned.get(f["id"])
        tried = root / HISTORY / f"{f['id']}@{DATASET_VERSION}-{start}-failed.json"
        result = f"failed: {read_json(tried)['reason']}" if start and tried.exists() else "not run"
        rows.append({"id": f["id"], "reason": f.get("reason", ""), "retry": start or "none (no other start)",
                     "retry_result": result if start else "–"})
    for p in sorted((root / "records").glob("*.json")):  # failures whose retry was stored
        rec = read_json(p)
        if rec.get("start") and rec.get("retried_failure") is not None:
            rows.append({"id": rec["id"], "reason": rec["retried_failure"], "retry": rec["start"],
                         "retry_result": "stored"})
    return pd.DataFrame(rows, columns=["id", "reason", "retry", "retry_result"])


def _spin_probe_line(out: Path) -> str:
    probes = spin_probes(out)
    found = int(probes["moment_found"].fillna(False).astype(bool).sum())
    return (f"Spin probes run: {len(probes)}, a moment found in {found}; "
            f"{probes.attrs['waiting']} candidates wait for theirs.")


def _read_labels(out: Path):
    p = out / "labels.csv"
    return pd.read_csv(p, dtype={"id": str, "reliability": str, "reliability_reason": str}) if p.exists() \
        else pd.DataFrame()


def write_card(out: str | os.PathLike = "data/embedded", card: str | os.PathLike | None = None) -> Path:
    """Regenerate the tables of the dataset card (``data/README.md``) from the files.

    The prose lives in ``data/card_template.md``; this fills in the placeholders
    ``{{counts}}`` etc., so the card's numbers always match ``records/``.
    """
    out = Path(out)
    card = Path(card) if card else out.parent / "README.md"
    template = (out.parent / "card_template.md").read_text()
    recs = [read_json(p) for p in sorted((out / "records").glob("*.json"))]
    fails = [read_json(p) for p in sorted((out / "failures").glob("*.json"))]
    meta = read_json(out / "dataset.json")
    n = len(recs)
    sg = Counter((r["spacegroup"], r["spacegroup_symbol"]) for r in recs)
    ne = Counter(r["n_elements"] for r in recs)
    proto = Counter(r["prototype"] for r in recs)
    elements = Counter(e for r in recs for e in r["elements"])
    lines = {
        "n_compounds": str(n),
        "n_failures": str(len(fails)),
        "n_elements": str(len(elements)),
        "version": embedded_version(meta, recs),  # as leanecd.data.load_dataset reports it
        "protocol_counts": _protocol_counts(recs),
        "size": _size_line(out, n),
        "off_centre": _off_centre_line(recs),
        "settings": "\n".join(f"| `{k}` | {v} |" for k, v in meta["settings"].items()),
        "spacegroups": "\n".join(f"| {s} ({num}) | {c} |" for (num, s), c in sorted(sg.items())),
        "n_species": "\n".join(f"| {N_ELEMENTS_NAMES.get(k, k)} | {c} |" for k, c in sorted(ne.items())),
        "prototypes": "\n".join(f"| {p} | {PROTOTYPES[p].symbol} | {PROTOTYPES[p].description} | {c} |"
                                for p, c in sorted(proto.items())),
        "elements": ", ".join(f"{e} ({c})" for e, c in sorted(elements.items(), key=lambda x: (-x[1], x[0]))),
        "hist_B": "\n".join(_hist_rows([r["bulk_modulus_GPa"] for r in recs])) if recs else "",
        "hist_E": "\n".join(_hist_rows([r["energy_per_atom_eV"] for r in recs])) if recs else "",
        "failures": "\n".join(f"| {r.id} | {r.reason[:150]} | {r.retry} | {r.retry_result[:120]} |"
                              for r in failure_status(out).itertuples()) or "| – | none | | |",
        "spin_probes": _spin_probe_line(out),
        "versions": _code_line(recs),
        "timing": (f"{np.sum([_core_s(r) for r in recs]) / 3600:.1f} core-hours in all, median "
                   f"{np.median([_core_s(r) for r in recs]):.0f} core-s per compound (CPU seconds where "
                   f"recorded, else wall seconds; by prototype: `benchmarks/dft_cost.py`)") if recs else "",
        "units": units_table(),
        "composition_gap": _composition_gap_md(composition_gap(recs)),
        "reliability_rule": _reliability_rule(),
        "reliability_counts": reliability_counts(_read_labels(out)),
        "convergence": _convergence_md(convergence_table(out.parent / "convergence")),
        "validation": _validation_md(validation_table(out)),
    }
    text = template
    for k, v in lines.items():
        text = text.replace("{{" + k + "}}", v)
    with atomic_path(card) as tmp:
        tmp.write_text(text)
    return card
