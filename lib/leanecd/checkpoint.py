"""A training run on disk: checkpoints (format ``leanecd-checkpoint-1``), random state, ``history.csv``.

Each run directory (``fold-1`` … ``fold-K``, ``final``) holds ``best.pt`` and ``last.pt``
(weights, optimiser, scheduler, GradScaler, epoch, random state: the keys of
:func:`write_checkpoints`) and ``history.csv`` (epoch, train_loss, val_loss, lr,
time_s); every file is written atomically. The sequential path (:func:`leanecd.train.train_run`)
and the stacked one (:mod:`leanecd.foldstack`) write and resume them through this module,
so either can continue the other's run.
"""

from __future__ import annotations

import csv
import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import FileFormatError, LeanECDError
from .models import Standardized, build_model
from .store import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "HISTORY_FIELDS",
    "RunResult",
    "load_checkpoint_model",
    "make_model",
    "read_history",
    "resume_checkpoint",
    "rng_state",
    "seed_everything",
    "set_rng_state",
    "write_checkpoints",
]

CHECKPOINT_FORMAT = "leanecd-checkpoint-1"


@dataclass
class RunResult:
    """One training run (a CV fold or the final fit)."""

    model: nn.Module
    history: list[dict]
    target_mean: np.ndarray
    target_std: np.ndarray
    run_dir: Path
    best_epoch: int | None
    epochs_run: int
    wall_time_s: float


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (a run's initialisation)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The global random state (torch, NumPy, Python, CUDA when present), as a checkpoint's ``rng`` holds it."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Make ``state`` (from :func:`rng_state`) the global random state."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, list | tuple) else x


def _save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report which file is broken
        raise FileFormatError(path, f"unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise FileFormatError(path, f"not a {CHECKPOINT_FORMAT} checkpoint")
    return ckpt


HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "lr", "time_s")


def _write_history(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_FIELDS})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def read_history(path: str | os.PathLike) -> list[dict]:
    """Read a ``history.csv`` (or a run directory containing one) into a list of dicts."""
    path = Path(path)
    if path.is_dir():
        path = path / "history.csv"
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append({k: (None if r[k] == "" else (int(r[k]) if k == "epoch" else float(r[k])))
                         for k in HISTORY_FIELDS})
    return rows


def make_model(model: str, dropout: float, in_size: int, n_outputs: int, input_norm: str = "none",
               input_mean=None, input_std=None) -> nn.Module:
    """The network of ``model``, wrapped in :class:`~leanecd.models.Standardized` unless ``input_norm`` is "none".

    Without ``input_mean``/``input_std`` the wrapper holds placeholders (0, 1) of the
    right shape, to be filled by ``load_state_dict``.
    """
    net = build_model(model, dropout=dropout, in_size=in_size, n_outputs=n_outputs)
    if input_norm == "none":
        return net
    shape = () if input_norm == "global" else (1, 1, in_size, in_size, in_size)
    mean = torch.zeros(shape) if input_mean is None else input_mean
    std = torch.ones(shape) if input_std is None else input_std
    return Standardized(net, mean, std, input_norm)


def load_checkpoint_model(path: str | os.PathLike) -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """Rebuild the model stored in a ``best.pt``/``last.pt``; returns (model, target_mean, target_std)."""
    ckpt = _load(Path(path))
    kw = ckpt["model_kwargs"]
    model = make_model(kw["model"], kw["dropout"], kw["in_size"], kw["n_outputs"], kw.get("input_norm", "none"))
    model.load_state_dict(ckpt["model_state"])
    model.eval()
    return model, ckpt["target_mean"].numpy(), ckpt["target_std"].numpy()


def write_checkpoints(run_dir: Path, *, improved: bool, model_kwargs: dict, model: nn.Module, targets, target_mean,
                      target_std, epoch: int, epochs: int, run_seed: int, train_idx: torch.Tensor,
                      val_idx: torch.Tensor | None, best_val_loss: float, best_epoch: int | None, history: list[dict],
                      elapsed_s: float, optimizer, scheduler, scaler, use_scaler: bool, rng: dict) -> None:
    """A run's ``best.pt`` (when ``improved``; without validation, best = last), ``last.pt`` and ``history.csv``
    at the end of ``epoch`` (1-based). ``target_mean``/``target_std``: the z-score of the targets (physical units)."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_kwargs": model_kwargs,
        "model_state": model.state_dict(),
        "targets": list(targets),
        "target_mean": torch.from_numpy(target_mean),
        "target_std": torch.from_numpy(target_std),
        "epoch": epoch,
        "epochs": epochs,
        "run_seed": run_seed,
        "train_idx": train_idx,
        "val_idx": val_idx,
        "best_val_loss": best_val_loss,
        "best_epoch": best_epoch,
        "history": history,
        "elapsed_s": elapsed_s,
    }
    if improved:
        _save(state, run_dir / "best.pt")
    state.update({
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict(),
        "scaler_state": scaler.state_dict() if use_scaler else {},
        "rng": rng,
    })
    _save(state, run_dir / "last.pt")
    _write_history(run_dir / "history.csv", history)


def resume_checkpoint(run_dir: Path, model_kwargs: dict, run_seed: int, train_idx: torch.Tensor, model: nn.Module,
                      optimizer, scheduler, scaler, use_scaler: bool) -> dict | None:
    """Load ``run_dir/last.pt`` into the model, optimiser, scheduler (and GradScaler); ``None`` if there is none.

    Raises if the checkpoint is of another run (model, seed or training rows differ).
    Returns the bookkeeping to continue from: ``history``, ``epoch`` (epochs done),
    ``best_val_loss``, ``best_epoch``, ``elapsed_s``, ``rng`` (the random state to train on
    with); rewrites ``history.csv``, which may lag ``last.pt`` after a crash.
    """
    last_path = run_dir / "last.pt"
    if not last_path.exists():
        return None
    ckpt = _load(last_path)
    if ckpt["model_kwargs"] != model_kwargs or ckpt["run_seed"] != run_seed:
        raise LeanECDError(f"{last_path}: checkpoint is of a different run "
                           f"({ckpt['model_kwargs']}, seed {ckpt['run_seed']}); use a new run directory")
    if not torch.equal(ckpt["train_idx"], train_idx):
        raise LeanECDError(f"{last_path}: checkpoint was trained on different samples; use a new run directory")
    model.load_state_dict(ckpt["model_state"])
    optimizer.load_state_dict(ckpt["optimizer_state"])
    scheduler.load_state_dict(ckpt["scheduler_state"])
    if use_scaler:
        scaler.load_state_dict(ckpt["scaler_state"])
    history = list(ckpt["history"])
    _write_history(run_dir / "history.csv", history)
    return {"history": history, "epoch": int(ckpt["epoch"]), "best_val_loss": float(ckpt["best_val_loss"]),
            "best_epoch": ckpt["best_epoch"], "elapsed_s": float(ckpt["elapsed_s"]), "rng": ckpt["rng"]}
