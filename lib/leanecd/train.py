"""Training with the paper's protocol (§3.2, §4): GPU first, honest on a CPU.

Protocol (``full`` mode)
------------------------
* targets z-scored with the training-set mean and standard deviation, predictions
  converted back to physical units (GPa, eV/atom) for every reported number;
* MSE loss on the normalised targets, Adam, initial learning rate 5×10⁻³, batch 50,
  650 epochs;
* cosine annealing with warm restarts, ``T_0 = 50`` epochs, ``T_mult = 1``, stepped
  every batch at the fractional epoch (the paper names the scheduler but not its
  period; 650 = 13 × 50, so the last epoch ends at the bottom of a cosine cycle, where
  the learning rate is smallest, and the final weights are not taken mid-restart);
* 90 % train + cross-validation, 10 % test (fixed seed); 9-fold CV on the 90 % gives
  CV-MAE (mean over folds of the validation MAE); a final fit on the whole 90 % gives
  train- and test-MAE;
* NMAE = mean|y − ŷ| / mean(y) × 100 over the set in question.

``final_only=True`` (CLI ``--final-only``) skips the cross-validation and runs only
the final fit on the 90 % (train- and test-MAE, no CV-MAE); ``metrics.json`` says so
in its ``protocol`` entry, so such a run is not mistaken for the full protocol.

Learning curves: ``train_fraction=f`` (CLI ``--train-fraction``) trains on a nested
subset of the 90 % train+CV part (:func:`leanecd.splits.train_subset`) and keeps the test set of the
full run with the same seed and data, so test-MAEs at different fractions are
comparable (:func:`leanecd.tables.learning_curve`).

Weights reported: every fit trains for the fixed number of epochs. The final fit has
no validation set, so its model is the one after the last epoch (``best.pt`` =
``last.pt`` there). For CV-MAE we use the fold models after their last epoch too
(``cv_weights="last"``), so CV and final models come out of the same procedure; each
fold still saves ``best.pt`` (lowest validation loss) for inspection. Scoring the
best-by-validation epoch on the very fold that chose it would bias CV-MAE low.

``quick`` mode (CPU, CI; the default without CUDA) shrinks epochs, folds and the
number of samples, keeps the 51³ input, and prints every shortcut it takes:
see :func:`protocol`.

Run directory
-------------
Written through :mod:`leanecd.runs`: ``config.json`` (settings, shortcuts, provenance),
``splits.json`` (sample indices and compound ids; ``trainval`` is the reduced set when
``train_fraction`` < 1),
``metrics.json``, ``predictions.csv`` (id, split, fold, target, y_true, y_pred in
physical units), and one sub-directory per training run, ``fold-1`` … ``fold-K`` and
``final``, each with ``best.pt``, ``last.pt`` (weights, optimizer, scheduler, epoch,
RNG state), ``history.csv`` (epoch, train_loss, val_loss, lr, time_s). Every file is
written atomically. Calling :func:`fit` again on the same directory resumes each run
from its ``last.pt`` and gives the same final weights as an uninterrupted run.

On CUDA: the whole feature tensor goes on the GPU when it fits (pinned host memory
and non-blocking copies per batch otherwise), bf16 autocast (fp16 + GradScaler where
bf16 is unsupported), channels_last_3d memory format, optional ``torch.compile``; the CV
folds and the final fit train together as one stacked model (:mod:`leanecd.foldstack`,
``TrainConfig.stacked``, CLI ``--stacked``/``--no-stacked``; lean models only).
On a CPU the fastest of these differs from processor to processor (bf16 is several
times faster than fp32 with AMX or AVX-512 bf16 units, slower without), so it is
measured, not assumed: ``cpu_path="auto"`` (the default of long full-mode runs) probes
the paths of :mod:`leanecd.cpupath` and records the choice in the run's provenance;
shorter runs use fp32 eager unless told otherwise.

Modules: the settings are :mod:`leanecd.trainconfig`, the execution (device, precision,
features, CPU path) :mod:`leanecd.execution`, the checkpoints and ``history.csv``
:mod:`leanecd.checkpoint`, one run in memory (built and resumed) :mod:`leanecd.runstate`,
the command line :mod:`leanecd.train_cli`. Here: one run's steps (:func:`_resume`,
:func:`_train_epoch`, :func:`_validate`, :func:`_checkpoint`) and :func:`train_run`,
which builds the run and loops over them; the protocol (:func:`_cross_validate`,
:func:`_final_fit`) and :func:`fit`; predictions and learning curves. (About 510 lines,
80 of them this description of the protocol, which belongs with :func:`fit`.)
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from . import foldstack
from .checkpoint import RunResult, load_checkpoint_model, read_history, rng_state, set_rng_state, write_checkpoints
from .errors import LeanECDError
from .execution import (
    Features,
    deterministic_algorithms,
    device_select,
    precision,
    predict_norm,
    progress_bar,
    provenance,
    resolve_cpu_path,
    resolve_execution,
)
from .foldstack import epoch_permutation
from .log import logger
from .metrics import COLLAPSE_SD_RATIO, mae, nmae, spread_ratio
from .runs import (
    splits_record,
    write_config,
    write_metrics,
    write_predictions,
    write_splits,
)
from .runstate import RunState, build_run, resume_run
from .splits import kfold_indices, split_indices, train_subset
from .trainconfig import TrainConfig, check_same_run, protocol_label, resolve_config

__all__ = [
    "FitResult",
    "fit",
    "main",
    "plot_learning_curves",
    "predict",
    "provenance",
    "train_run",
]

# mae and nmae (leanecd.metrics) are imported above for fit and stay importable from here
# (``from leanecd.train import mae, nmae``). NMAE = mean|y − ŷ| / |mean(y)| × 100.


@dataclass
class FitResult:
    """The whole protocol: metrics (physical units), final model, per-run histories."""

    metrics: dict
    run_dir: Path
    final: RunResult
    folds: list[RunResult] = field(default_factory=list)


@torch.no_grad()
def predict(model: nn.Module, X, target_mean, target_std, batch_size: int = 50,
            device: torch.device | str | None = None, amp: bool | None = False) -> np.ndarray:
    """Predictions in physical units, shape (N, n_targets), for features ``X`` (N, [1,] n, n, n)."""
    if device is None:
        device = next(model.parameters()).device
    device = device_select(device) if not isinstance(device, torch.device) else device
    feats = X if isinstance(X, Features) else Features(np.asarray(X), device, channels_last=False)
    norm = predict_norm(model, feats, torch.arange(len(feats)), batch_size, device, amp)
    return norm * np.asarray(target_std) + np.asarray(target_mean)


# --------------------------------------------------------------------------- one run, step by step


def _resume(run: RunState) -> None:
    """Step 2 (step 1 is :func:`~leanecd.runstate.build_run`): continue from ``last.pt``
    (:func:`~leanecd.runstate.resume_run`) and train on with the global random state it holds; without one, the
    warm-up starts."""
    ckpt = resume_run(run)
    if ckpt is not None:
        set_rng_state(ckpt["rng"])


def _train_epoch(run: RunState, run_model: nn.Module, feats: Features, epoch: int, config: TrainConfig) -> float:
    """Step 3: one epoch (0-based) of shuffled batches; the scheduler steps at the fractional epoch after every
    batch. Returns the epoch's training loss (MSE of the z-scored targets, mean over samples)."""
    device = run.device
    use_amp, amp_dtype, _ = precision(device, config.amp)
    run.model.train()
    perm = epoch_permutation(run.tr, run.run_seed, epoch)
    total = torch.zeros((), device=device)
    for b in range(run.n_batches):
        idx = perm[b * config.batch_size:(b + 1) * config.batch_size]
        xb, yb = feats.batch(idx), run.y_norm[idx.to(device)]
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            pred = run_model(xb)
        loss = nn.functional.mse_loss(pred.float(), yb)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.after_step(epoch, b)
        total += loss.detach() * len(idx)
    return float(total) / len(run.tr)


