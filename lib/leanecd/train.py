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
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import math
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__, cpupath, registry
from .errors import FileFormatError, LeanECDError
from .metrics import COLLAPSE_SD_RATIO, is_collapsed, mae, nmae, spread_ratio
from .models import INPUT_NORMS, Standardized, build_model
from .runs import read_config, splits_record, write_config, write_metrics, write_predictions, write_splits
from .settings import SETTINGS, run_mode
from .splits import TEST_FRACTION, check_train_fraction, kfold_indices, split_indices, train_subset
from .store import atomic_path

__all__ = [
    "TrainConfig",
    "FitResult",
    "RunResult",
    "protocol",
    "OPEN_CHOICES",
    "resolve_config",
    "device_select",
    "mae",
    "nmae",
    "fit",
    "train_run",
    "predict",
    "load_checkpoint_model",
    "read_history",
    "plot_learning_curves",
    "provenance",
    "main",
]

CHECKPOINT_FORMAT = "leanecd-checkpoint-1"

#: The paper's protocol (full mode).
FULL_PROTOCOL = {
    "epochs": 650,
    "folds": 9,
    "max_samples": None,
    "batch_size": 50,
    "lr": 5e-3,
    "T_0": 50,
    "T_mult": 1,
}

#: What quick mode changes, and why it is printed.
QUICK_PROTOCOL = {
    "epochs": 3,
    "folds": 2,
    "max_samples": 40,
}


#: Settings the paper leaves open, and our choice for each (``TrainConfig`` fields that
#: default to ``None`` take these values; a run's ``config.json`` records them).
#: ``input_norm``: how the autocorrelations are scaled before the first convolution
#: (:data:`~leanecd.models.INPUT_NORMS`); ``warmup_epochs``: a linear learning-rate
#: warm-up from 0 over this many epochs, multiplying the cosine schedule.
OPEN_CHOICES = {
    "input_norm": "global",  # chapter 6: the paper's raw inputs at its learning rate under-fit our data
    "warmup_epochs": 0.0,
}


def protocol(mode: str | None = None) -> tuple[dict, list[str]]:
    """Training settings for ``mode`` (``"full"`` | ``"quick"``; default :func:`run_mode`).

    Returns ``(settings, shortcuts)``: the settings dict (keys of
    :data:`FULL_PROTOCOL`) and one human-readable line per deviation from the
    paper's protocol (empty in full mode).
    """
    mode = run_mode() if mode is None else mode
    if mode not in ("full", "quick"):
        raise LeanECDError(f"mode must be 'full' or 'quick', not {mode!r}")
    settings = dict(FULL_PROTOCOL)
    shortcuts: list[str] = []
    if mode == "quick":
        for key, value in QUICK_PROTOCOL.items():
            shortcuts.append(_shortcut_line(key, settings[key], value))
            settings[key] = value
        if settings["T_0"] > settings["epochs"]:
            shortcuts.append(_shortcut_line("T_0", settings["T_0"], settings["epochs"]))
            settings["T_0"] = settings["epochs"]
    return settings, shortcuts


def _shortcut_line(key: str, full, quick) -> str:
    full_s = "all samples" if full is None else full
    return f"quick mode: {key} {full_s} -> {quick} (the paper's protocol uses {full_s}; a demonstration, not a result)"


@dataclass
class TrainConfig:
    """Settings of one protocol run. ``None`` means "from :func:`protocol` for ``mode``".

    ``model``: a :func:`~leanecd.models.build_model` name; ``targets``: target names
    (one output each); ``epochs``, ``batch_size``, ``lr`` (Adam's initial learning
    rate); ``T_0`` (first cosine period, epochs), ``T_mult`` (period growth factor),
    ``eta_min`` (lowest learning rate); ``dropout`` (probability, Dropout3d after each
    PReLU); ``seed`` (splits, folds, initialisation, shuffling); ``folds`` (CV folds on
    the 90 %, 0 = none); ``test_fraction``; ``max_samples`` (a seeded random subset;
    quick mode uses 40, so pass a number or ``mode="full"`` to use more); ``device``
    (``"cuda"``/``"cpu"``, default CUDA when present); ``amp``, ``channels_last``
    (default: on for CUDA, off for CPU); ``compile`` (``torch.compile``);
    ``deterministic`` (default: on for CPU); ``cv_weights`` (``"last"`` or ``"best"``
    weights of each fold for CV-MAE); ``mode`` (``"full"``/``"quick"``, default
    :func:`~leanecd.settings.run_mode`); ``final_only`` (skip the cross-validation:
    ``folds`` becomes 0 and ``metrics.json`` labels the run "final fit only");
    ``train_fraction`` (0 < f ≤ 1: the fraction of the 90 % train+CV part used for
    training, for learning curves; the test set is unchanged, the same as the full
    run's with the same seed and data, so runs at different fractions are
    comparable; the subsets are nested (:func:`leanecd.splits.train_subset`), and the CV folds, if
    any, split the reduced set). Order of the selections: ``max_samples`` subset,
    then the test split, then ``train_fraction``. ``input_norm``, ``warmup_epochs``:
    what the paper leaves open (default :data:`OPEN_CHOICES`). ``cpu_path``: on a CPU,
    ``"auto"`` (probe the paths of :mod:`leanecd.cpupath` and keep the fastest; the
    default for long full-mode runs, see :data:`AUTO_CPU_PATH_MIN_WORK`) or a path name
    (``"fp32"``, ``"bf16+cl+compile"``, ...); otherwise ``amp``/``channels_last``/
    ``compile`` decide (fp32 eager unless set). ``stacked``: train the CV folds and the
    final fit together as one stacked model (:mod:`leanecd.foldstack`; lean models only;
    default: on for CUDA, off for CPU).
    """

    model: str = "A"
    targets: tuple[str, ...] = ("bulk_modulus_GPa",)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    T_0: int | None = None
    T_mult: int | None = None
    eta_min: float = 0.0
    dropout: float = 0.0
    seed: int = SETTINGS.seed
    folds: int | None = None
    test_fraction: float = TEST_FRACTION
    max_samples: int | None = None
    device: str | None = None
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    deterministic: bool | None = None
    cv_weights: str = "last"
    mode: str | None = None
    final_only: bool = False
    train_fraction: float = 1.0
    input_norm: str | None = None
    warmup_epochs: float | None = None
    cpu_path: str | None = None
    stacked: bool | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["targets"] = list(self.targets)
        return d


