"""Datasets of ECD fields with labels: :func:`load_dataset`, whatever the source.

The sources are registered in :data:`leanecd.registry.SOURCES`; each has a loader of
its own that returns a :class:`~leanecd.dataset.Dataset`:

``load_dataset("embedded")``
    The project's own open dataset, computed with GPAW by :mod:`leanecd.dft`
    (:func:`leanecd.sources.load_embedded`: where it is looked for, its layout).

``load_dataset("path/to/dir")`` or ``load_dataset("chgcar-dir", "path/to/dir")``
    A directory of VASP CHGCAR files plus ``labels.csv`` with an ``id`` column and
    target columns (:func:`leanecd.sources.load_chgcar_dir`). A directory path holding
    ``dataset.json`` is read as the embedded layout instead.

``load_dataset("jarvis", chgcar_dir=...)`` / ``load_dataset("jarvis", root)``
    The paper's source, JARVIS-DFT ``dft_3d``, with CHGCAR files named by JARVIS id
    (:mod:`leanecd.jarvis`: download, the paper's selection, GPAW densities at the
    JARVIS structures).

Nothing is dropped silently: a compound left out (a CHGCAR without a label row, a
selected compound without a CHGCAR, ...) is listed in :attr:`Dataset.skipped` with the
reason. Malformed records, label tables and field files raise
:class:`~leanecd.errors.FileFormatError` naming the file.

Fields are loaded lazily: :meth:`Dataset.field` reads one from disk on each call (no
cache), and :meth:`Dataset.items` yields picklable zero-argument loaders, so a feature
store can farm them out to worker processes.

On the command line: ``python -m leanecd.data jarvis --entries entries.json`` (see
:func:`leanecd.jarvis.add_command`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from . import jarvis, registry
from .dataset import Dataset
from .errors import FileFormatError

__all__ = ["load_dataset", "main"]


def load_dataset(
    source: str | os.PathLike = "embedded",
    root: str | os.PathLike | None = None,
    *,
    labels: str | os.PathLike | None = None,
    jarvis_json: str | os.PathLike | None = None,
    space_groups: Sequence[int] | None = None,
    chgcar_dir: str | os.PathLike | None = None,
    entries: Sequence[dict] | None = None,
    jarvis_dataset: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Load a dataset of ECD fields and labels (see the module docstring).

    A registered source name goes to that source's loader with ``root`` and the options
    it takes (:attr:`leanecd.registry.Source.options`; the others are ignored); any
    other ``source`` is a directory: the embedded layout if it holds ``dataset.json``,
    else CHGCAR files. An option left at ``None`` takes the loader's default.

    Parameters
    ----------
    source : ``"embedded"``, ``"chgcar-dir"``, ``"jarvis"``, or a directory (CHGCAR files
        + ``labels.csv``, or an embedded-layout directory with ``dataset.json``).
    root : directory of the data for ``"embedded"`` (optional), ``"chgcar-dir"`` and
        ``"jarvis"`` (the dft_3d ``*.json`` and the CHGCARs; optional when ``chgcar_dir``
        is given).
    labels : CHGCAR directory only: the label table (default ``<dir>/labels.csv``).
    jarvis_json : JARVIS only: the ``dft_3d`` JSON file, if ``root`` holds several ``*.json``
        or the metadata are not in ``root``.
    space_groups : JARVIS only: space-group numbers to keep (default the paper's 225, 216, 221).
    chgcar_dir : JARVIS only: the directory of CHGCAR files named by JARVIS id (default ``root``).
    entries : JARVIS only: the dft_3d entries already in memory (e.g. from
        :func:`leanecd.jarvis.fetch_jarvis_entries`), instead of a file or a download.
    jarvis_dataset : JARVIS only: jarvis-tools' name of the dataset to download (default ``dft_3d``).
    cache_dir : JARVIS only: the download cache (default ``$LEANECD_CACHE/jarvis`` or
        ``~/.cache/leanecd/jarvis``).
    """
    options = dict(labels=labels, jarvis_json=jarvis_json, space_groups=space_groups, chgcar_dir=chgcar_dir,
                   entries=entries, jarvis_dataset=jarvis_dataset, cache_dir=cache_dir)
    if isinstance(source, str) and source in registry.SOURCES:
        name = source
    else:
        root = Path(source)
        if not root.is_dir():
            names = ", ".join(repr(n) for n in registry.SOURCES)
            raise FileFormatError(root, f"no such directory (source must be one of {names}, or a directory)")
        name = "embedded" if (root / "dataset.json").is_file() else "chgcar-dir"
    src = registry.source(name)
    return src.load(root, **{k: options[k] for k in src.options if options[k] is not None})


def main(argv=None) -> int:
    """``python -m leanecd.data jarvis ...``: the dataset sources' commands."""
    ap = argparse.ArgumentParser(prog="python -m leanecd.data", description="Dataset sources on the command line.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    jarvis.add_command(sub)
    args = ap.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
