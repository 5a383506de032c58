"""Composition-only features of a formula, for the ``rf`` baseline (:mod:`leanecd.baselines`).

Magpie-style statistics of elemental properties (Magpie's elemental table as shipped
with jarvis-tools, ``jarvis/core/magpie.json``): no structure, no density. See
:func:`composition_features` for exactly what they are, and how they differ from
matminer's Magpie preset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from ase.formula import Formula

from .errors import LeanECDError

__all__ = ["ELEMENT_PROPERTIES", "STATISTICS", "element_property_table", "have_composition_data", "feature_names",
           "composition_features", "composition_feature_table"]

#: Elemental properties used, as named in Magpie's elemental-property table (the copy
#: shipped with jarvis-tools, ``jarvis/core/magpie.json``), with units. ``NValence`` is
#: the sum of the four valence-shell counts (Magpie's own table has it as a file of
#: its own). Magpie's ``SpaceGroupNumber`` (of the elemental solid) is left out: it is
#: a category, and means of categories are meaningless.
ELEMENT_PROPERTIES = {
    "Number": "atomic number Z",
    "AtomicWeight": "atomic mass (u)",
    "Row": "period",
    "Column": "group (1-18)",
    "MendeleevNumber": "Mendeleev number (Pettifor)",
    "CovalentRadius": "covalent radius (pm)",
    "Electronegativity": "Pauling electronegativity",
    "MeltingT": "melting temperature of the element (K)",
    "GSvolume_pa": "DFT volume per atom of the elemental ground state (Å³)",
    "GSbandgap": "DFT band gap of the elemental ground state (eV)",
    "GSmagmom": "DFT magnetic moment of the elemental ground state (μB/atom)",
    "NsValence": "s valence electrons",
    "NpValence": "p valence electrons",
    "NdValence": "d valence electrons",
    "NfValence": "f valence electrons",
    "NValence": "valence electrons (s+p+d+f)",
    "NsUnfilled": "unfilled s states",
    "NpUnfilled": "unfilled p states",
    "NdUnfilled": "unfilled d states",
    "NfUnfilled": "unfilled f states",
    "NUnfilled": "unfilled valence states",
}

#: Statistics over the elements of a compound, weighted by the atomic fractions xᵢ.
STATISTICS = {
    "mean": "Σ xᵢ pᵢ",
    "min": "min over elements present",
    "max": "max over elements present",
    "range": "max − min",
    "mad": "mean absolute deviation Σ xᵢ |pᵢ − mean|",
}

# --------------------------------------------------------------------------- composition features

_PROPERTY_TABLE: pd.DataFrame | None = None


def element_property_table() -> pd.DataFrame:
    """Elemental properties (rows: element symbols; columns: :data:`ELEMENT_PROPERTIES`).

    Read from Magpie's elemental table as shipped with jarvis-tools
    (``jarvis/core/magpie.json``; install ``jarvis-tools``, part of the book's extras).
    """
    global _PROPERTY_TABLE
    if _PROPERTY_TABLE is None:
        try:
            import jarvis.core
        except ImportError:
            raise LeanECDError("the composition features need jarvis-tools (pip install jarvis-tools): "
                               "its magpie.json holds the elemental properties") from None
        path = Path(jarvis.core.__file__).parent / "magpie.json"
        with open(path) as fh:
            raw = json.load(fh)
        df = pd.DataFrame(raw).T
        df["NValence"] = df[["NsValence", "NpValence", "NdValence", "NfValence"]].sum(axis=1)
        _PROPERTY_TABLE = df[list(ELEMENT_PROPERTIES)].astype(float)
    return _PROPERTY_TABLE


def have_composition_data() -> bool:
    """True when the elemental-property table (jarvis-tools) is installed, so ``rf`` can run."""
    try:
        element_property_table()
    except LeanECDError:
        return False
    return True


def _fractions(formula: str) -> dict[str, float]:
    try:
        counts = Formula(formula).count()
    except ValueError as exc:
        raise LeanECDError(f"cannot parse formula {formula!r}: {exc}") from None
    total = sum(counts.values())
    if not total:
        raise LeanECDError(f"formula {formula!r} has no atoms")
    return {el: n / total for el, n in counts.items()}


def feature_names() -> list[str]:
    """Names of the composition features, in column order."""
    return ["n_elements"] + [f"{s} {p}" for p in ELEMENT_PROPERTIES for s in STATISTICS]


def composition_features(formula: str) -> pd.Series:
    """Magpie-style composition features of one formula (e.g. ``"NaCl"``, ``"CaKF3"``).

    For each of the 21 elemental properties p of :data:`ELEMENT_PROPERTIES` and atomic
    fractions xᵢ of the formula: the weighted mean Σ xᵢ pᵢ, the min and max over the
    elements present, the range (max − min) and the weighted mean absolute deviation
    Σ xᵢ |pᵢ − mean|; plus the number of elements: 1 + 21 × 5 = 106 features.
    These follow the idea of Ward et al.'s Magpie descriptors (same elemental table,
    similar statistics) but are NOT matminer's ``ElementProperty.from_preset("magpie")``
    (no mode statistic, no space-group property, no stoichiometry, valence-orbital or
    ionic-character attributes).

    >>> f = composition_features("NaCl")
    >>> float(f["mean Number"]), float(f["range Number"]), float(f["mad Number"])
    (14.0, 6.0, 3.0)
    """
    x = _fractions(formula)
    table = element_property_table()
    missing = [e for e in x if e not in table.index]
    if missing:
        raise LeanECDError(f"no elemental properties for {missing} (formula {formula!r})")
    els = list(x)
    w = np.array([x[e] for e in els])
    P = table.loc[els].to_numpy()  # (n_el, n_prop)
    mean = w @ P
    lo, hi = P.min(axis=0), P.max(axis=0)
    mad = w @ np.abs(P - mean)
    values = [float(len(els))]
    for j in range(P.shape[1]):
        values += [mean[j], lo[j], hi[j], hi[j] - lo[j], mad[j]]
    return pd.Series(values, index=feature_names(), name=formula)


def composition_feature_table(formulas: pd.Series | dict | Sequence[str]) -> pd.DataFrame:
    """Features of many formulas: a DataFrame indexed like ``formulas`` (a Series id -> formula)."""
    if isinstance(formulas, dict):
        formulas = pd.Series(formulas)
    elif not isinstance(formulas, pd.Series):
        formulas = pd.Series(list(formulas), index=list(formulas))
    rows = [composition_features(f) for f in formulas]
    return pd.DataFrame(rows, index=formulas.index, columns=feature_names())
