"""How a training run executes: device, precision, memory format, determinism, the CPU path.

:func:`device_select` picks the device (CUDA when present); :func:`resolve_execution` turns a
:class:`~leanecd.trainconfig.TrainConfig` into autocast (bf16, fp16 + GradScaler where
bf16 is unsupported), ``channels_last_3d`` and deterministic algorithms (on for a CPU);
:class:`Features` holds the feature tensor, on the GPU when it fits (pinned host memory
and non-blocking copies per batch otherwise); :func:`resolve_cpu_path` measures the
fastest CPU path (:mod:`leanecd.cpupath`) for long full-mode runs; :func:`provenance`
records where a result came from (commit, device, versions). Shared by the
sequential path (:mod:`leanecd.train`) and the stacked one (:mod:`leanecd.foldstack`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__, cpupath
from .errors import LeanECDError
from .log import logger
from .trainconfig import TrainConfig

__all__ = [
    "AUTO_CPU_PATH_MIN_WORK",
    "Features",
    "deterministic_algorithms",
    "device_name",
    "device_select",
    "input_stats",
    "precision",
    "predict_norm",
    "progress_bar",
    "provenance",
    "resolve_cpu_path",
    "resolve_execution",
]


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


class Features:
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
        self.placement = ("device" if device.type != "cpu" and self.on_device
                          else ("pinned host" if device.type == "cuda" else "host"))

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


def precision(device: torch.device, amp: bool | None) -> tuple[bool, torch.dtype | None, bool]:
    """(use autocast, autocast dtype, use GradScaler)."""
    use = (device.type == "cuda") if amp is None else bool(amp)
    if not use:
        return False, None, False
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, torch.bfloat16, False
        return True, torch.float16, True
    return True, torch.bfloat16, False


def resolve_execution(config: TrainConfig):
    """How a run executes: (device, autocast on, autocast dtype, GradScaler on, channels_last, deterministic).

    On CUDA it also sets cuDNN's algorithm search (on unless deterministic: the input
    shapes are fixed, so the fastest 3-D convolution algorithms are worth finding).
    """
    device = device_select(config.device)
    use_amp, amp_dtype, use_scaler = precision(device, config.amp)
    channels_last = (device.type == "cuda") if config.channels_last is None else bool(config.channels_last)
    deterministic = (device.type == "cpu") if config.deterministic is None else bool(config.deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
    return device, use_amp, amp_dtype, use_scaler, channels_last, deterministic


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool):
    """Within the block, torch's deterministic algorithms when ``enabled`` (warn-only); restored after it."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if enabled:
            torch.use_deterministic_algorithms(True, warn_only=True)
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def input_stats(feats: Features, idx: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
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


@torch.no_grad()
def predict_norm(model, feats: Features, idx: torch.Tensor, batch_size: int, device, amp) -> np.ndarray:
    """Predictions of ``model`` (z-scored targets, float64) for the rows ``idx`` of ``feats`` (in eval mode; the
    mode is restored after)."""
    use_amp, amp_dtype, _ = precision(device, amp)
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


def progress_bar(total: int, initial: int, label: str, enabled: bool):
    """A tqdm bar over ``total`` epochs from ``initial``, or ``None`` when not ``enabled``."""
    if not enabled:
        return None
    return tqdm(total=total, initial=initial, desc=label, unit="epoch", dynamic_ncols=True)


#: Sample passes (epochs × training samples, all runs of a protocol) from which a full-mode
#: run on a CPU probes its path by default: a probe costs about a minute, which a
#: shorter run would not win back.
AUTO_CPU_PATH_MIN_WORK = 20_000


def resolve_cpu_path(cfg: TrainConfig, device: torch.device, in_size: int, n_outputs: int, work: int):
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
        logger.info(f"CPU path: {path.name} ({record['probe'][path.name]['samples_per_s']:.1f} samples/s, "
              f"{record['probe'][path.name]['samples_per_s'] / base:.2f}x fp32 eager"
              f"{', cached probe' if record['cached'] else ''}; CPU flags: {' '.join(record['flags']) or 'none'})")
    else:
        path = cpupath.get_path(name)
        record = {"chosen": path.name, "probe": None}
    record = {**record, "amp_bf16": path.amp, "channels_last": path.channels_last, "compile": path.compile,
              "cpu": cpupath.cpu_model(), "flags": cpupath.cpu_flags(), "threads": torch.get_num_threads()}
    cfg = dataclasses.replace(cfg, amp=path.amp, channels_last=path.channels_last, compile=path.compile)
    return cfg, record


def _git_commit() -> tuple[str | None, bool | None]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=False)
        if commit.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False)
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