def _validate(run: RunState, run_model: nn.Module, feats: Features, config: TrainConfig) -> float | None:
    """Step 4: the validation loss (MSE of the z-scored targets), ``None`` without validation rows."""
    if run.va is None:
        return None
    p = predict_norm(run_model, feats, run.va, config.batch_size, run.device, config.amp)
    return float(np.mean((p - run.y_norm[run.va.to(run.device)].cpu().numpy()) ** 2))


def _checkpoint(run: RunState, row: dict, config: TrainConfig) -> None:
    """Step 5: after every epoch, ``best.pt`` (when the validation loss improved; without validation every
    epoch improves), ``last.pt`` and ``history.csv``, each written atomically."""
    val_loss = row["val_loss"]
    improved = val_loss is None or val_loss < run.best_val
    if improved:
        run.best_val = run.best_val if val_loss is None else val_loss
        run.best_epoch = row["epoch"]
    write_checkpoints(run.run_dir, improved=improved, model_kwargs=run.model_kwargs, model=run.model,
                      targets=config.targets, target_mean=run.mean, target_std=run.std, epoch=row["epoch"],
                      epochs=config.epochs, run_seed=run.run_seed, train_idx=run.tr, val_idx=run.va,
                      best_val_loss=run.best_val, best_epoch=run.best_epoch, history=run.history,
                      elapsed_s=run.elapsed, optimizer=run.optimizer, scheduler=run.scheduler, scaler=run.scaler,
                      use_scaler=run.use_scaler, rng=rng_state())


