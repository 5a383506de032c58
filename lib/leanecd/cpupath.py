"""Choosing how to train on a CPU: a short probe of the candidate paths on this machine.

A CPU path is a precision (fp32, or bf16 autocast), a memory format (contiguous, or
``channels_last_3d``) and whether the model is compiled (``torch.compile``). Which is
fastest depends on the CPU: with AMX or AVX-512 bf16 units bf16 autocast can be
several times faster than fp32; without them it is slower. So the trainer measures:
:func:`probe` times a few training steps (forward, MSE backward, Adam step) of the
actual model and batch on each candidate, and :func:`choose` keeps the fastest,
falling back to fp32 eager unless another path beats it by :data:`MIN_GAIN`. The
choice, the figures and the CPU's flags go into the run's provenance.

A probe costs about a minute (compilation included); :func:`choose` caches its
result per (CPU, flags, torch version, threads, model, input size, batch) in
``$LEANECD_CACHE/cpu-path`` (default ``~/.cache/leanecd/cpu-path``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .download import default_cache_dir
from .errors import LeanECDError
from .models import build_model
from .store import write_json

__all__ = ["CpuPath", "CPU_PATHS", "MIN_GAIN", "cpu_flags", "cpu_model", "probe", "choose", "get_path",
           "step_function"]


@dataclass(frozen=True)
class CpuPath:
    """One way to run a training step on a CPU."""

    name: str
    amp: bool  # bf16 autocast
    channels_last: bool  # channels_last_3d memory format
    compile: bool  # torch.compile


#: The candidates, fp32 eager (the reference) first.
CPU_PATHS = {p.name: p for p in (
    CpuPath("fp32", False, False, False),
    CpuPath("fp32+cl", False, True, False),
    CpuPath("bf16", True, False, False),
    CpuPath("bf16+cl", True, True, False),
    CpuPath("bf16+cl+compile", True, True, True),
)}

#: A path replaces fp32 eager only if it is at least this much faster (bf16 is less exact).
MIN_GAIN = 1.10

_FLAGS = ("amx_bf16", "amx_tile", "amx_int8", "avx512_bf16", "avx512f", "avx512_vnni", "avx2", "fma", "neon", "asimd")


def get_path(name: str) -> CpuPath:
    """The :class:`CpuPath` called ``name`` (one of :data:`CPU_PATHS`)."""
    try:
        return CPU_PATHS[name]
    except KeyError:
        raise LeanECDError(f"unknown CPU path {name!r}; choose 'auto' or one of {', '.join(CPU_PATHS)}") from None


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_flags() -> list[str]:
    """The CPU features that decide the fastest path (AMX, AVX-512 bf16, AVX2, ...), as the OS reports them."""
    words = set()
    for line in _cpuinfo().splitlines():
        if line.lower().startswith(("flags", "features")):
            words.update(line.split(":", 1)[1].split())
    return [f for f in _FLAGS if f in words]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :mod:`platform` knows."""
    for line in _cpuinfo().splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def step_function(model_name: str, path: CpuPath, batch: int, in_size: int, n_outputs: int | None):
    """A closure running one training step (forward, MSE backward, Adam) of ``model_name`` on random
    inputs along ``path``; it returns the step's wall time in seconds."""
    torch.manual_seed(0)
    model = build_model(model_name, in_size=in_size, n_outputs=n_outputs)
    x = torch.rand(batch, 1, in_size, in_size, in_size)
    y = torch.rand(batch, model.n_outputs)
    if path.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    run = torch.compile(model) if path.compile else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if path.amp else contextlib.nullcontext():
            out = run(x)
        loss = nn.functional.mse_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    return step


def probe(model_name: str = "A", batch: int = 50, in_size: int = 51, n_outputs: int | None = None,
          steps: int = 3, candidates=None) -> dict[str, dict]:
    """Training-step speed of each candidate path on this CPU.

    Each path warms up (two steps, compilation included), then ``steps`` steps are
    timed, interleaved across paths so a busy spell hits them alike. Returns
    ``{name: {"samples_per_s": best, "warmup_s": ...}}``.
    """
    names = list(CPU_PATHS) if candidates is None else [get_path(c).name for c in candidates]
    fns, warm = {}, {}
    for name in names:
        t0 = time.perf_counter()
        fn = step_function(model_name, CPU_PATHS[name], batch, in_size, n_outputs)
        fn()
        fn()
        fns[name], warm[name] = fn, time.perf_counter() - t0
    times = {name: [] for name in names}
    for _ in range(steps):
        for name, fn in fns.items():
            times[name].append(fn())
    return {name: {"samples_per_s": batch / min(times[name]), "warmup_s": warm[name]} for name in names}




def choose(model_name: str = "A", batch: int = 50, in_size: int = 51, n_outputs: int | None = None,
           cache: bool = True, steps: int = 3) -> tuple[CpuPath, dict]:
    """The fastest path for this model and batch on this CPU, and the record of how it was chosen.

    The record (for a run's provenance) holds the probe's samples/s per path, the
    chosen path and its speed-up over fp32 eager, the CPU model and flags, the torch
    version and threads, and whether it came from the cache.
    """
    key = {"cpu": cpu_model(), "flags": cpu_flags(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "model": model_name, "batch": int(batch), "in_size": int(in_size), "n_outputs": n_outputs}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = default_cache_dir("cpu-path") / f"{digest}.json"
    if cache and path.is_file():
        try:
            record = json.loads(path.read_text())
            return get_path(record["chosen"]), {**record, "cached": True}
        except (OSError, ValueError, KeyError, LeanECDError):
            pass  # a damaged cache entry is measured again
    figures = probe(model_name, batch, in_size, n_outputs, steps=steps)
    base = figures["fp32"]["samples_per_s"]
    best = max(figures, key=lambda n: figures[n]["samples_per_s"])
    chosen = best if figures[best]["samples_per_s"] >= MIN_GAIN * base else "fp32"
    record = {**key, "probe": figures, "chosen": chosen,
              "speedup_vs_fp32": figures[chosen]["samples_per_s"] / base, "min_gain": MIN_GAIN,
              "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, record)
        except OSError:
            pass  # a read-only home: measure again next time
    return get_path(chosen), {**record, "cached": False}