def resolve_config(config: TrainConfig) -> tuple[TrainConfig, list[str]]:
    """Fill every ``None`` protocol field from :func:`protocol` for ``config.mode``.

    Returns the resolved config and the quick-mode shortcuts actually taken (a value
    set explicitly in ``config`` is honoured and is not a shortcut).
    """
    mode = run_mode() if config.mode is None else config.mode
    settings, _ = protocol(mode)
    full, _ = protocol("full")
    shortcuts = []
    values = {}
    if config.final_only:
        if config.folds not in (None, 0):
            raise LeanECDError(f"final_only=True skips cross-validation, but folds={config.folds} was asked for")
        values["folds"] = 0
        shortcuts.append(f"final fit only: no {full['folds']}-fold cross-validation (the paper's protocol runs it "
                         "before the final fit), so there is no CV-MAE")
    fraction = check_train_fraction(config.train_fraction)
    if fraction < 1:
        shortcuts.append(f"train_fraction {fraction}: trains on a nested {fraction:.4g} share of the 90 % train+CV "
                         "part (a learning-curve point); the test set is the full run's")
    for key in FULL_PROTOCOL:
        explicit = getattr(config, key)
        if key in values:
            continue
        if explicit is not None:
            values[key] = explicit
        elif key == "T_0":  # one cosine period at most as long as the whole run
            values[key] = min(full["T_0"], values["epochs"])
            if values[key] != full["T_0"]:
                prefix = "quick mode: " if mode == "quick" and config.epochs is None else ""
                ep = "epoch" if values["epochs"] == 1 else "epochs"
                shortcuts.append(f"{prefix}T_0 {full['T_0']} -> {values[key]} {ep} (the run is only {values['epochs']} {ep} long)")
        else:
            values[key] = settings[key]
            if settings[key] != full[key]:
                shortcuts.append(_shortcut_line(key, full[key], settings[key]))
    for key, value in OPEN_CHOICES.items():
        values[key] = value if getattr(config, key) is None else getattr(config, key)
    if values["input_norm"] not in INPUT_NORMS:
        raise LeanECDError(f"input_norm must be one of {INPUT_NORMS}, not {values['input_norm']!r}")
    if not values["warmup_epochs"] >= 0:
        raise LeanECDError(f"warmup_epochs must be >= 0, not {values['warmup_epochs']}")
    if config.cpu_path not in (None, "auto"):
        cpupath.get_path(config.cpu_path)  # raises on an unknown name
    targets = (config.targets,) if isinstance(config.targets, str) else tuple(config.targets)
    resolved = dataclasses.replace(config, mode=mode, targets=targets, train_fraction=fraction, **values)
    if resolved.cv_weights not in ("last", "best"):
        raise LeanECDError(f"cv_weights must be 'last' or 'best', not {resolved.cv_weights!r}")
    if resolved.epochs < 1 or resolved.batch_size < 1:
        raise LeanECDError("epochs and batch_size must be >= 1")
    return resolved, shortcuts


# --------------------------------------------------------------------------- metrics


# mae and nmae live in leanecd.metrics and are re-exported here (imported at the top), so
# ``from leanecd.train import mae, nmae`` keeps working. NMAE = mean|y − ŷ| / |mean(y)| × 100.


# --------------------------------------------------------------------------- device