def _show(bar, row: dict) -> None:
    """The epoch on the progress bar (loss, learning rate, validation loss)."""
    if bar is None:
        return
    bar.update(1)
    post = {"loss": f"{row['train_loss']:.4f}", "lr": f"{row['lr']:.2e}"}
    if row["val_loss"] is not None:
        post["val"] = f"{row['val_loss']:.4f}"
    bar.set_postfix(post)


def train_run(X, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray | None,
              config: TrainConfig, run_dir: str | os.PathLike, run_seed: int, label: str = "run",
              progress: bool = True, on_epoch_end: Callable[[str, int, dict], None] | None = None) -> RunResult:
    """Train one model on ``train_idx`` (validating on ``val_idx`` if given), resuming from ``run_dir/last.pt``.

    ``X``: features (N, [1,] n, n, n) (an array, or the tensor holder :func:`fit` shares
    between runs). ``config`` must be resolved (:func:`~leanecd.trainconfig.resolve_config`). ``y`` is (N, n_targets) in
    physical units; the z-score uses the ``train_idx`` rows only. ``on_epoch_end(label,
    epoch, row)`` is called after each epoch's checkpoint is on disk (an exception
    raised there interrupts the run like a crash would).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device, _, _, use_scaler, channels_last, deterministic = resolve_execution(config)
    feats = X if isinstance(X, Features) else Features(np.asarray(X), device, channels_last)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    with deterministic_algorithms(deterministic):
        run = build_run(config, feats, y, train_idx, val_idx, run_dir, run_seed, device, channels_last, use_scaler)
        _resume(run)
        run_model = torch.compile(run.model) if config.compile else run.model
        bar = progress_bar(config.epochs, run.start_epoch, label, progress)
        try:
            for epoch in range(run.start_epoch, config.epochs):
                t0 = time.perf_counter()
                lr_epoch = run.optimizer.param_groups[0]["lr"]
                train_loss = _train_epoch(run, run_model, feats, epoch, config)
                val_loss = _validate(run, run_model, feats, config)
                dt = time.perf_counter() - t0
                run.elapsed += dt
                row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "lr": lr_epoch, "time_s": dt}
                run.history.append(row)
                _checkpoint(run, row, config)
                _show(bar, row)
                if on_epoch_end is not None:
                    on_epoch_end(label, epoch + 1, row)
        finally:
            if bar is not None:
                bar.close()
    return RunResult(model=run.model, history=run.history, target_mean=run.mean, target_std=run.std,
                     run_dir=run_dir, best_epoch=run.best_epoch, epochs_run=len(run.history),
                     wall_time_s=run.elapsed)


# --------------------------------------------------------------------------- the protocol


def _check_data(X, y, ids, cfg: TrainConfig):
    """``X``, ``y`` as (N, n_targets) float64 and ``ids``, after checking shapes and finite targets."""
    X = np.asarray(X) if not isinstance(X, np.ndarray) else X
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    n = X.shape[0]
    if y.shape != (n, len(cfg.targets)):
        raise LeanECDError(f"y has shape {y.shape}; expected ({n}, {len(cfg.targets)}) for targets {list(cfg.targets)}")
    if X.ndim not in (4, 5) or (X.ndim == 5 and X.shape[1] != 1) or len(set(X.shape[-3:])) != 1:
        raise LeanECDError(f"X must be (N, n, n, n) or (N, 1, n, n, n) with a cubic grid; got {X.shape}")
    ids = np.arange(n) if ids is None else np.asarray(ids)
    if len(ids) != n:
        raise LeanECDError(f"{len(ids)} ids for {n} samples")
    bad = ~np.isfinite(y).all(axis=1)
    if bad.any():
        raise LeanECDError(f"targets are NaN/inf for samples {list(ids[bad][:10])}{' ...' if bad.sum() > 10 else ''}; "
                           "remove them explicitly before training")
    return X, y, ids


def _select(n: int, cfg: TrainConfig):
    """The rows of a protocol: (subset of the N samples, train+CV rows, test rows, size of the full train+CV
    part, folds), as positions in the subset; each selection that leaves samples out says so."""
    subset = np.arange(n)
    if cfg.max_samples is not None and cfg.max_samples < n:  # quick mode (or an explicit max_samples)
        subset = np.sort(np.random.default_rng(cfg.seed + 104_729).choice(n, cfg.max_samples, replace=False))
        logger.info(f"using {len(subset)} of {n} samples (max_samples={cfg.max_samples}, seeded random subset)")
    trainval, test = split_indices(len(subset), cfg.seed, cfg.test_fraction)
    n_trainval = len(trainval)
    trainval = train_subset(trainval, cfg.train_fraction, cfg.seed)
    if len(trainval) < n_trainval:
        logger.info(f"training on {len(trainval)} of {n_trainval} train+CV samples "
                    f"(train_fraction={cfg.train_fraction}, "
                    f"nested seeded subset); the {len(test)} test samples are the full run's")
    folds = kfold_indices(trainval, cfg.folds, cfg.seed) if cfg.folds else []
    return subset, trainval, test, n_trainval, folds


def _open_run_dir(run_dir: Path, cfg: TrainConfig, shortcuts: list[str], device: torch.device, X, ids, subset,
                  trainval, test, folds, dataset_version: str | None, dataset_name: str | None):
    """Settle how the runs execute (CPU path, stacked or not), check that ``run_dir`` holds no run with other
    settings, and write its ``splits.json`` and ``config.json``. Returns (config, provenance)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    work = cfg.epochs * len(trainval) * (1 + len(folds))
    cfg, cpu_record = resolve_cpu_path(cfg, device, int(X.shape[-1]), len(cfg.targets), work)
    cfg = dataclasses.replace(cfg, stacked=foldstack.resolve_stacked(cfg.stacked, cfg.model, device))
    prov = provenance(device, dataset_version, dataset_name)
    if cpu_record is not None:
        prov["cpu_path"] = cpu_record
    check_same_run(run_dir / "config.json", cfg)
    write_splits(run_dir, splits_record(ids, subset, trainval, test, [v for _, v in folds]))
    write_config(run_dir, {"config": cfg.to_dict(), "shortcuts": shortcuts, "provenance": prov,
                           "data": {"n_samples": int(X.shape[0]), "n_used": len(subset),
                                    "input_shape": list(X.shape[1:]), "targets": list(cfg.targets)}})
    return cfg, prov


