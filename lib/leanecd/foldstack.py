"""Fold-parallel training: the K runs of one protocol (CV folds + final fit) as one stacked model.

A lean model (Model A: 80,825 parameters) keeps a large GPU mostly idle: one training
step of batch 50 is a handful of small kernels. The protocol trains the same network
K = folds + 1 times on different subsets, so :func:`train_stacked` trains all K runs at
once: every convolution of the K networks becomes one grouped convolution (K × the
channels, ``groups=K``; run k's sample is input channel k), every PReLU one PReLU with
the K weight vectors concatenated, and the loss is the sum of the K runs' losses, whose
gradient with respect to run k's weights is run k's own gradient. Nothing else is
shared. Each run keeps

* its own network (the same :func:`~leanecd.checkpoint.make_model` module a sequential run
  builds, initialised under the same seed), whose parameters are the leaves that the
  stacked weights are concatenated from at every step;
* its own training subset, target z-score (its training rows), input standardisation
  (``input_norm``, its training rows), data order (the permutation
  :func:`epoch_permutation`, the one :func:`~leanecd.train.train_run` draws), dropout
  random stream;
* its own Adam optimiser, cosine-warm-restart scheduler (stepped at *its* fractional
  epoch ``epoch + (b + 1) / n_batches``), warm-up and GradScaler: the very objects a
  sequential run has (built and resumed by the same :mod:`leanecd.runstate`), so a run's
  sequence of updates is the sequential one.

Runs with fewer training samples have fewer batches per epoch. Step ``b`` of an epoch
trains the runs that have a batch ``b``; a run whose batches are exhausted is left out
of the step (no forward, no gradient, no optimiser or scheduler step: a masked step). A
run whose last batch is smaller than the others' is padded to the common batch with rows
whose loss weight is zero. So run k sees exactly the batches, learning rates and
optimiser steps of :func:`~leanecd.train.train_run`.

Equivalence (``tests/test_foldstack.py``). ``engine="grouped"`` (the default) with the
features and weights in float64 reproduces :func:`~leanecd.train.train_run` bit for bit
on a CPU (a float64 grouped convolution is computed group by group there), which checks
the bookkeeping above exactly. In float32 a grouped convolution sums in another order
than K separate ones; the gradients agree to ~1e-6 of each tensor's scale, but Adam
moves a weight by about lr · g / (|g| + eps) however small g is, so gradient elements
near zero carry that rounding into the weights, and after 3 epochs of the tests' small
runs the weights differ by up to ~1e-3 (relative Frobenius norm per tensor), not bit for
bit. ``engine="loop"`` runs each run's own module on its own batch (the sequential
arithmetic, runs interleaved): bit for bit the sequential path in any precision, a
reference when the two disagree.

Output. Every run writes what :func:`~leanecd.train.train_run` writes, in its own
directory: ``best.pt``/``last.pt`` (format ``leanecd-checkpoint-1``, the same keys;
``rng`` holds the run's own random state) and ``history.csv``. All runs checkpoint at
the end of every epoch; ``on_epoch_end`` is called for each run once all runs'
checkpoints of that epoch are on disk. Resuming starts each run from its ``last.pt``,
whichever path wrote it; runs at different epochs resume together (a run joins the
stacked steps at its own epoch). ``time_s`` in ``history.csv`` is the run's share of the
stacked epoch's wall time (the wall time divided by the runs trained in that epoch),
so the runs' times add up to the wall time.

GPU path: the features stay on the device (:class:`~leanecd.execution.Features`), the
batches of a whole epoch are planned on the host and copied once per epoch, losses are
summed on the device and read (``.item()``/``.cpu()``) once per epoch, bf16 autocast
(fp16 + GradScaler without bf16), ``channels_last_3d``; nothing inside an epoch waits
for the GPU except the GradScaler's overflow check in fp16 mode (as in the sequential
path).

Only the lean models (A, B, C: :data:`~leanecd.models.LEAN_SPECS`) can be stacked;
:func:`~leanecd.train.fit` trains the heavy baselines one run after another. On a CPU,
stacking gains nothing (a CPU has no idle units to fill; measured 0.8x the sequential
samples/s on the project's 2-core CPU, ``benchmarks/bench_training.py --stacked-cpu``),
so it is off there unless asked for. With ``compile=True`` the stacked forward is
compiled; the per-run dropout masks (drawn from each run's generator) stay outside the
compiled graph.

(About 600 lines: the stacked forward, the per-run state, the epoch plan and the two
engines are one mechanism whose equivalence with the sequential path is tested as a
whole; a run is built and resumed by :mod:`leanecd.runstate` and checkpointed by
:mod:`leanecd.checkpoint`, both shared with that path.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .checkpoint import RunResult, make_model, rng_state, write_checkpoints
from .errors import LeanECDError
from .execution import (
    Features,
    deterministic_algorithms,
    precision,
    predict_norm,
    progress_bar,
    resolve_execution,
)
from .log import logger
from .models import LEAN_SPECS, Standardized
from .runstate import RunState, build_run, resume_run
from .trainconfig import TrainConfig

__all__ = [
    "ENGINES",
    "StackedRun",
    "epoch_permutation",
    "grouped_forward",
    "resolve_stacked",
    "step_function",
    "supports",
    "train_protocol_runs",
    "train_stacked",
]

#: ``"grouped"``: one grouped convolution per layer for all runs (fast); ``"loop"``: each run's own
#: module on its own batch (the sequential arithmetic; a reference for tests).
ENGINES = ("grouped", "loop")

#: The engine :func:`train_stacked` uses when none is given (tests may switch it to ``"loop"``).
DEFAULT_ENGINE = "grouped"


@dataclass
class StackedRun:
    """One run of a stacked set: its training rows, validation rows (or None), directory, seed and label."""

    train_idx: np.ndarray
    val_idx: np.ndarray | None
    run_dir: Path
    run_seed: int
    label: str = "run"


def supports(model: str) -> bool:
    """Whether ``model`` (a :func:`~leanecd.models.build_model` name) can be trained stacked: the lean ones."""
    return str(model).upper() in LEAN_SPECS


def epoch_permutation(train_idx: torch.Tensor, run_seed: int, epoch: int) -> torch.Tensor:
    """The order of a run's training rows in ``epoch`` (0-based): the permutation
    :func:`~leanecd.train.train_run` draws."""
    gen = torch.Generator().manual_seed(run_seed * 100_003 + epoch)
    return train_idx[torch.randperm(len(train_idx), generator=gen)]


# --------------------------------------------------------------------------- the stacked forward


def _lean_parts(model: nn.Module):
    """(Standardized wrapper or None, convolutions, PReLUs, dropout probability) of a lean model."""
    norm = model if isinstance(model, Standardized) else None
    net = model.net if norm is not None else model
    features = getattr(net, "features", None)
    if features is None:
        raise LeanECDError(f"{type(net).__name__} is not a lean CNN; only Models A, B, C can be trained stacked")
    convs = [m for m in features if isinstance(m, nn.Conv3d)]
    prelus = [m for m in features if isinstance(m, nn.PReLU)]
    drops = [m.p for m in features if isinstance(m, nn.Dropout3d)]
    if len(prelus) != len(convs) - 1 or any(c.groups != 1 for c in convs):
        raise LeanECDError("unexpected layer structure for a lean CNN")
    return norm, convs, prelus, (drops[0] if drops else 0.0)


def _feature_noise(shape, dtype, device, p: float, gen: torch.Generator) -> torch.Tensor:
    """Channel-dropout noise as ``nn.Dropout3d`` draws it (``bernoulli_(1 - p)``, then ``/ (1 - p)``), from ``gen``."""
    noise = torch.empty(shape, dtype=dtype, device=device)
    noise.bernoulli_(1 - p, generator=gen)
    return noise.div_(1 - p)


def grouped_forward(models: Sequence[nn.Module], x: torch.Tensor, sizes: Sequence[int] | None = None,
                    gens: Sequence[torch.Generator] | None = None, training: bool = False,
                    channels_last: bool = False) -> torch.Tensor:
    """Outputs ``(B, K, n_outputs)`` of K lean models, model k applied to ``x[:, k]``, with one grouped
    convolution per layer.

    ``x``: ``(B, K, n, n, n)``. Each model is a :class:`~leanecd.models.LeanCNN`, or one
    wrapped in :class:`~leanecd.models.Standardized` (then all are, with the same kind).
    With ``training=True`` and dropout in the models, model k's channel-dropout masks are
    drawn from ``gens[k]`` for its first ``sizes[k]`` rows (rows beyond are padding),
    exactly as ``nn.Dropout3d`` would draw them from the global generator.
    """
    parts = [_lean_parts(m) for m in models]
    k_runs, b = len(models), x.shape[0]
    if x.shape[1] != k_runs:
        raise LeanECDError(f"x has {x.shape[1]} channels for {k_runs} models")
    if parts[0][0] is not None:
        norms = [p[0] for p in parts]
        if norms[0].kind == "global":
            mean = torch.stack([n.mean for n in norms]).view(1, k_runs, 1, 1, 1)
            std = torch.stack([n.std for n in norms]).view(1, k_runs, 1, 1, 1)
        else:
            mean = torch.cat([n.mean for n in norms], dim=1)
            std = torch.cat([n.std for n in norms], dim=1)
        x = (x - mean) / std
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    n_layers = len(parts[0][1])
    p_drop = parts[0][3]
    h = x
    for i in range(n_layers):
        conv = parts[0][1][i]
        weight = torch.cat([p[1][i].weight for p in parts])
        if channels_last:
            weight = weight.contiguous(memory_format=torch.channels_last_3d)
        bias = torch.cat([p[1][i].bias for p in parts]) if conv.bias is not None else None
        h = F.conv3d(h, weight, bias, conv.stride, conv.padding, conv.dilation, groups=k_runs)
        if i < n_layers - 1:
            h = F.prelu(h, torch.cat([p[2][i].weight for p in parts]))
            if training and p_drop > 0:
                c = h.shape[1] // k_runs
                if sizes is None or gens is None:
                    raise LeanECDError("dropout in training needs the runs' batch sizes and generators")
                noise = torch.ones((b, h.shape[1], 1, 1, 1), dtype=h.dtype, device=h.device)
                for k in range(k_runs):
                    if sizes[k] > 0:
                        noise[:sizes[k], k * c:(k + 1) * c] = _feature_noise(
                            (sizes[k], c, 1, 1, 1), h.dtype, h.device, p_drop, gens[k])
                h = h * noise
    out = F.adaptive_avg_pool3d(h, 1).flatten(1)
    return out.view(b, k_runs, -1)


# --------------------------------------------------------------------------- one run's state


@dataclass(eq=False)
class _Run(RunState):
    """One run of a stacked set: the :class:`~leanecd.runstate.RunState` a sequential run has (:func:`_make_run`
    builds and resumes it as :func:`~leanecd.train.train_run` does), its place among the runs and its own random
    stream."""

    pos: int = 0  # place among the stacked runs
    spec: StackedRun | None = None
    label: str = "run"
    rng: dict = field(default_factory=dict)  # the global random state a sequential run would train from
    gen: torch.Generator | None = None  # the run's own random stream (dropout masks), on the device

    @property
    def n_train(self) -> int:
        return len(self.tr)

    def rng_state(self) -> dict:
        """The checkpoint's ``rng`` entry: the run's random state where a sequential run keeps it."""
        state = dict(self.rng)
        if self.device.type == "cuda":
            states = list(state.get("cuda") or torch.cuda.get_rng_state_all())
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            states[index] = self.gen.get_state()
            state["cuda"] = states
        else:
            state["torch"] = self.gen.get_state()
        return state

    def swap_rng_in(self) -> None:
        """Make the run's stream the global one (the loop engine's modules draw from it)."""
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(self.gen.get_state(), self.device)
        else:
            torch.set_rng_state(self.gen.get_state())

    def swap_rng_out(self) -> None:
        if self.device.type == "cuda":
            self.gen.set_state(torch.cuda.get_rng_state(self.device))
        else:
            self.gen.set_state(torch.get_rng_state())


def _make_run(pos: int, spec: StackedRun, feats: Features, y: np.ndarray, config: TrainConfig,
              device: torch.device, channels_last: bool, use_scaler: bool) -> _Run:
    """Run ``spec``, built and resumed as :func:`~leanecd.train.train_run` does it (:mod:`leanecd.runstate`), with
    the run's random stream: the global state after initialisation (or the checkpoint's), on the device."""
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = build_run(config, feats, y, spec.train_idx, spec.val_idx, run_dir, spec.run_seed, device, channels_last,
                    use_scaler, cls=_Run)
    run.pos, run.spec, run.label = pos, spec, spec.label
    rng = rng_state()  # the global state a sequential run trains from (after initialisation)
    ckpt = resume_run(run)
    if ckpt is not None:
        rng = ckpt["rng"]
    run.rng = rng
    if device.type == "cuda":
        run.gen = torch.Generator(device=device)
        cuda_states = rng.get("cuda")
        index = device.index if device.index is not None else torch.cuda.current_device()
        if cuda_states is not None and index < len(cuda_states):
            run.gen.set_state(cuda_states[index])
        else:
            run.gen.manual_seed(spec.run_seed)
    else:
        run.gen = torch.Generator()
        run.gen.set_state(rng["torch"])
    return run


# --------------------------------------------------------------------------- epoch plan


class _Plan:
    """The batches of one epoch for the grouped engine, made on the host and copied to the device once.

    Step ``s`` trains ``members[s]`` (positions in the active list) with ``sizes[s]``
    real rows each, padded to ``width[s]`` rows; the device tensors are flat, and
    :meth:`step` slices them (no copy from the host, so no synchronisation).
    """

    def __init__(self, runs: Sequence[_Run], perms: Sequence[torch.Tensor], batch_size: int, n_out: int,
                 device: torch.device, host_idx: bool):
        n_steps = max(r.n_batches for r in runs)
        idx_parts, mask_parts, col_parts, m_parts = [], [], [], []
        self.steps = []
        o_idx = o_col = 0
        for s in range(n_steps):
            members = [j for j, r in enumerate(runs) if s < r.n_batches]
            sizes = [min(batch_size, runs[j].n_train - s * batch_size) for j in members]
            width = max(sizes)
            idx = torch.empty((width, len(members)), dtype=torch.int64)
            mask = torch.zeros((width, len(members), 1), dtype=torch.float32)
            for c, (j, m) in enumerate(zip(members, sizes)):
                rows = perms[j][s * batch_size:s * batch_size + m]
                idx[:m, c] = rows
                idx[m:, c] = rows[0]  # padding: a real row of the run, with zero loss weight
                mask[:m, c] = 1.0
            idx_parts.append(idx.reshape(-1))
            mask_parts.append(mask.reshape(-1))
            col_parts.append(torch.tensor([runs[j].pos for j in members], dtype=torch.int64))
            m_parts.append(torch.tensor(sizes, dtype=torch.float32))
            self.steps.append((members, sizes, width, o_idx, o_col))
            o_idx += width * len(members)
            o_col += len(members)
        self.idx_host = torch.cat(idx_parts) if host_idx else None
        self.idx = torch.cat(idx_parts).to(device)
        self.mask = torch.cat(mask_parts).to(device)
        self.cols = torch.cat(col_parts).to(device)
        m = torch.cat(m_parts)
        self.m = m.to(device)
        self.denom = (m * n_out).to(device)

    def step(self, s: int):
        members, sizes, width, o_idx, o_col = self.steps[s]
        k = len(members)
        sl_idx, sl_col = slice(o_idx, o_idx + width * k), slice(o_col, o_col + k)
        idx = self.idx[sl_idx].view(width, k)
        host = None if self.idx_host is None else self.idx_host[sl_idx].view(width, k)
        return (members, sizes, idx, host, self.mask[sl_idx].view(width, k, 1), self.cols[sl_col],
                self.m[sl_col], self.denom[sl_col])


def _gather(feats: Features, idx: torch.Tensor, host_idx: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """Inputs ``(B, K, n, n, n)`` of the rows ``idx`` ``(B, K)`` (run k's rows in column k)."""
    if feats.on_device:
        xb = feats.t[idx]
    else:  # pinned host memory: gather on the host, copy without waiting
        xb = feats.t[host_idx if host_idx is not None else idx.cpu()]
        if device.type == "cuda":
            xb = xb.pin_memory().to(device, non_blocking=True)
    return xb.view(*idx.shape, *feats.t.shape[-3:])


@torch.no_grad()
def _grouped_predict(runs: Sequence[_Run], rows: Sequence[torch.Tensor], feats: Features, batch_size: int,
                     device: torch.device, use_amp: bool, amp_dtype, channels_last: bool, forward) -> list[np.ndarray]:
    """Normalised predictions of each run on its rows (float64, one array per run), stacked."""
    n_max = max(len(r) for r in rows)
    out = []
    for b in range(0, n_max, batch_size):
        members = [j for j, r in enumerate(rows) if b < len(r)]
        sizes = [min(batch_size, len(rows[j]) - b) for j in members]
        width = max(sizes)
        idx = torch.empty((width, len(members)), dtype=torch.int64)
        for c, (j, m) in enumerate(zip(members, sizes)):
            idx[:m, c] = rows[j][b:b + m]
            idx[m:, c] = rows[j][b]
        xb = _gather(feats, idx.to(device) if feats.on_device else idx, idx, device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            pred = forward([runs[j].model for j in members], xb, training=False, channels_last=channels_last)
        out.append((members, sizes, pred.float()))
    host = [(members, sizes, pred.cpu()) for members, sizes, pred in out]  # one wait, at the end
    per_run: list[list[torch.Tensor]] = [[] for _ in rows]
    for members, sizes, pred in host:
        for c, (j, m) in enumerate(zip(members, sizes)):
            per_run[j].append(pred[:m, c])
    return [torch.cat(p).numpy().astype(np.float64) for p in per_run]


# --------------------------------------------------------------------------- training


def resolve_stacked(stacked: bool | None, model: str, device: torch.device) -> bool:
    """Whether :func:`~leanecd.train.fit` trains stacked: ``stacked``, or by default on CUDA only; never for a
    model that cannot be stacked (said in a logged line when it was asked for)."""
    use = (device.type == "cuda") if stacked is None else bool(stacked)
    if use and not supports(model):
        if stacked:
            logger.info(f"stacked training: model {model!r} is not a lean CNN; its runs train one after another")
        return False
    return use


def train_protocol_runs(feats, y: np.ndarray, folds, trainval: np.ndarray, config: TrainConfig, run_dir: Path,
                        progress: bool = True, on_epoch_end=None) -> list[RunResult]:
    """The runs of :func:`~leanecd.train.fit` (``fold-1`` … ``fold-K``, then ``final``) trained together; the same
    directories, seeds and labels as the sequential path."""
    runs = [StackedRun(tr, va, run_dir / f"fold-{k}", config.seed + k, f"fold {k}/{len(folds)}")
            for k, (tr, va) in enumerate(folds, start=1)]
    runs.append(StackedRun(trainval, None, run_dir / "final", config.seed, "final (90 %)"))
    return train_stacked(feats, y, runs, config, progress=progress, on_epoch_end=on_epoch_end)


def train_stacked(X, y: np.ndarray, runs: Sequence[StackedRun], config: TrainConfig, progress: bool = True,
                  on_epoch_end: Callable[[str, int, dict], None] | None = None,
                  engine: str | None = None) -> list[RunResult]:
    """Train the ``runs`` of one model together; returns one :class:`~leanecd.checkpoint.RunResult` per run, in order.

    Arguments as :func:`~leanecd.train.train_run` (``config`` resolved), one
    :class:`StackedRun` per run. ``engine``: :data:`ENGINES` (default
    :data:`DEFAULT_ENGINE`). Each run resumes from its ``last.pt`` if there is one.
    """
    engine = DEFAULT_ENGINE if engine is None else engine
    if engine not in ENGINES:
        raise LeanECDError(f"engine must be one of {ENGINES}, not {engine!r}")
    if engine == "grouped" and not supports(config.model):
        raise LeanECDError(f"model {config.model!r} cannot be trained stacked "
                           f"(only the lean models {tuple(LEAN_SPECS)})")
    if not runs:
        return []
    device, use_amp, amp_dtype, use_scaler, channels_last, deterministic = resolve_execution(config)
    feats = X if isinstance(X, Features) else Features(np.asarray(X), device, channels_last)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    n_out = y.shape[1]
    bs = config.batch_size

    with deterministic_algorithms(deterministic):
        state = [_make_run(i, spec, feats, y, config, device, channels_last, use_scaler) for i, spec in enumerate(runs)]
        y_all = torch.stack([r.y_norm for r in state])  # (K, N, n_out): each run's own z-score
        forward = torch.compile(grouped_forward) if (config.compile and engine == "grouped") else grouped_forward
        run_models = [torch.compile(r.model) if (config.compile and engine == "loop") else r.model for r in state]
        first = min(r.start_epoch for r in state)
        bar = progress_bar(config.epochs, min(first, config.epochs), f"{len(state)} runs stacked", progress)
        try:
            for epoch in range(first, config.epochs):
                active = [r for r in state if r.start_epoch <= epoch]
                t0 = time.perf_counter()
                lr_epoch = {}
                for r in active:
                    r.model.train()
                    lr_epoch[r.pos] = r.optimizer.param_groups[0]["lr"]
                perms = [epoch_permutation(r.tr, r.spec.run_seed, epoch) for r in active]
                total = torch.zeros(len(state), device=device)
                if engine == "loop":
                    _loop_epoch(active, perms, run_models, feats, epoch, bs, device, use_amp, amp_dtype, total)
                else:
                    _grouped_epoch(active, perms, feats, y_all, epoch, bs, n_out, device, use_amp, amp_dtype,
                                   channels_last, total, forward)
                totals = total.cpu().tolist()  # the epoch's one wait for the device
                with_val = [r for r in active if r.va is not None]
                if engine == "loop":
                    preds = [predict_norm(m, feats, r.va, bs, device, config.amp)
                             for r, m in ((r, run_models[r.pos]) for r in with_val)]
                elif with_val:
                    preds = _grouped_predict(with_val, [r.va for r in with_val], feats, bs, device, use_amp,
                                             amp_dtype, channels_last, forward)
                val_loss = {r.pos: float(np.mean((p - r.y_norm[r.va.to(device)].cpu().numpy()) ** 2))
                            for r, p in zip(with_val, preds)} if with_val else {}
                share = (time.perf_counter() - t0) / len(active)
                rows = []
                for r in active:
                    r.elapsed += share
                    row = {"epoch": epoch + 1, "train_loss": totals[r.pos] / r.n_train,
                           "val_loss": val_loss.get(r.pos), "lr": lr_epoch[r.pos], "time_s": share}
                    r.history.append(row)
                    _checkpoint(r, row, config)
                    rows.append((r, row))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({"loss": f"{np.mean([row['train_loss'] for _, row in rows]):.4f}"})
                if on_epoch_end is not None:
                    for r, row in rows:
                        on_epoch_end(r.label, epoch + 1, row)
        finally:
            if bar is not None:
                bar.close()
    return [RunResult(model=r.model, history=r.history, target_mean=r.mean, target_std=r.std, run_dir=r.run_dir,
                      best_epoch=r.best_epoch, epochs_run=len(r.history), wall_time_s=r.elapsed) for r in state]


def _loop_epoch(active, perms, run_models, feats, epoch, bs, device, use_amp, amp_dtype, total) -> None:
    """One epoch, each run's step on its own module and batch (the sequential arithmetic), runs interleaved."""
    for s in range(max(r.n_batches for r in active)):
        for r, perm in zip(active, perms):
            if s >= r.n_batches:
                continue  # this run's batches are exhausted: no step
            idx = perm[s * bs:(s + 1) * bs]
            xb, yb = feats.batch(idx), r.y_norm[idx.to(device)]
            if r.model_kwargs["dropout"] > 0:
                r.swap_rng_in()
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                pred = run_models[r.pos](xb)
            if r.model_kwargs["dropout"] > 0:
                r.swap_rng_out()
            loss = nn.functional.mse_loss(pred.float(), yb)
            r.optimizer.zero_grad(set_to_none=True)
            r.scaler.scale(loss).backward()
            r.after_step(epoch, s)
            total[r.pos] += loss.detach() * len(idx)


def _grouped_epoch(active, perms, feats, y_all, epoch, bs, n_out, device, use_amp, amp_dtype, channels_last,
                   total, forward) -> None:
    """One epoch of all active runs as one stacked model (grouped convolutions, masked steps)."""
    plan = _Plan(active, perms, bs, n_out, device, host_idx=not feats.on_device)
    for s in range(len(plan.steps)):
        members, sizes, idx, host_idx, mask, cols, m, denom = plan.step(s)
        runs = [active[j] for j in members]
        xb = _gather(feats, idx, host_idx, device)
        yb = y_all[cols.view(1, -1), idx]  # (B, K, n_out), run k's z-scored targets
        for r in runs:
            r.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            pred = forward([r.model for r in runs], xb, sizes=sizes, gens=[r.gen for r in runs], training=True,
                           channels_last=channels_last)
        per_run = ((pred.float() - yb) ** 2 * mask).sum(dim=(0, 2)) / denom  # each run's MSE on its own rows
        if runs[0].use_scaler:
            loss = sum(r.scaler.scale(per_run[c]) for c, r in enumerate(runs))
        else:
            loss = per_run.sum()
        loss.backward()  # d(sum of losses)/d(run k's weights) = d(run k's loss)/d(run k's weights)
        for r in runs:
            r.after_step(epoch, s)
        total.index_put_((cols,), (per_run.detach() * m).to(total.dtype), accumulate=True)


def _checkpoint(r: _Run, row: dict, config: TrainConfig) -> None:
    """``best.pt`` (when improved), ``last.pt`` and ``history.csv`` of one run, as ``train_run`` writes them."""
    val_loss = row["val_loss"]
    improved = val_loss is None or val_loss < r.best_val
    if improved:
        r.best_val = r.best_val if val_loss is None else val_loss
        r.best_epoch = row["epoch"]
    write_checkpoints(r.run_dir, improved=improved, model_kwargs=r.model_kwargs, model=r.model,
                      targets=config.targets, target_mean=r.mean, target_std=r.std, epoch=row["epoch"],
                      epochs=config.epochs, run_seed=r.spec.run_seed, train_idx=r.tr, val_idx=r.va,
                      best_val_loss=r.best_val, best_epoch=r.best_epoch, history=r.history, elapsed_s=r.elapsed,
                      optimizer=r.optimizer, scheduler=r.scheduler, scaler=r.scaler, use_scaler=r.use_scaler,
                      rng=r.rng_state())


# --------------------------------------------------------------------------- benchmark helper


def step_function(model_name: str = "A", runs: int = 10, batch: int = 50, in_size: int = 51,
                  device: str | torch.device = "cpu", amp: bool | None = None, channels_last: bool | None = None,
                  stacked: bool = True):
    """A closure running one training step of ``runs`` independent models of ``model_name`` on random inputs:
    stacked (one grouped step) or one model after another; it returns the step's wall time in seconds
    (after a device synchronisation). For ``benchmarks/bench_training.py``."""
    device = torch.device(device)
    use_amp, amp_dtype, _ = precision(device, amp)
    cl = (device.type == "cuda") if channels_last is None else bool(channels_last)
    torch.manual_seed(0)
    models = [make_model(model_name, 0.0, in_size, None).to(device) for _ in range(runs)]
    if cl:
        models = [m.to(memory_format=torch.channels_last_3d) for m in models]
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    n_out = models[0].n_outputs
    x = torch.rand(batch, runs, in_size, in_size, in_size, device=device)
    y = torch.rand(batch, runs, n_out, device=device)
    xs = [x[:, k:k + 1].contiguous(memory_format=torch.channels_last_3d if cl else torch.contiguous_format)
          for k in range(runs)]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step() -> float:
        sync()
        t0 = time.perf_counter()
        for o in opts:
            o.zero_grad(set_to_none=True)
        if stacked:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                pred = grouped_forward(models, x, training=True, channels_last=cl)
            ((pred.float() - y) ** 2).mean(dim=(0, 2)).sum().backward()
        else:
            for k, m in enumerate(models):
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    pred = m(xs[k])
                nn.functional.mse_loss(pred.float(), y[:, k]).backward()
        for o in opts:
            o.step()
        sync()
        return time.perf_counter() - t0

    return step