def device_select(prefer: str | None = None) -> torch.device:
    """The device to train on: ``prefer`` if given (error if unavailable), else CUDA when present, else CPU."""
    if prefer is None or prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(prefer)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LeanECDError(f"device {prefer!r} requested but CUDA is not available (torch {torch.__version__})")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise LeanECDError(f"device {prefer!r} requested but MPS is not available")
    return dev


def device_name(device: torch.device) -> str:
    """Human-readable device name (GPU model, or the CPU)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


class _Features:
    """Feature tensor (N, 1, n, n, n) float32, on the device when it fits."""

    def __init__(self, X: np.ndarray, device: torch.device, channels_last: bool):
        X = np.ascontiguousarray(X, dtype=np.float32)
        if not X.flags.writeable:  # e.g. a read-only memmap: torch wants writable memory
            X = X.copy()
        t = torch.from_numpy(X)
        if t.ndim == 4:
            t = t.unsqueeze(1)
        self.device, self.channels_last, self.on_device = device, channels_last, device.type == "cpu"
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if t.numel() * t.element_size() < 0.5 * free:  # keep half the free memory for activations
                t, self.on_device = t.to(device), True
            else:
                t = t.pin_memory()
        elif device.type != "cpu":
            t, self.on_device = t.to(device), True
        self.t = t
        self.placement = "device" if device.type != "cpu" and self.on_device else ("pinned host" if device.type == "cuda" else "host")

    def __len__(self) -> int:
        return self.t.shape[0]

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        if self.on_device:
            xb = self.t[idx.to(self.t.device)]
        else:
            xb = self.t[idx]
            if self.device.type == "cuda":
                xb = xb.pin_memory().to(self.device, non_blocking=True)
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last_3d)
        return xb


# --------------------------------------------------------------------------- training


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


@dataclass
class FitResult:
    """The whole protocol: metrics (physical units), final model, per-run histories."""

    metrics: dict
    run_dir: Path
    final: RunResult
    folds: list[RunResult] = field(default_factory=list)


def _precision(device: torch.device, amp: bool | None) -> tuple[bool, torch.dtype | None, bool]:
    """(use autocast, autocast dtype, use GradScaler)."""
    use = (device.type == "cuda") if amp is None else bool(amp)
    if not use:
        return False, None, False
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, torch.bfloat16, False
        return True, torch.float16, True
    return True, torch.bfloat16, False


def _execution(config: TrainConfig):
    """How a run executes: (device, autocast on, autocast dtype, GradScaler on, channels_last, deterministic).

    On CUDA it also sets cuDNN's algorithm search (on unless deterministic: the input
    shapes are fixed, so the fastest 3-D convolution algorithms are worth finding).
    """
    device = device_select(config.device)
    use_amp, amp_dtype, use_scaler = _precision(device, config.amp)
    channels_last = (device.type == "cuda") if config.channels_last is None else bool(config.channels_last)
    deterministic = (device.type == "cpu") if config.deterministic is None else bool(config.deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
    return device, use_amp, amp_dtype, use_scaler, channels_last, deterministic


@contextlib.contextmanager
def _deterministic(enabled: bool):
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if enabled:
            torch.use_deterministic_algorithms(True, warn_only=True)
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
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
            rows.append({k: (None if r[k] == "" else (int(r[k]) if k == "epoch" else float(r[k]))) for k in HISTORY_FIELDS})
    return rows


def _make_model(model: str, dropout: float, in_size: int, n_outputs: int, input_norm: str = "none",
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


def _input_stats(feats: "_Features", idx: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of the inputs of rows ``idx`` (float64 sums), as :class:`Standardized` wants them."""
    n = feats.t.shape[-1]
    s1 = torch.zeros((n, n, n), dtype=torch.float64)
    s2 = torch.zeros((n, n, n), dtype=torch.float64)
    for b in range(0, len(idx), 64):
        x = feats.t[idx[b:b + 64].to(feats.t.device)].detach().to("cpu", torch.float64).reshape(-1, n, n, n)
        s1 += x.sum(0)
        s2 += (x * x).sum(0)
    if kind == "global":
        count = len(idx) * n**3
        mean = s1.sum() / count
        var = s2.sum() / count - mean**2
    else:
        mean = s1 / len(idx)
        var = s2 / len(idx) - mean**2
        mean, var = mean.reshape(1, 1, n, n, n), var.reshape(1, 1, n, n, n)
    std = var.clamp_min(0).sqrt()
    std = torch.where(std > 1e-12 * mean.abs().clamp_min(1e-30), std, torch.ones_like(std))
    return mean.float(), std.float()


def load_checkpoint_model(path: str | os.PathLike) -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """Rebuild the model stored in a ``best.pt``/``last.pt``; returns (model, target_mean, target_std)."""
    ckpt = _load(Path(path))
    kw = ckpt["model_kwargs"]
    model = _make_model(kw["model"], kw["dropout"], kw["in_size"], kw["n_outputs"], kw.get("input_norm", "none"))
    model.load_state_dict(ckpt["model_state"])
    model.eval()
    return model, ckpt["target_mean"].numpy(), ckpt["target_std"].numpy()