def _cross_validate(feats: Features, ys: np.ndarray, folds, cfg: TrainConfig, run_dir: Path, device,
                    stacked: list[RunResult] | None, progress: bool, on_epoch_end):
    """The CV folds (``fold-1`` … ``fold-K``): train each (or take its stacked run) and predict its validation rows.

    Returns (fold runs, prediction rows ``("cv", k, rows, predictions)``, per-fold MAE, per-fold NMAE).
    """
    fold_runs, cv_rows, fold_mae, fold_nmae = [], [], [], []
    for k, (tr, va) in enumerate(folds, start=1):
        res = stacked[k - 1] if stacked else train_run(feats, ys, tr, va, cfg, run_dir / f"fold-{k}",
                        run_seed=cfg.seed + k, label=f"fold {k}/{len(folds)}", progress=progress,
                        on_epoch_end=on_epoch_end)
        if cfg.cv_weights == "best":
            model, _, _ = load_checkpoint_model(run_dir / f"fold-{k}" / "best.pt")
            model.to(device)
        else:
            model = res.model
        p = predict_norm(model, feats, torch.from_numpy(va), cfg.batch_size, device, cfg.amp)
        p = p * res.target_std + res.target_mean
        fold_mae.append(mae(ys[va], p))
        fold_nmae.append(nmae(ys[va], p))
        cv_rows.append(("cv", k, va, p))
        fold_runs.append(res)
    return fold_runs, cv_rows, fold_mae, fold_nmae


