"""The :class:`Dataset` type and what every dataset source shares.

A source (:mod:`leanecd.sources`: the embedded dataset, a CHGCAR directory;
:mod:`leanecd.jarvis`: JARVIS-DFT) returns a :class:`Dataset`: a label table indexed
by compound id and one picklable zero-argument loader per compound, which reads its
:class:`~leanecd.field.ECDField` from disk on each call (no cache), so a feature
store can farm them out to worker processes. Also here: the label columns
(:data:`TARGETS`, from :mod:`leanecd.registry`), the check of a label value, the
CHGCAR loader the file-based sources share, and the version rule of the embedded
dataset (:func:`embedded_version`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import registry
from .dft.settings import PROTOCOL_VERSIONS, protocol_version
from .field import ECDField
from .io import read_chgcar

__all__ = ["Dataset", "TARGETS", "FAILURE_COLUMNS", "NOT_CHGCAR", "is_number", "load_chgcar_field",
           "embedded_version"]

#: Label columns every source provides: bulk modulus (GPa), total energy (eV/atom).
TARGETS = tuple(registry.TARGETS)
#: Columns of :attr:`Dataset.failures` (more may follow).
FAILURE_COLUMNS = ["id", "formula", "prototype", "reason"]
#: File suffixes that are never CHGCARs, in a directory of CHGCAR files.
NOT_CHGCAR = {".csv", ".json", ".md", ".txt", ".yaml", ".yml", ".py", ".ipynb", ".npz", ".npy",
              ".log", ".gz", ".bz2", ".xz", ".zip", ".tar", ".h5", ".png", ".pdf"}


def is_number(x) -> bool:
    """True for a finite int or float (not a bool, not a string such as JARVIS's ``"na"``)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


def load_chgcar_field(path: Path, id_: str) -> ECDField:
    """The CHGCAR at ``path`` with ``meta["id"]`` set to ``id_``; module-level, so that
    ``functools.partial(load_chgcar_field, path, id_)`` is a picklable loader."""
    f = read_chgcar(path)
    f.meta.setdefault("id", id_)
    return f


class Dataset:
    """Compounds with labels and lazily loaded ECD fields.

    Attributes
    ----------
    name, version : dataset name and version string (embedded: from ``dataset.json``;
        CHGCAR directory: ``"local"``; JARVIS: the JSON file's stem, which carries its date).
    source : a one-line description of where the data came from.
    table : :class:`pandas.DataFrame` of labels indexed by ``id`` (one row per compound,
        in :attr:`ids` order); embedded and JARVIS tables have the columns
        ``bulk_modulus_GPa`` (GPa) and ``energy_per_atom_eV`` (eV/atom).
    failures : DataFrame of compounds that failed a quality gate (embedded only;
        columns ``id, formula, prototype, reason``; empty otherwise).
    skipped : ``{id: reason}`` for compounds left out of this dataset and why.
    info : provenance (``dataset.json`` contents, JARVIS selection counts, ...).
    root : the directory the data were read from.
    """

    def __init__(
        self,
        *,
        name: str,
        version: str,
        source: str,
        table: pd.DataFrame,
        loaders: dict[str, Callable[[], ECDField]],
        failures: pd.DataFrame | None = None,
        skipped: dict[str, str] | None = None,
        info: dict | None = None,
        root: Path | None = None,
    ):
        if list(table.index) != list(loaders):
            raise ValueError("Dataset: table index and loaders must list the same ids in the same order")
        self.name = name
        self.version = str(version)
        self.source = source
        self.table = table
        self._loaders = dict(loaders)
        self.failures = failures if failures is not None else pd.DataFrame(columns=FAILURE_COLUMNS)
        self.skipped = dict(skipped or {})
        self.info = dict(info or {})
        self.root = root

    # ----------------------------------------------------------------- access

    @property
    def ids(self) -> list[str]:
        """Compound ids, in table order."""
        return list(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._loaders

    def field(self, id_: str) -> ECDField:
        """Read the ECD field (rho in e/Å³) of compound ``id_`` from disk."""
        return self._loader(id_)()

    def loader(self, id_: str) -> Callable[[], ECDField]:
        """A picklable zero-argument callable returning the field of ``id_``."""
        return self._loader(id_)

    def items(self) -> Iterator[tuple[str, Callable[[], ECDField]]]:
        """``(id, loader)`` pairs; ``loader()`` reads that compound's :class:`ECDField`."""
        return iter(list(self._loaders.items()))

    def targets(self, names: str | Sequence[str] = TARGETS) -> np.ndarray:
        """Label values as float64: shape ``(n,)`` for one name, ``(n, k)`` for a list.

        Raises ``KeyError`` for an unknown column and ``ValueError`` if a value is
        missing or not numeric (naming the compounds), rather than returning NaN.
        """
        single = isinstance(names, str)
        cols = [names] if single else list(names)
        missing = [c for c in cols if c not in self.table.columns]
        if missing:
            raise KeyError(f"{self.name}: no label column {missing}; columns are {list(self.table.columns)}")
        values = self.table[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            rows = [self.ids[r] for r in np.unique(np.nonzero(bad)[0])][:10]
            raise ValueError(f"{self.name}: missing or non-numeric {cols} for {rows} (first 10 shown)")
        return values[:, 0] if single else values

    def subset(self, ids: Sequence[str]) -> Dataset:
        """A dataset with only ``ids`` (in the order given); skipped/failures are kept."""
        ids = list(ids)
        unknown = [i for i in ids if i not in self._loaders]
        if unknown:
            raise KeyError(f"{self.name}: unknown ids {unknown[:10]}")
        return Dataset(
            name=self.name,
            version=self.version,
            source=self.source + f" (subset of {len(ids)})",
            table=self.table.loc[ids],
            loaders={i: self._loaders[i] for i in ids},
            failures=self.failures,
            skipped=self.skipped,
            info=self.info,
            root=self.root,
        )

    def reliable(self) -> Dataset:
        """The compounds whose labels are flagged ``ok`` (embedded: column ``reliability``, see
        :func:`leanecd.dft.label_reliability`); the left-out ones are in :attr:`skipped` with the
        reason, and the version says ``reliable``. A dataset without the column is returned as is."""
        if "reliability" not in self.table.columns:
            return self
        keep = [i for i in self.ids if self.table.at[i, "reliability"] == "ok"]
        out = self.subset(keep)
        out.skipped = {**self.skipped, **{i: f"label uncertain: {self.table.at[i, 'reliability_reason']}"
                                          for i in self.ids if i not in set(keep)}}
        out.version = f"{self.version}-reliable{len(keep)}"
        out.source = self.source + f" (reliable labels: {len(keep)} of {len(self)})"
        return out

    def _loader(self, id_: str) -> Callable[[], ECDField]:
        try:
            return self._loaders[id_]
        except KeyError:
            why = f" (skipped: {self.skipped[id_]})" if id_ in self.skipped else ""
            raise KeyError(f"{self.name}: no compound {id_!r}{why}") from None

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, version={self.version!r}, {len(self)} compounds, "
            f"{len(self.skipped)} skipped, {len(self.failures)} failures, source={self.source!r})"
        )


def embedded_version(meta: dict, records: Sequence[dict]) -> str:
    """The version string of an embedded dataset: ``<protocol>+<compounds>cpd`` (e.g. "0.1.0+42cpd"),
    so that each size of the append-only dataset has its own; while older records are being
    recomputed under the current protocol, the count of records at it follows (e.g.
    "0.7.0+601cpd.45"), and goes once all are."""
    v = meta.get("version", "unversioned")
    current = sum(protocol_version(r) == v for r in records)
    mixed = current < len(records) and v in PROTOCOL_VERSIONS
    return f"{v}+{len(records)}cpd" + (f".{current}" if mixed else "")