@torch.no_grad()
def predict(model: nn.Module, X, target_mean, target_std, batch_size: int = 50,
            device: torch.device | str | None = None, amp: bool | None = False) -> np.ndarray:
    """Predictions in physical units, shape (N, n_targets), for features ``X`` (N, [1,] n, n, n)."""
    if device is None:
        device = next(model.parameters()).device
    device = device_select(device) if not isinstance(device, torch.device) else device
    feats = X if isinstance(X, _Features) else _Features(np.asarray(X), device, channels_last=False)
    return _predict_norm(model, feats, torch.arange(len(feats)), batch_size, device, amp) * np.asarray(target_std) + np.asarray(target_mean)


@torch.no_grad()
def _predict_norm(model, feats: _Features, idx: torch.Tensor, batch_size: int, device, amp) -> np.ndarray:
    use_amp, amp_dtype, _ = _precision(device, amp)
    was_training = model.training
    model.eval()
    out = []
    for b in range(0, len(idx), batch_size):
        xb = feats.batch(idx[b:b + batch_size])
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            out.append(model(xb).float().cpu())
    model.train(was_training)
    if not out:
        return np.zeros((0, 0))
    return torch.cat(out).numpy().astype(np.float64)


def train_run(X, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray | None,
              config: TrainConfig, run_dir: str | os.PathLike, run_seed: int, label: str = "run",
              progress: bool = True, on_epoch_end: Callable[[str, int, dict], None] | None = None) -> RunResult:
    """Train one model on ``train_idx`` (validating on ``val_idx`` if given), resuming from ``run_dir/last.pt``.

    ``X``: features (N, [1,] n, n, n) (an array, or the tensor holder :func:`fit` shares
    between runs). ``config`` must be resolved (:func:`resolve_config`). ``y`` is (N, n_targets) in
    physical units; the z-score uses the ``train_idx`` rows only. ``on_epoch_end(label,
    epoch, row)`` is called after each epoch's checkpoint is on disk (an exception
    raised there interrupts the run like a crash would).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device, use_amp, amp_dtype, use_scaler, channels_last, deterministic = _execution(config)
    feats = X if isinstance(X, _Features) else _Features(np.asarray(X), device, channels_last)

    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    mean = y[train_idx].mean(axis=0)
    std = y[train_idx].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    y_norm = torch.from_numpy(((y - mean) / std).astype(np.float32)).to(device)
    in_size = feats.t.shape[-1]
    model_kwargs = {"model": config.model, "dropout": config.dropout, "in_size": int(in_size), "n_outputs": int(y.shape[1])}
    input_norm = config.input_norm or "none"
    if input_norm != "none":  # absent for the paper's raw inputs, so older checkpoints still match
        model_kwargs["input_norm"] = input_norm
    warmup = float(config.warmup_epochs or 0.0)
    tr = torch.from_numpy(np.asarray(train_idx, dtype=np.int64))
    va = None if val_idx is None or len(val_idx) == 0 else torch.from_numpy(np.asarray(val_idx, dtype=np.int64))

    with _deterministic(deterministic):
        _seed_everything(run_seed)
        stats = _input_stats(feats, tr, input_norm) if input_norm != "none" else (None, None)
        model = _make_model(**model_kwargs, input_mean=stats[0], input_std=stats[1]).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=config.T_0, T_mult=config.T_mult, eta_min=config.eta_min)
        scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

        def set_warmup_lr(t: float) -> None:
            """Scale the scheduler's learning rate for the batch that starts at epoch ``t`` (linear warm-up)."""
            if warmup > 0 and t < warmup:
                for group in optimizer.param_groups:
                    group["lr"] *= min(1.0, (t + 1.0 / n_batches) / warmup)

        n_batches = math.ceil(len(tr) / config.batch_size)
        history: list[dict] = []
        start_epoch, best_val, best_epoch, elapsed = 0, math.inf, None, 0.0

        last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
        if last_path.exists():
            ckpt = _load(last_path)
            if ckpt["model_kwargs"] != model_kwargs or ckpt["run_seed"] != run_seed:
                raise LeanECDError(f"{last_path}: checkpoint is of a different run "
                                   f"({ckpt['model_kwargs']}, seed {ckpt['run_seed']}); use a new run directory")
            if not torch.equal(ckpt["train_idx"], tr):
                raise LeanECDError(f"{last_path}: checkpoint was trained on different samples; use a new run directory")
            model.load_state_dict(ckpt["model_state"])
            optimizer.load_state_dict(ckpt["optimizer_state"])
            scheduler.load_state_dict(ckpt["scheduler_state"])
            if use_scaler:
                scaler.load_state_dict(ckpt["scaler_state"])
            history = list(ckpt["history"])
            start_epoch, best_val, best_epoch = int(ckpt["epoch"]), float(ckpt["best_val_loss"]), ckpt["best_epoch"]
            elapsed = float(ckpt["elapsed_s"])
            _set_rng_state(ckpt["rng"])
            _write_history(run_dir / "history.csv", history)  # history.csv may lag last.pt after a crash
        else:
            set_warmup_lr(0.0)
        run_model = torch.compile(model) if config.compile else model
        n_train = len(tr)
        bar = _progress_bar(config.epochs, start_epoch, label, progress)
        try:
            for epoch in range(start_epoch, config.epochs):
                t0 = time.perf_counter()
                model.train()
                lr_epoch = optimizer.param_groups[0]["lr"]
                gen = torch.Generator().manual_seed(run_seed * 100_003 + epoch)
                perm = tr[torch.randperm(n_train, generator=gen)]
                total = torch.zeros((), device=device)
                for b in range(n_batches):
                    idx = perm[b * config.batch_size:(b + 1) * config.batch_size]
                    xb, yb = feats.batch(idx), y_norm[idx.to(device)]
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                        pred = run_model(xb)
                    loss = nn.functional.mse_loss(pred.float(), yb)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step(epoch + (b + 1) / n_batches)
                    set_warmup_lr(epoch + (b + 1) / n_batches)
                    total += loss.detach() * len(idx)
                train_loss = float(total) / n_train
                val_loss = None
                if va is not None:
                    p = _predict_norm(run_model, feats, va, config.batch_size, device, config.amp)
                    val_loss = float(np.mean((p - y_norm[va.to(device)].cpu().numpy()) ** 2))
                dt = time.perf_counter() - t0
                elapsed += dt
                row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "lr": lr_epoch, "time_s": dt}
                history.append(row)
                improved = val_loss is None or val_loss < best_val
                if improved:
                    best_val = best_val if val_loss is None else val_loss
                    best_epoch = epoch + 1
                state = {
                    "format": CHECKPOINT_FORMAT,
                    "model_kwargs": model_kwargs,
                    "model_state": model.state_dict(),
                    "targets": list(config.targets),
                    "target_mean": torch.from_numpy(mean),
                    "target_std": torch.from_numpy(std),
                    "epoch": epoch + 1,
                    "epochs": config.epochs,
                    "run_seed": run_seed,
                    "train_idx": tr,
                    "val_idx": va,
                    "best_val_loss": best_val,
                    "best_epoch": best_epoch,
                    "history": history,
                    "elapsed_s": elapsed,
                }
                if improved:  # without validation, best = last
                    _save(state, best_path)
                state.update({
                    "optimizer_state": optimizer.state_dict(),
                    "scheduler_state": scheduler.state_dict(),
                    "scaler_state": scaler.state_dict() if use_scaler else {},
                    "rng": _rng_state(),
                })
                _save(state, last_path)
                _write_history(run_dir / "history.csv", history)
                if bar is not None:
                    bar.update(1)
                    post = {"loss": f"{train_loss:.4f}", "lr": f"{lr_epoch:.2e}"}
                    if val_loss is not None:
                        post["val"] = f"{val_loss:.4f}"
                    bar.set_postfix(post)
                if on_epoch_end is not None:
                    on_epoch_end(label, epoch + 1, row)
        finally:
            if bar is not None:
                bar.close()
    return RunResult(model=model, history=history, target_mean=mean, target_std=std, run_dir=run_dir,
                     best_epoch=best_epoch, epochs_run=len(history), wall_time_s=elapsed)