def _final_fit(feats: Features, ys: np.ndarray, trainval: np.ndarray, test: np.ndarray, cfg: TrainConfig,
               run_dir: Path, device, stacked: RunResult | None, progress: bool, on_epoch_end):
    """The final fit on the (train+CV) rows (``final``), scored on them and on the test rows.

    Returns (run, prediction rows, ``{"train"|"test": (MAE, NMAE)}``, test spread ratio or None).
    """
    final = stacked or train_run(feats, ys, trainval, None, cfg, run_dir / "final", run_seed=cfg.seed,
                                 label="final (90 %)", progress=progress, on_epoch_end=on_epoch_end)
    pred_rows, scores, spread = [], {}, None
    for split_name, idx in (("train", trainval), ("test", test)):
        p = predict_norm(final.model, feats, torch.from_numpy(idx), cfg.batch_size, device, cfg.amp)
        p = p * final.target_std + final.target_mean
        pred_rows.append((split_name, None, idx, p))
        scores[split_name] = (mae(ys[idx], p), nmae(ys[idx], p)) if len(idx) else (None, None)
        if split_name == "test" and len(idx) > 1:
            spread = spread_ratio(ys[idx], p)
    return final, pred_rows, scores, spread


def _metrics(cfg: TrainConfig, shortcuts: list[str], n: int, trainval, n_trainval: int, test, folds,
             fold_runs: list[RunResult], fold_mae, fold_nmae, final: RunResult, scores: dict, spread,
             wall_time_s: float, prov: dict) -> dict:
    """The content of ``metrics.json`` (physical units; one entry per target)."""

    def per_target(values):
        return None if values is None else {t: float(v) for t, v in zip(cfg.targets, np.atleast_1d(values))}

    return {
        "targets": list(cfg.targets),
        "model": cfg.model,
        "mode": cfg.mode,
        "protocol": protocol_label(cfg, n),
        "final_only": not cfg.folds,
        "shortcuts": shortcuts,
        "cv_mae": per_target(np.mean(fold_mae, axis=0)) if fold_mae else None,
        "cv_mae_per_fold": ({t: [float(np.atleast_1d(m)[j]) for m in fold_mae] for j, t in enumerate(cfg.targets)}
                            if fold_mae else None),
        "cv_nmae": per_target(np.mean(fold_nmae, axis=0)) if fold_nmae else None,
        "cv_weights": cfg.cv_weights,
        "train_mae": per_target(scores["train"][0]),
        "test_mae": per_target(scores["test"][0]),
        "train_nmae": per_target(scores["train"][1]),
        "test_nmae": per_target(scores["test"][1]),
        "test_spread_ratio": per_target(spread),
        "collapsed": (None if spread is None
                      else {t: bool(c) for t, c in zip(cfg.targets, np.atleast_1d(spread < COLLAPSE_SD_RATIO))}),
        "collapse_rule": f"test predictions' standard deviation < {COLLAPSE_SD_RATIO:g} x the test labels'",
        "train_fraction": cfg.train_fraction,
        "n_train": len(trainval),
        "n_train_full": int(n_trainval),
        "n_test": len(test),
        "folds": len(folds),
        "epochs": cfg.epochs,
        "epochs_run": {"final": final.epochs_run, **{f"fold-{k}": r.epochs_run for k, r in enumerate(fold_runs, 1)}},
        "training_time_s": {"final": final.wall_time_s,
                            **{f"fold-{k}": r.wall_time_s for k, r in enumerate(fold_runs, 1)}},
        "wall_time_s_this_call": wall_time_s,
        "provenance": prov,
    }


