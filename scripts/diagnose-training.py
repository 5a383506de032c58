#!/usr/bin/env python
"""Why does Model A under-fit? One factor at a time, on a fixed subset and a fixed budget.

Every row trains Model A on the bulk modulus with the trainer itself
(:func:`leanecd.train.fit`, final fit only) on the same nested half of the 90 %
training part of the embedded dataset, for the same number of epochs (one cosine
cycle), and scores it on the project's test split (the one every baseline uses).
The rows differ from the paper's protocol in one or two settings the paper leaves
open (input scaling, a learning-rate warm-up, dropout) or states (learning rate,
batch size). Each finished row is written atomically to ``OUT/diagnosis.csv`` and
its epoch history to ``OUT/history/<name>.csv``; a rerun skips finished rows, so
the study resumes where it stopped. Chapter 6 reads these files.

    .venv/bin/python scripts/diagnose-training.py                 # about 10 minutes a row on 2 busy CPU cores
    .venv/bin/python scripts/diagnose-training.py --only paper    # one row
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
import tempfile
from pathlib import Path

from leanecd.checkpoint import read_history
from leanecd.data import load_dataset
from leanecd.features import dataset_features
from leanecd.store import atomic_path
from leanecd.train import fit
from leanecd.trainconfig import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TARGET = "bulk_modulus_GPa"

#: name -> (what changes, TrainConfig keyword arguments). "paper" is the protocol's own settings.
ROWS = {
    "paper": ("the paper's settings, raw inputs", {}),
    "global": ("inputs standardised (one mean, one SD)", {"input_norm": "global"}),
    "voxel": ("inputs standardised per grid point", {"input_norm": "voxel"}),
    "voxel-warmup": ("inputs per grid point, 5-epoch warm-up", {"input_norm": "voxel", "warmup_epochs": 5}),
    "voxel-lr1e-3": ("inputs per grid point, lr 1e-3", {"input_norm": "voxel", "lr": 1e-3}),
    "global-lr1e-3": ("inputs one mean/SD, lr 1e-3", {"input_norm": "global", "lr": 1e-3}),
    "lr1e-3": ("raw inputs, lr 1e-3", {"lr": 1e-3}),
    "voxel-lr3e-4": ("inputs per grid point, lr 3e-4", {"input_norm": "voxel", "lr": 3e-4}),
    "voxel-lr1e-3-batch16": ("per grid point, lr 1e-3, batch 16",
                             {"input_norm": "voxel", "lr": 1e-3, "batch_size": 16}),
    "voxel-lr1e-3-dropout": ("per grid point, lr 1e-3, dropout 0.1",
                             {"input_norm": "voxel", "lr": 1e-3, "dropout": 0.1}),
}

COLUMNS = ["name", "change", "input_norm", "lr", "warmup_epochs", "batch_size", "dropout", "epochs", "n_train",
           "n_test", "train_loss_first", "train_loss_last", "train_mae_GPa", "test_mae_GPa", "test_spread_ratio",
           "collapsed", "cpu_path", "training_time_s", "dataset_version"]


def _done(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        return {r["name"]: r for r in csv.DictReader(fh)}


def _write(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "diagnosis")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--fraction", type=float, default=0.5, help="nested share of the 90 %% used for training")
    ap.add_argument("--cpu-path", default="bf16+cl", help="one CPU path for every row (see leanecd.cpupath)")
    ap.add_argument("--only", nargs="*", help="row names (default: all)")
    args = ap.parse_args(argv)

    ds = load_dataset("embedded")
    ids, X, _ = dataset_features(ds, progress=False)
    y = ds.subset(list(ids)).targets(TARGET)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "history").mkdir(exist_ok=True)
    table = args.out / "diagnosis.csv"
    done = _done(table)
    for name in args.only or list(ROWS):
        if name in done and done[name]["dataset_version"] == ds.version and int(done[name]["epochs"]) == args.epochs:
            continue
        change, kwargs = ROWS[name]
        cfg = TrainConfig(model="A", targets=(TARGET,), epochs=args.epochs, final_only=True, mode="full", seed=0,
                          train_fraction=args.fraction, cpu_path=args.cpu_path, **kwargs)
        run_dir = Path(tempfile.mkdtemp(prefix=f"diag-{name}-"))
        try:
            m = fit(X, y, cfg, run_dir, ids=ids, dataset_name=ds.name, dataset_version=ds.version,
                    progress=False).metrics
            hist = read_history(run_dir / "final")
            shutil.copy(run_dir / "final" / "history.csv", args.out / "history" / f"{name}.csv")
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        c = m["provenance"]["cpu_path"]
        done[name] = {
            "name": name, "change": change, "input_norm": kwargs.get("input_norm", "none"),
            "lr": kwargs.get("lr", 5e-3), "warmup_epochs": kwargs.get("warmup_epochs", 0),
            "batch_size": kwargs.get("batch_size", 50), "dropout": kwargs.get("dropout", 0.0),
            "epochs": args.epochs, "n_train": m["n_train"], "n_test": m["n_test"],
            "train_loss_first": f"{hist[0]['train_loss']:.4f}", "train_loss_last": f"{hist[-1]['train_loss']:.4f}",
            "train_mae_GPa": f"{m['train_mae'][TARGET]:.2f}", "test_mae_GPa": f"{m['test_mae'][TARGET]:.2f}",
            "test_spread_ratio": f"{m['test_spread_ratio'][TARGET]:.3f}", "collapsed": m["collapsed"][TARGET],
            "cpu_path": c["chosen"], "training_time_s": f"{m['training_time_s']['final']:.0f}",
            "dataset_version": ds.version,
        }
        _write(table, [done[k] for k in ROWS if k in done] + [v for k, v in done.items() if k not in ROWS])
        r = done[name]
        print(f"{name:22s} loss {r['train_loss_first']} -> {r['train_loss_last']}  train MAE {r['train_mae_GPa']}  "
              f"test MAE {r['test_mae_GPa']} GPa  spread {r['test_spread_ratio']}"
              f"{'  COLLAPSED' if r['collapsed'] else ''}  ({r['training_time_s']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
