"""Training throughput of the lean CNNs on this machine, and what a GPU should reach.

Measures forward + backward + Adam step (samples/s) for Models A and B on a 1×51³
input, the analytic FLOPs per sample (``leanecd.models.flops_per_sample``), the
achieved GFLOP/s, and for Model A the speed of bf16 autocast and of the
channels_last_3d memory format relative to plain fp32. Then prints an estimate of
the time of the paper's protocol on this CPU and on one H100, with its assumptions.

    python benchmarks/bench_training.py              # about 2-4 min on 2 CPU cores
    python benchmarks/bench_training.py --batch 50   # the paper's batch (slow on a CPU)

Timings on a shared machine vary by tens of per cent; the ratios are what matters.
Never used as a timed assert in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time

import torch
from torch import nn

from leanecd.models import build_model, count_parameters, flops_per_sample

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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=8, help="batch size (paper: 50; default 8 to keep a CPU run short)")
    ap.add_argument("--iters", type=int, default=5, help="timed steps per measurement (median reported)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    dev = args.device
    print(f"torch {torch.__version__}, device {dev}"
          + (f" ({torch.cuda.get_device_name()})" if dev == "cuda" else
             f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
             f"CPU capability {torch.backends.cpu.get_cpu_capability()})"))
    print(f"batch {args.batch}" + ("" if args.batch == 50 else " (the paper uses 50; a step at 50 takes ~6x longer "
                                   "on a CPU; Model A at batch 50 is measured once below)"))
    if dev == "cpu":
        print(f"load average before the run: {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())} "
              f"(other processes on these cores slow every number below)")
    print()

    b = args.batch
    steps = {
        ("A", "fp32"): make_step("A", b, device=dev),
        ("A", "bf16 autocast"): make_step("A", b, amp_bf16=True, device=dev),
        ("A", "channels_last_3d fp32"): make_step("A", b, channels_last=True, device=dev),
        ("A", "bf16 + channels_last_3d"): make_step("A", b, amp_bf16=True, channels_last=True, device=dev),
        ("B", "fp32"): make_step("B", b, device=dev),
    }
    t = measure(steps, args.iters)
    results = {}
    print(f"training step (forward + backward + Adam), fp32, batch {b}; best of {args.iters} (median in brackets)")
    print(f"{'model':6s} {'params':>9s} {'GFLOP/sample':>13s} {'s/step':>15s} {'samples/s':>10s} {'GFLOP/s':>8s}")
    for name in ("A", "B"):
        model = build_model(name)
        gflop = flops_per_sample(model, IN) / 1e9
        best, med = t[(name, "fp32")]
        sps = b / best
        results[name] = (gflop, sps)
        print(f"{name:6s} {count_parameters(model):9,d} {gflop:13.2f} {best:6.2f} ({med:6.2f}) {sps:10.2f} {gflop * sps:8.1f}")
    print("(GFLOP/sample = forward + backward, analytic: 2 FLOP per multiply-add, backward = 2x forward "
          "except the first convolution's data gradient)")
    if b != 50:
        t50 = measure({"A50": make_step("A", 50, device=dev)}, 2)["A50"][0]
        print(f"A at batch 50: {t50:.2f} s/step, {50 / t50:.2f} samples/s, {results['A'][0] * 50 / t50:.1f} GFLOP/s")
    print()

    base = t[("A", "fp32")][0]
    print(f"Model A, batch {b}, training step time relative to fp32 (best of {args.iters}; >1 = slower):")
    for (name, label), (best, med) in t.items():
        if name == "A":
            print(f"  {label:26s} {best:7.2f} s/step ({med:.2f})   x{best / base:5.2f}")
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
        f"~{paper_sps:,.0f} samples/s = {paper_sps * gflop_a / 1e3:.0f} TFLOP/s, ~{paper_sps * gflop_a / 312e1:.0f} % of "
        "the A100's 312 TFLOP/s bf16 peak: small 3-D convolutions reach a few per cent of peak unless tuned, "
        "so the 'realistic' line above is the one to expect from an untuned run."
    )


if __name__ == "__main__":
    main()