def _progress_bar(total: int, initial: int, label: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=label, unit="epoch", dynamic_ncols=True)


# --------------------------------------------------------------------------- protocol


def _git_commit() -> tuple[str | None, bool | None]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(dirty.stdout.strip()) if dirty.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


def provenance(device: torch.device | None = None, dataset_version: str | None = None,
               dataset_name: str | None = None) -> dict:
    """Where a result came from: git commit, device, library versions, dataset name and version, time (UTC)."""
    device = device_select(None) if device is None else device
    commit, dirty = _git_commit()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "leanecd_version": __version__,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "device_name": device_name(device),
        "dataset_name": dataset_name,
        "dataset_version": dataset_version,
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


_RESUME_KEYS = ("model", "targets", "batch_size", "lr", "T_0", "T_mult", "eta_min", "dropout", "seed",
                "folds", "test_fraction", "max_samples", "cv_weights", "train_fraction", "input_norm", "warmup_epochs")
#: Values of resume keys added later, for a config.json written before they existed.
_RESUME_DEFAULTS = {"train_fraction": 1.0, "input_norm": "none", "warmup_epochs": 0.0}


#: Sample passes (epochs × training samples, all runs of a protocol) from which a full-mode
#: run on a CPU probes its path by default: a probe costs about a minute, which a
#: shorter run would not win back.
AUTO_CPU_PATH_MIN_WORK = 20_000


