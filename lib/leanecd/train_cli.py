"""The ``leanecd-train`` command (also ``python -m leanecd.train``): :func:`leanecd.train.fit` from a shell.

Data come from a dataset (featurised through the on-disk feature cache) or from a
features ``.npy`` plus a labels CSV; every file error names the file. The console
script in ``pyproject.toml`` names :func:`leanecd.train.main`, which calls :func:`main`.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from . import cpupath, registry, train
from .data import load_dataset
from .errors import FileFormatError, LeanECDError
from .features import dataset_features
from .log import logger
from .models import INPUT_NORMS
from .settings import SETTINGS
from .trainconfig import OPEN_CHOICES, TrainConfig

__all__ = ["main"]


def _read_labels(path: Path, targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise FileFormatError(path, "no such labels file")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        missing = [c for c in ("id", *targets) if c not in cols]
        if missing:
            raise FileFormatError(path, f"missing column(s) {missing}; has {cols}")
        ids, ys = [], []
        for line, row in enumerate(reader, start=2):
            ids.append(row["id"])
            try:
                ys.append([float(row[t]) for t in targets])
            except ValueError:
                raise FileFormatError(path, f"line {line}: non-numeric target in {[row[t] for t in targets]}") from None
    return np.asarray(ids), np.asarray(ys, dtype=np.float64)


def _dataset_arrays(source: str, root: Path | None, store_dir: Path | None, targets: Sequence[str],
                    progress: bool, labels: str = "all"):
    """Features and labels of a :func:`~leanecd.data.load_dataset` source, featurised through the cache;
    ``labels="reliable"`` leaves out the compounds whose labels are flagged uncertain."""
    ds = load_dataset(source, root)
    if labels == "reliable":
        n = len(ds)
        ds = ds.reliable()
        logger.info(f"labels: {len(ds)} of {n} compounds flagged ok; {n - len(ds)} uncertain ones left out")
    missing = [t for t in targets if t not in ds.table.columns]
    if missing:
        raise LeanECDError(f"dataset {ds.name!r} has no target column(s) {missing}; "
                           f"label columns include {[c for c in ds.table.columns if c.endswith(('_GPa', '_eV'))]}")
    ids, X, _ = dataset_features(ds, store_dir=store_dir, progress=progress)  # warns about any failures
    ids = list(ids)
    y = ds.subset(ids).targets(list(targets))
    logger.info(f"dataset {ds.name} {ds.version}: {len(ids)} compounds with features, targets {list(targets)}")
    return np.asarray(ids), np.asarray(X), y.reshape(len(ids), len(targets)), ds


def main(argv: Sequence[str] | None = None) -> int:
    """``leanecd-train``: train a Table 1 model with the paper's protocol (see ``--help``).

    Data come either from a dataset (``--dataset embedded``: the book's own dataset,
    featurised through the on-disk feature cache) or from a features ``.npy`` plus a
    labels CSV (``--features``/``--labels``)::

        python -m leanecd.train --model A --target bulk_modulus_GPa --dataset embedded --run-dir results/A-bulk
        python -m leanecd.train --model A --target bulk_modulus --features X.npy --labels labels.csv --run-dir r
    """
    ap = argparse.ArgumentParser(prog="leanecd-train", description=train.__doc__.split("\n")[0])
    ap.add_argument("--model", default="A", choices=registry.model_names("network"))
    ap.add_argument("--target", action="append", required=True,
                    help="target column (repeat for multi-output, e.g. Model C); with --dataset embedded: "
                         "bulk_modulus_GPa, energy_per_atom_eV")
    src = ap.add_argument_group("data: either --dataset, or --features and --labels")
    src.add_argument("--dataset", help="'embedded' (the book's dataset), 'jarvis' (with --data-root) or a dataset "
                                       "directory; featurised through the feature cache")
    src.add_argument("--data-root", type=Path, help="root directory for --dataset (optional for 'embedded')")
    src.add_argument("--feature-store", type=Path,
                     help="feature cache directory for --dataset (default: the library's)")
    src.add_argument("--features", type=Path, help=".npy of shape (N, n, n, n) float32, rows in labels order")
    src.add_argument("--labels", type=Path, help="CSV with an 'id' column and the target columns")
    src.add_argument("--labels-used", choices=["all", "reliable"], default="all",
                     help="with --dataset: 'reliable' trains and tests only on labels flagged ok (the version "
                          "recorded says so)")
    ap.add_argument("--run-dir", required=True, type=Path)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--folds", type=int, help="CV folds (0 = no cross-validation)")
    ap.add_argument("--final-only", action="store_true",
                    help="skip cross-validation: only the final fit on the 90 %% (metrics.json says so)")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=SETTINGS.seed)
    ap.add_argument("--max-samples", type=int)
    ap.add_argument("--train-fraction", type=float, default=1.0,
                    help="learning curves: train on this nested share (0 < f <= 1) of the 90 %% train+CV part; "
                         "the test set stays the full run's")
    ap.add_argument("--device", help="cuda | cpu (default: cuda when available)")
    ap.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    ap.add_argument("--mode", choices=["full", "quick"],
                    help="default: LEANECD_MODE, else full on CUDA, quick otherwise")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--cpu-path", choices=["auto", *cpupath.CPU_PATHS],
                    help="on a CPU: 'auto' probes the paths and keeps the fastest (default for long full-mode runs), "
                         "or a path name")
    ap.add_argument("--input-norm", choices=list(INPUT_NORMS),
                    help=f"input scaling (the paper is silent; default {OPEN_CHOICES['input_norm']!r})")
    ap.add_argument("--warmup-epochs", type=float,
                    help=f"linear learning-rate warm-up, epochs (default {OPEN_CHOICES['warmup_epochs']})")
    ap.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    ap.add_argument("--stacked", action=argparse.BooleanOptionalAction, default=None,
                    help="train the CV folds and the final fit together as one stacked model (lean models; "
                         "default: on with CUDA, off on a CPU)")
    ap.add_argument("--dataset-version", help="recorded in config.json and metrics.json (--features route; "
                                              "--dataset records the dataset's own name and version)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.dataset is not None:
        if args.features is not None or args.labels is not None:
            ap.error("give either --dataset or --features/--labels, not both")
        ids, X, y, ds = _dataset_arrays(args.dataset, args.data_root, args.feature_store, args.target,
                                        progress=not args.no_progress, labels=args.labels_used)
        dataset_name, dataset_version = ds.name, ds.version
    else:
        if args.features is None or args.labels is None:
            ap.error("give --dataset, or both --features and --labels")
        if not args.features.is_file():
            raise FileFormatError(args.features, "no such features file")
        try:
            X = np.load(args.features, mmap_mode="r")
        except ValueError as exc:
            raise FileFormatError(args.features, f"not a .npy array ({exc})") from None
        ids, y = _read_labels(args.labels, args.target)
        if X.shape[0] != len(ids):
            raise FileFormatError(args.features,
                                  f"{X.shape[0]} feature rows but {len(ids)} label rows in {args.labels}")
        dataset_name, dataset_version = (str(args.labels), args.dataset_version)
    config = TrainConfig(model=args.model, targets=tuple(args.target), epochs=args.epochs, folds=args.folds,
                         batch_size=args.batch_size, lr=args.lr, dropout=args.dropout, seed=args.seed,
                         max_samples=args.max_samples, device=args.device, mode=args.mode, compile=args.compile,
                         amp=False if args.no_amp else None, final_only=args.final_only,
                         train_fraction=args.train_fraction, cpu_path=args.cpu_path, input_norm=args.input_norm,
                         warmup_epochs=args.warmup_epochs, stacked=args.stacked)
    result = train.fit(X, y, config, args.run_dir, ids=ids, dataset_version=dataset_version, dataset_name=dataset_name,
                 progress=not args.no_progress)
    m = result.metrics
    print(f"protocol: {m['protocol']}")
    for t in m["targets"]:
        cv = "n/a" if m["cv_mae"] is None else f"{m['cv_mae'][t]:.4g}"
        print(f"{t}: CV-MAE {cv}  train-MAE {m['train_mae'][t]:.4g}  test-MAE {m['test_mae'][t]:.4g}  "
              f"test-NMAE {m['test_nmae'][t]:.2f} %")
    print(f"results in {result.run_dir}")
    return 0
