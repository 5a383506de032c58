"""Training throughput of the lean CNNs on this machine, and what a GPU should reach.

On a CPU: samples/s of a training step (forward + backward + Adam) of Model A at the
paper's batch on every CPU path the trainer can choose (fp32 or bf16 autocast,
contiguous or channels_last_3d, eager or ``torch.compile``; ``leanecd.cpupath``), all
in one run, with the ratio to fp32 eager and the achieved GFLOP/s; Model B on fp32
and the fastest path; then one run on 2 threads against two concurrent runs on 1
thread each. Then an estimate of the paper's protocol on this machine and on one H100.

    python benchmarks/bench_training.py              # about 5 min on 2 CPU cores
    python benchmarks/bench_training.py --skip-threads
    python benchmarks/bench_training.py --device cuda   # GPU figures, with the stacked section

Stacked section (``--device cuda``, or on a CPU with ``--stacked-cpu``): samples/s of
K = 10 runs of Model A at batch 50 trained one after another versus as one stacked
model (:mod:`leanecd.foldstack`, how :func:`leanecd.train.fit` trains the CV folds and
the final fit on CUDA); on CUDA also the achieved TFLOP/s and its share of the device's
dense bf16 peak. ``--stacked-only`` skips everything else::

    python benchmarks/bench_training.py --device cuda --stacked-only
    python benchmarks/bench_training.py --stacked-cpu --stacked-only --stacked-runs 4 --batch 10

Timings on a shared machine vary by tens of per cent; the ratios are what matters.
Never used as a timed assert in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import time

import torch
from torch import nn

from leanecd import cpupath, foldstack
from leanecd.models import build_model, flops_per_sample

IN = (1, 51, 51, 51)


def make_step(model_name: str, batch: int, amp_bf16: bool = False, channels_last: bool = False,
              device: str = "cpu"):
    """A closure running one training step (forward, MSE backward, Adam step); returns seconds."""
    torch.manual_seed(0)
    model = build_model(model_name).to(device)
    x = torch.rand(batch, *IN, device=device)
    y = torch.rand(batch, model.n_outputs, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)

    def step() -> float:
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16) if amp_bf16 else contextlib.nullcontext():
            out = model(x)
        loss = nn.functional.mse_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    return step


def measure(steps: dict, rounds: int, warmup: int = 1) -> dict:
    """Time every step ``rounds`` times, interleaved (so a busy spell on a shared machine hits all
    variants alike); returns {label: (best, median)} in seconds per step."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {k: [] for k in steps}
    for _ in range(rounds):
        for k, step in steps.items():
            times[k].append(step())
    return {k: (min(v), sorted(v)[len(v) // 2]) for k, v in times.items()}


#: Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, by a pattern of the CUDA device name; first match wins.
BF16_PEAK_TFLOPS = (
    (r"\bH100\b.*\bPCIe\b", "H100 PCIe", 756.0),
    (r"\bH100\b(?!.*\bNVL\b)", "H100 SXM", 989.0),
    (r"\bH200\b(?!.*\bNVL\b)", "H200 SXM", 989.0),
    (r"\bA100\b", "A100", 312.0),
    (r"\bL40S\b", "L40S", 362.0),
    (r"\bL4\b", "L4", 121.0),
)


def bf16_peak(device_name: str) -> tuple[str, float] | None:
    """(label, dense bf16 peak in TFLOP/s) of a CUDA device name, or None if it is not in :data:`BF16_PEAK_TFLOPS`."""
    for pattern, label, peak in BF16_PEAK_TFLOPS:
        if re.search(pattern, device_name, re.I):
            return label, peak
    return None


def stacked_section(dev: str, batch: int, runs: int, iters: int) -> float:
    """Samples/s of ``runs`` Model A runs trained one after another vs stacked; prints a small table and
    returns the stacked samples/s."""
    if dev == "cuda":
        torch.backends.cudnn.benchmark = True  # as the trainer does on CUDA
    steps = {label: foldstack.step_function("A", runs, batch, IN[-1], dev, stacked=label == "stacked")
             for label in ("sequential", "stacked")}
    t = measure(steps, iters, warmup=2)
    gflop = flops_per_sample(build_model("A"), IN) / 1e9
    precision = "bf16 autocast, channels_last_3d" if dev == "cuda" else "fp32, contiguous"
    print(f"Fold-parallel training: {runs} runs of Model A, batch {batch} each per step, {precision} "
          f"(best of {iters}; {gflop:.2f} GFLOP per sample, forward + backward):")
    peak = bf16_peak(torch.cuda.get_device_name()) if dev == "cuda" else None
    rates = {}
    for label, (best_t, _) in t.items():
        rates[label] = sps = runs * batch / best_t
        line = f"  {label:10s} {sps:10.1f} samples/s"
        if dev == "cuda":
            tflops = sps * gflop / 1e3
            share = f"{100 * tflops / peak[1]:.1f} % of the {peak[0]} bf16 peak ({peak[1]:.0f} TFLOP/s)" if peak \
                else "bf16 peak of this device unknown"
            line += f" {tflops:8.2f} TFLOP/s  {share}"
        print(line)
    print(f"  stacked / sequential: {rates['stacked'] / rates['sequential']:.2f}x")
    print()
    return rates["stacked"]


def _worker(args) -> None:
    """One process timing ``args.steps`` steps of one CPU path (for the threads comparison); prints samples/s."""
    torch.set_num_threads(args.threads)
    fn = cpupath.step_function(args.model, cpupath.get_path(args.path), args.batch, 51, None)
    fn()
    fn()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        fn()
    print(args.batch * args.steps / (time.perf_counter() - t0))


def _threads_comparison(path: str, batch: int, steps: int) -> tuple[float, float]:
    """Aggregate samples/s of one process on 2 threads and of two concurrent processes on 1 thread each."""
    cmd = [sys.executable, __file__, "--worker", "--path", path, "--batch", str(batch), "--steps", str(steps)]
    one = float(subprocess.run(cmd + ["--threads", "2"], capture_output=True, text=True, check=True).stdout.split()[-1])
    procs = [subprocess.Popen(cmd + ["--threads", "1"], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    two = sum(float(p.communicate()[0].split()[-1]) for p in procs)
    return one, two


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=50, help="batch size (the paper's: 50)")
    ap.add_argument("--iters", type=int, default=3, help="timed steps per path (best reported)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-threads", action="store_true", help="skip the 1 x 2 threads vs 2 x 1 thread comparison")
    ap.add_argument("--stacked-cpu", action="store_true",
                    help="run the stacked section (sequential vs stacked runs) on the CPU too (slow: minutes)")
    ap.add_argument("--stacked-only", action="store_true", help="only the stacked section")
    ap.add_argument("--stacked-runs", type=int, default=10, help="runs trained together in the stacked section")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--path", default="fp32", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="A", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return _worker(args)

    torch.set_num_threads(args.threads)
    dev = args.device
    b = args.batch
    print(f"torch {torch.__version__}, device {dev}"
          + (f" ({torch.cuda.get_device_name()})" if dev == "cuda" else
             f" ({cpupath.cpu_model()}, {torch.get_num_threads()} threads, "
             f"CPU capability {torch.backends.cpu.get_cpu_capability()}, flags: {' '.join(cpupath.cpu_flags())})"))
    if dev == "cpu":
        print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
              f"(other processes on these cores slow every number below)")
    print()

    if dev == "cuda" or args.stacked_cpu:
        stacked_section(dev, b, args.stacked_runs, args.iters)
    elif args.stacked_only:
        print("the stacked section runs with --device cuda, or on the CPU with --stacked-cpu")
    if args.stacked_only:
        return

    results = {}
    if dev == "cpu":
        figures = cpupath.probe("A", b, 51, steps=args.iters)
        base = figures["fp32"]["samples_per_s"]
        gflop = flops_per_sample(build_model("A"), IN) / 1e9
        print(f"Model A, batch {b}, training step (forward + backward + Adam), every CPU path in one run "
              f"(best of {args.iters}, interleaved):")
        print(f"  {'path':18s} {'samples/s':>10s} {'x fp32 eager':>13s} {'GFLOP/s':>8s} {'warm-up s':>10s}")
        for name, f in figures.items():
            sps = f["samples_per_s"]
            print(f"  {name:18s} {sps:10.1f} {sps / base:13.2f} {sps * gflop:8.1f} {f['warmup_s']:10.1f}")
        best = max(figures, key=lambda n: figures[n]["samples_per_s"])
        print(f"  fastest: {best}, {figures[best]['samples_per_s'] / base:.2f}x fp32 eager "
              f"(the trainer's 'auto' takes it if >= {cpupath.MIN_GAIN:.2f}x)")
        results["A"] = (gflop, figures[best]["samples_per_s"])
        fb = cpupath.probe("B", b, 51, steps=max(1, args.iters - 1), candidates=["fp32", best])
        print(f"Model B, batch {b}: fp32 eager {fb['fp32']['samples_per_s']:.1f} samples/s, "
              f"{best} {fb[best]['samples_per_s']:.1f} samples/s")
        if not args.skip_threads:
            one, two = _threads_comparison(best, b, 4)
            print(f"\nThreads, Model A on {best}: one run on 2 threads {one:.1f} samples/s; two concurrent runs "
                  f"on 1 thread each {two:.1f} samples/s in all ({two / one:.2f}x)")
        print()
    else:
        steps = {("A", "fp32"): make_step("A", b, device=dev),
                 ("A", "bf16 + channels_last_3d"): make_step("A", b, amp_bf16=True, channels_last=True, device=dev),
                 ("B", "fp32"): make_step("B", b, device=dev)}
        t = measure(steps, args.iters)
        for (name, label), (best_t, _med) in t.items():
            gflop = flops_per_sample(build_model(name), IN) / 1e9
            print(f"{name} {label:26s} {b / best_t:10.1f} samples/s {gflop * b / best_t / 1e3:8.2f} TFLOP/s")
        results["A"] = (flops_per_sample(build_model("A"), IN) / 1e9, b / t[("A", "bf16 + channels_last_3d")][0])
        print()

    gflop_a, sps_a = results["A"]
    n_total, train_frac = 1410, 0.9
    n_final = round(n_total * train_frac)  # 1269
    n_fold = round(n_final * 8 / 9)  # 1128 per CV training set
    sample_passes = 650 * (n_final + 9 * n_fold)
    cpu_hours = sample_passes / sps_a / 3600
    print("What the paper's protocol costs for Model A (1410 samples; 9 CV fits on 8/9 of the 90 % "
          f"plus the final fit on the 90 %; 650 epochs): {sample_passes / 1e6:.2f} M sample passes, "
          f"{sample_passes * gflop_a / 1e6:.0f} PFLOP.")
    print(f"  This machine at {sps_a:.1f} samples/s: {cpu_hours:.0f} h ({cpu_hours / 24:.1f} days).")
    for label, tflops in (("optimistic", 150.0), ("realistic", 30.0)):
        sps = tflops * 1e3 / gflop_a
        print(f"  One H100, {label} {tflops:.0f} TFLOP/s sustained: {sps:,.0f} samples/s, "
              f"final fit {650 * n_final / sps / 60:.1f} min, whole protocol {sample_passes / sps / 60:.0f} min.")
    print(
        "Assumptions: H100 SXM dense bf16 tensor-core peak is ~990 TFLOP/s (PCIe ~760), fp32 without tensor "
        "cores ~67 TFLOP/s. 3-D convolutions with few channels (1 -> 64 in, 8 -> 1 out) and small 18-24^3 "
        "maps use tensor cores poorly and are partly memory bound, so we assume 3-15 % of the bf16 peak "
        f"(30-150 TFLOP/s); at {gflop_a:.1f} GFLOP per sample that is ~{30e3 / gflop_a:,.0f}-{150e3 / gflop_a:,.0f} "
        "samples/s, provided the whole feature tensor (1410 x 51^3 x 4 B = 0.75 GB) sits on the GPU so that "
        "no host-to-device copy limits it. Batch 50 gives small kernels; per-step overhead (~10 launches, "
        "Adam) of ~1-2 ms adds ~25 steps x 650 epochs x 1.5 ms ~ 25 s per fit."
    )
    paper_sps = 650 * n_final / (6.5 * 60)
    print(
        f"Check against the paper: 6-7 min per Model A fit on one A100 (650 epochs x {n_final} samples) is "
        f"~{paper_sps:,.0f} samples/s = {paper_sps * gflop_a / 1e3:.0f} TFLOP/s, "
        f"~{paper_sps * gflop_a / 312e1:.0f} % of "
        "the A100's 312 TFLOP/s bf16 peak: small 3-D convolutions reach a few per cent of peak unless tuned, "
        "so the 'realistic' line above is the one to expect from an untuned run."
    )


if __name__ == "__main__":
    main()