def _resolve_cpu_path(cfg: TrainConfig, device: torch.device, in_size: int, n_outputs: int, work: int):
    """On a CPU, set ``amp``/``channels_last``/``compile`` from ``cfg.cpu_path``; returns (config, record or None).

    ``"auto"`` probes the paths (:func:`leanecd.cpupath.choose`). It is the default in
    full mode for runs of at least :data:`AUTO_CPU_PATH_MIN_WORK` sample passes unless
    ``amp``, ``channels_last`` or ``compile`` is set explicitly; otherwise fp32 eager.
    """
    if device.type != "cpu":
        return cfg, None
    explicit = cfg.amp is not None or cfg.channels_last is not None or cfg.compile
    name = cfg.cpu_path
    if name is None and cfg.mode == "full" and not explicit and work >= AUTO_CPU_PATH_MIN_WORK:
        name = "auto"
    if name is None:
        path = cpupath.CpuPath("as configured", bool(cfg.amp), bool(cfg.channels_last), bool(cfg.compile))
        record = {"chosen": path.name, "probe": None}
    elif name == "auto":
        path, record = cpupath.choose(cfg.model, cfg.batch_size, in_size, n_outputs)
        base = record["probe"]["fp32"]["samples_per_s"]
        print(f"CPU path: {path.name} ({record['probe'][path.name]['samples_per_s']:.1f} samples/s, "
              f"{record['probe'][path.name]['samples_per_s'] / base:.2f}x fp32 eager"
              f"{', cached probe' if record['cached'] else ''}; CPU flags: {' '.join(record['flags']) or 'none'})")
    else:
        path = cpupath.get_path(name)
        record = {"chosen": path.name, "probe": None}
    record = {**record, "amp_bf16": path.amp, "channels_last": path.channels_last, "compile": path.compile,
              "cpu": cpupath.cpu_model(), "flags": cpupath.cpu_flags(), "threads": torch.get_num_threads()}
    cfg = dataclasses.replace(cfg, amp=path.amp, channels_last=path.channels_last, compile=path.compile)
    return cfg, record


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
        print(line)
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

    # quick mode (or an explicit max_samples): a seeded random subset, printed
    subset = np.arange(n)
    if cfg.max_samples is not None and cfg.max_samples < n:
        subset = np.sort(np.random.default_rng(cfg.seed + 104_729).choice(n, cfg.max_samples, replace=False))
        print(f"using {len(subset)} of {n} samples (max_samples={cfg.max_samples}, seeded random subset)")
    trainval, test = split_indices(len(subset), cfg.seed, cfg.test_fraction)
    n_trainval = len(trainval)
    trainval = train_subset(trainval, cfg.train_fraction, cfg.seed)
    if len(trainval) < n_trainval:
        print(f"training on {len(trainval)} of {n_trainval} train+CV samples (train_fraction={cfg.train_fraction}, "
              f"nested seeded subset); the {len(test)} test samples are the full run's")
    folds = kfold_indices(trainval, cfg.folds, cfg.seed) if cfg.folds else []

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = device_select(cfg.device)
    work = cfg.epochs * len(trainval) * (1 + len(folds))
    cfg, cpu_record = _resolve_cpu_path(cfg, device, int(X.shape[-1]), len(cfg.targets), work)
    from . import foldstack  # all runs at once (fold-parallel); here, as foldstack imports this module

    cfg = dataclasses.replace(cfg, stacked=foldstack.resolve_stacked(cfg.stacked, cfg.model, device))
    prov = provenance(device, dataset_version, dataset_name)
    if cpu_record is not None:
        prov["cpu_path"] = cpu_record
    config_path = run_dir / "config.json"
    cfg_dict = cfg.to_dict()
    if config_path.exists():
        old = {**_RESUME_DEFAULTS, **read_config(config_path)["config"]}
        new = {**cfg_dict, "targets": [registry.canonical_target(t, strict=False) for t in cfg.targets]}
        changed = [k for k in _RESUME_KEYS if old.get(k) != new.get(k)]
        if changed:
            raise LeanECDError(f"{config_path}: run directory holds a run with different settings "
                               f"({', '.join(f'{k}: {old.get(k)!r} -> {cfg_dict.get(k)!r}' for k in changed)}); "
                               "use a new run directory")
    write_splits(run_dir, splits_record(ids, subset, trainval, test, [v for _, v in folds]))
    write_config(run_dir, {"config": cfg_dict, "shortcuts": shortcuts, "provenance": prov,
                             "data": {"n_samples": int(n), "n_used": int(len(subset)), "input_shape": list(X.shape[1:]),
                                      "targets": list(cfg.targets)}})

    channels_last = (device.type == "cuda") if cfg.channels_last is None else bool(cfg.channels_last)
    feats = _Features(X[subset] if len(subset) < n else X, device, channels_last)
    if device.type == "cuda":
        print(f"features: {feats.t.numel() * 4 / 2**20:.0f} MiB on {feats.placement}")
    ys = y[subset]

    fold_runs, cv_rows, fold_mae, fold_nmae = [], [], [], []
    stacked = foldstack.train_protocol_runs(feats, ys, folds, trainval, cfg, run_dir, progress,
                                            on_epoch_end) if cfg.stacked else None
    for k, (tr, va) in enumerate(folds, start=1):
        res = stacked[k - 1] if stacked else train_run(feats, ys, tr, va, cfg, run_dir / f"fold-{k}",
                        run_seed=cfg.seed + k, label=f"fold {k}/{len(folds)}", progress=progress,
                        on_epoch_end=on_epoch_end)
        if cfg.cv_weights == "best":
            model, _, _ = load_checkpoint_model(run_dir / f"fold-{k}" / "best.pt")
            model.to(device)
        else:
            model = res.model
        p = _predict_norm(model, feats, torch.from_numpy(va), cfg.batch_size, device, cfg.amp) * res.target_std + res.target_mean
        fold_mae.append(mae(ys[va], p))
        fold_nmae.append(nmae(ys[va], p))
        cv_rows.append(("cv", k, va, p))
        fold_runs.append(res)

    final = stacked[-1] if stacked else train_run(feats, ys, trainval, None, cfg, run_dir / "final", run_seed=cfg.seed,
                      label="final (90 %)", progress=progress, on_epoch_end=on_epoch_end)
    pred_rows = list(cv_rows)
    metrics_sets, spread = {}, None
    for split_name, idx in (("train", trainval), ("test", test)):
        p = _predict_norm(final.model, feats, torch.from_numpy(idx), cfg.batch_size, device, cfg.amp) * final.target_std + final.target_mean
        pred_rows.append((split_name, None, idx, p))
        metrics_sets[split_name] = (mae(ys[idx], p), nmae(ys[idx], p)) if len(idx) else (None, None)
        if split_name == "test" and len(idx) > 1:
            spread = spread_ratio(ys[idx], p)

    used_ids = ids[subset]
    write_predictions(run_dir / "predictions.csv",
                      ((used_ids[i], split_name, fold, t, ys[i, j], pred[r, j])
                       for split_name, fold, idx, pred in pred_rows for r, i in enumerate(idx)
                       for j, t in enumerate(cfg.targets)))

    def per_target(values):
        return None if values is None else {t: float(v) for t, v in zip(cfg.targets, np.atleast_1d(values))}

    metrics = {
        "targets": list(cfg.targets),
        "model": cfg.model,
        "mode": cfg.mode,
        "protocol": _protocol_label(cfg, n),
        "final_only": not cfg.folds,
        "shortcuts": shortcuts,
        "cv_mae": per_target(np.mean(fold_mae, axis=0)) if fold_mae else None,
        "cv_mae_per_fold": {t: [float(np.atleast_1d(m)[j]) for m in fold_mae] for j, t in enumerate(cfg.targets)} if fold_mae else None,
        "cv_nmae": per_target(np.mean(fold_nmae, axis=0)) if fold_nmae else None,
        "cv_weights": cfg.cv_weights,
        "train_mae": per_target(metrics_sets["train"][0]),
        "test_mae": per_target(metrics_sets["test"][0]),
        "train_nmae": per_target(metrics_sets["train"][1]),
        "test_nmae": per_target(metrics_sets["test"][1]),
        "test_spread_ratio": per_target(spread),
        "collapsed": None if spread is None else {t: bool(c) for t, c in zip(cfg.targets, np.atleast_1d(spread < COLLAPSE_SD_RATIO))},
        "collapse_rule": f"test predictions' standard deviation < {COLLAPSE_SD_RATIO:g} x the test labels'",
        "train_fraction": cfg.train_fraction,
        "n_train": int(len(trainval)),
        "n_train_full": int(n_trainval),
        "n_test": int(len(test)),
        "folds": len(folds),
        "epochs": cfg.epochs,
        "epochs_run": {"final": final.epochs_run, **{f"fold-{k}": r.epochs_run for k, r in enumerate(fold_runs, 1)}},
        "training_time_s": {"final": final.wall_time_s, **{f"fold-{k}": r.wall_time_s for k, r in enumerate(fold_runs, 1)}},
        "wall_time_s_this_call": time.perf_counter() - t_start,
        "provenance": prov,
    }
    write_metrics(run_dir, metrics)
    return FitResult(metrics=metrics, run_dir=run_dir, final=final, folds=fold_runs)


