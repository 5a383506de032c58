"""One training run in memory: its rows, z-scored targets, model, optimiser and checkpoint bookkeeping.

:func:`build_run` makes a run's :class:`RunState` (targets z-scored on the training rows,
seeded model, Adam, cosine warm restarts, GradScaler); :func:`resume_run` continues it
from its ``last.pt`` (:mod:`leanecd.checkpoint`) or starts its warm-up. The sequential path
(:func:`leanecd.train.train_run`) and the stacked one (:mod:`leanecd.foldstack`) build and
resume every run through these two, so a run starts the same way on either path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import make_model, resume_checkpoint, seed_everything
from .execution import Features, input_stats
from .trainconfig import TrainConfig

__all__ = ["RunState", "build_run", "resume_run"]


@dataclass(eq=False)  # a run is itself: compared and hashed by identity
class RunState:
    """One run in memory: its rows, z-scored targets, model, optimiser and the bookkeeping its checkpoint holds."""

    run_dir: Path
    run_seed: int
    device: torch.device
    tr: torch.Tensor  # training rows
    va: torch.Tensor | None  # validation rows
    mean: np.ndarray  # target z-score (training rows, physical units)
    std: np.ndarray
    y_norm: torch.Tensor  # (N, n_targets) z-scored, on the device
    model_kwargs: dict
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts
    scaler: torch.amp.GradScaler
    use_scaler: bool
    n_batches: int  # per epoch
    warmup: float  # epochs
    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0
    best_val: float = math.inf
    best_epoch: int | None = None
    elapsed: float = 0.0  # s

    def set_warmup_lr(self, t: float) -> None:
        """Scale the scheduler's learning rate for the batch that starts at epoch ``t`` (linear warm-up)."""
        if self.warmup > 0 and t < self.warmup:
            for group in self.optimizer.param_groups:
                group["lr"] *= min(1.0, (t + 1.0 / self.n_batches) / self.warmup)

    def after_step(self, epoch: int, b: int) -> None:
        """Optimiser step (through the GradScaler), cosine schedule and warm-up after batch ``b`` (0-based)
        of ``epoch``: the schedule moves to the fractional epoch ``epoch + (b + 1) / n_batches``."""
        self.scaler.step(self.optimizer)
        self.scaler.update()
        t = epoch + (b + 1) / self.n_batches
        self.scheduler.step(t)
        self.set_warmup_lr(t)


def build_run(config: TrainConfig, feats: Features, y: np.ndarray, train_idx, val_idx, run_dir: Path, run_seed: int,
              device: torch.device, channels_last: bool, use_scaler: bool,
              cls: type[RunState] = RunState) -> RunState:
    """Z-score the targets ``y`` (N, n_targets; physical units) on the training rows; seed; build the model
    (inputs standardised on the training rows unless ``input_norm`` is "none"), Adam, cosine warm restarts and the
    GradScaler. ``cls``: :class:`RunState` or a subclass whose extra fields have defaults."""
    mean = y[train_idx].mean(axis=0)
    std = y[train_idx].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    y_norm = torch.from_numpy(((y - mean) / std).astype(np.float32)).to(device)
    model_kwargs = {"model": config.model, "dropout": config.dropout, "in_size": int(feats.t.shape[-1]),
                    "n_outputs": int(y.shape[1])}
    input_norm = config.input_norm or "none"
    if input_norm != "none":  # absent for the paper's raw inputs, so older checkpoints still match
        model_kwargs["input_norm"] = input_norm
    tr = torch.from_numpy(np.asarray(train_idx, dtype=np.int64))
    va = None if val_idx is None or len(val_idx) == 0 else torch.from_numpy(np.asarray(val_idx, dtype=np.int64))

    seed_everything(run_seed)
    stats = input_stats(feats, tr, input_norm) if input_norm != "none" else (None, None)
    model = make_model(**model_kwargs, input_mean=stats[0], input_std=stats[1]).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=config.T_0, T_mult=config.T_mult, eta_min=config.eta_min)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    return cls(run_dir, run_seed, device, tr, va, mean, std, y_norm, model_kwargs, model, optimizer, scheduler,
               scaler, use_scaler, n_batches=math.ceil(len(tr) / config.batch_size),
               warmup=float(config.warmup_epochs or 0.0))


def resume_run(run: RunState) -> dict | None:
    """Continue ``run`` from its ``last.pt`` (weights, optimiser, scheduler, GradScaler; history, epochs done,
    time, best validation loss and epoch) and return the checkpoint's bookkeeping
    (:func:`~leanecd.checkpoint.resume_checkpoint`; its ``rng`` is the caller's to apply); without one, start
    the warm-up and return ``None``."""
    ckpt = resume_checkpoint(run.run_dir, run.model_kwargs, run.run_seed, run.tr, run.model, run.optimizer,
                             run.scheduler, run.scaler, run.use_scaler)
    if ckpt is None:
        run.set_warmup_lr(0.0)
        return None
    run.history, run.start_epoch, run.elapsed = ckpt["history"], ckpt["epoch"], ckpt["elapsed_s"]
    run.best_val, run.best_epoch = ckpt["best_val_loss"], ckpt["best_epoch"]
    return ckpt