def fit(X, y, config: TrainConfig, run_dir: str | os.PathLike, ids: Sequence | None = None,
        dataset_version: str | None = None, progress: bool = True,
        on_epoch_end: Callable[[str, int, dict], None] | None = None,
        dataset_name: str | None = None) -> FitResult:
    """Run the paper's protocol on features ``X`` and targets ``y``; write everything to ``run_dir``.

    ``X``: (N, n, n, n) or (N, 1, n, n, n) float32 (autocorrelations for the lean
    models). ``y``: (N,) or (N, n_targets) in physical units, columns named by
    ``config.targets``. ``ids``: per-sample identifiers for ``predictions.csv``
    (default ``0 … N-1``). ``dataset_name``, ``dataset_version``: recorded in the
    provenance. Returns the metrics (physical units) and the trained runs.
    Calling again with the same ``run_dir`` resumes; a finished run is not retrained.
    """
    t_start = time.perf_counter()
    cfg, shortcuts = resolve_config(config)
    for line in shortcuts:
        logger.info(line)
    X, y, ids = _check_data(X, y, ids, cfg)
    n = X.shape[0]
    subset, trainval, test, n_trainval, folds = _select(n, cfg)

    run_dir = Path(run_dir)
    device = device_select(cfg.device)
    cfg, prov = _open_run_dir(run_dir, cfg, shortcuts, device, X, ids, subset, trainval, test, folds,
                              dataset_version, dataset_name)
    channels_last = (device.type == "cuda") if cfg.channels_last is None else bool(cfg.channels_last)
    feats = Features(X[subset] if len(subset) < n else X, device, channels_last)
    if device.type == "cuda":
        logger.info(f"features: {feats.t.numel() * 4 / 2**20:.0f} MiB on {feats.placement}")
    ys = y[subset]
    stacked = foldstack.train_protocol_runs(feats, ys, folds, trainval, cfg, run_dir, progress,
                                            on_epoch_end) if cfg.stacked else None
    fold_runs, cv_rows, fold_mae, fold_nmae = _cross_validate(feats, ys, folds, cfg, run_dir, device, stacked,
                                                              progress, on_epoch_end)
    final, final_rows, scores, spread = _final_fit(feats, ys, trainval, test, cfg, run_dir, device,
                                                   stacked[-1] if stacked else None, progress, on_epoch_end)
    used_ids = ids[subset]
    write_predictions(run_dir / "predictions.csv",
                      ((used_ids[i], split_name, fold, t, ys[i, j], pred[r, j])
                       for split_name, fold, idx, pred in [*cv_rows, *final_rows] for r, i in enumerate(idx)
                       for j, t in enumerate(cfg.targets)))
    metrics = _metrics(cfg, shortcuts, n, trainval, n_trainval, test, folds, fold_runs, fold_mae, fold_nmae, final,
                       scores, spread, time.perf_counter() - t_start, prov)
    write_metrics(run_dir, metrics)
    return FitResult(metrics=metrics, run_dir=run_dir, final=final, folds=fold_runs)


# --------------------------------------------------------------------------- plots


def plot_learning_curves(history, title: str | None = None):
    """Training/validation loss (log scale, normalised MSE) and learning rate per epoch.

    ``history``: a list of epoch rows, a ``history.csv`` path or run directory, or a
    dict ``{label: history}`` to overlay several runs (e.g. the CV folds). Returns a
    matplotlib Figure.
    """
    runs = history if isinstance(history, dict) else {"": history}
    runs = {k: (read_history(v) if isinstance(v, str | os.PathLike) else v) for k, v in runs.items()}
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for i, (label, rows) in enumerate(runs.items()):
        ep = [r["epoch"] for r in rows]
        color = f"C{i}"
        ax.plot(ep, [r["train_loss"] for r in rows], color=color, label=f"{label} train".strip())
        if any(r.get("val_loss") is not None for r in rows):
            ax.plot(ep, [np.nan if r.get("val_loss") is None else r["val_loss"] for r in rows], color=color,
                    ls="--", label=f"{label} validation".strip())
        if i == 0:
            ax_lr.plot(ep, [r["lr"] for r in rows], color="k")
    ax.set_yscale("log")
    ax.set_ylabel("MSE (normalised targets)")
    ax.legend(fontsize="small")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``leanecd-train`` (the console script in ``pyproject.toml``): :func:`leanecd.train_cli.main`."""
    # imported here, not at the top: train_cli imports this module
    from .train_cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