def _protocol_label(cfg: TrainConfig, n_samples: int | None = None) -> str:
    """One line saying which protocol a run followed (``metrics["protocol"]``)."""
    if not cfg.folds:
        label = "final fit only: no cross-validation, cv_mae is null (not the paper's full protocol)"
    else:
        label = f"{cfg.folds}-fold cross-validation on the 90 % + final fit on the 90 %"
        if cfg.folds != FULL_PROTOCOL["folds"]:
            label += f" (the paper: {FULL_PROTOCOL['folds']} folds)"
    differ = [f"{k} {getattr(cfg, k)} (paper {'all samples' if v is None else v})"
              for k, v in FULL_PROTOCOL.items() if k != "folds" and getattr(cfg, k) != v
              and not (k == "max_samples" and n_samples is not None and cfg.max_samples >= n_samples)]
    if cfg.train_fraction < 1:
        label += f"; learning-curve point: trained on a nested {cfg.train_fraction:.4g} share of the 90 %"
    if cfg.mode == "quick":
        label += "; quick-mode demonstration, not a result"
    if cfg.input_norm not in (None, "none") or cfg.warmup_epochs:
        label += (f"; our choices where the paper is silent: inputs scaled {cfg.input_norm!r}, "
                  f"learning-rate warm-up {cfg.warmup_epochs:g} epochs")
    if differ:
        label += "; differs from the paper's protocol in " + ", ".join(differ)
    return label


# --------------------------------------------------------------------------- plots


def plot_learning_curves(history, title: str | None = None):
    """Training/validation loss (log scale, normalised MSE) and learning rate per epoch.

    ``history``: a list of epoch rows, a ``history.csv`` path or run directory, or a
    dict ``{label: history}`` to overlay several runs (e.g. the CV folds). Returns a
    matplotlib Figure.
    """
    import matplotlib.pyplot as plt

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
    from .data import load_dataset
    from .features import dataset_features

    ds = load_dataset(source, root)
    if labels == "reliable":
        n = len(ds)
        ds = ds.reliable()
        print(f"labels: {len(ds)} of {n} compounds flagged ok; {n - len(ds)} uncertain ones left out")
    missing = [t for t in targets if t not in ds.table.columns]
    if missing:
        raise LeanECDError(f"dataset {ds.name!r} has no target column(s) {missing}; "
                           f"label columns include {[c for c in ds.table.columns if c.endswith(('_GPa', '_eV'))]}")
    ids, X, feats = dataset_features(ds, store_dir=store_dir, progress=progress)  # warns about any failures
    ids = list(ids)
    y = ds.subset(ids).targets(list(targets))
    print(f"dataset {ds.name} {ds.version}: {len(ids)} compounds with features, targets {list(targets)}")
    return np.asarray(ids), np.asarray(X), y.reshape(len(ids), len(targets)), ds


def main(argv: Sequence[str] | None = None) -> int:
    """``leanecd-train``: train a Table 1 model with the paper's protocol (see ``--help``).

    Data come either from a dataset (``--dataset embedded``: the book's own dataset,
    featurised through the on-disk feature cache) or from a features ``.npy`` plus a
    labels CSV (``--features``/``--labels``)::

        python -m leanecd.train --model A --target bulk_modulus_GPa --dataset embedded --run-dir results/A-bulk
        python -m leanecd.train --model A --target bulk_modulus --features X.npy --labels labels.csv --run-dir r
    """
    ap = argparse.ArgumentParser(prog="leanecd-train", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="A", choices=registry.model_names("network"))
    ap.add_argument("--target", action="append", required=True,
                    help="target column (repeat for multi-output, e.g. Model C); with --dataset embedded: "
                         "bulk_modulus_GPa, energy_per_atom_eV")
    src = ap.add_argument_group("data: either --dataset, or --features and --labels")
    src.add_argument("--dataset", help="'embedded' (the book's dataset), 'jarvis' (with --data-root) or a dataset "
                                       "directory; featurised through the feature cache")
    src.add_argument("--data-root", type=Path, help="root directory for --dataset (optional for 'embedded')")
    src.add_argument("--feature-store", type=Path, help="feature cache directory for --dataset (default: the library's)")
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
    ap.add_argument("--mode", choices=["full", "quick"], help="default: LEANECD_MODE, else full on CUDA, quick otherwise")
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
            raise FileFormatError(args.features, f"{X.shape[0]} feature rows but {len(ids)} label rows in {args.labels}")
        dataset_name, dataset_version = (str(args.labels), args.dataset_version)
    config = TrainConfig(model=args.model, targets=tuple(args.target), epochs=args.epochs, folds=args.folds,
                         batch_size=args.batch_size, lr=args.lr, dropout=args.dropout, seed=args.seed,
                         max_samples=args.max_samples, device=args.device, mode=args.mode, compile=args.compile,
                         amp=False if args.no_amp else None, final_only=args.final_only,
                         train_fraction=args.train_fraction, cpu_path=args.cpu_path, input_norm=args.input_norm,
                         warmup_epochs=args.warmup_epochs, stacked=args.stacked)
    result = fit(X, y, config, args.run_dir, ids=ids, dataset_version=dataset_version, dataset_name=dataset_name,
                 progress=not args.no_progress)
    m = result.metrics
    print(f"protocol: {m['protocol']}")
    for t in m["targets"]:
        cv = "n/a" if m["cv_mae"] is None else f"{m['cv_mae'][t]:.4g}"
        print(f"{t}: CV-MAE {cv}  train-MAE {m['train_mae'][t]:.4g}  test-MAE {m['test_mae'][t]:.4g}  "
              f"test-NMAE {m['test_nmae'][t]:.2f} %")
    print(f"results in {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
