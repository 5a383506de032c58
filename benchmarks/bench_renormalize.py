"""Benchmark: remove_negative on a 100³ field with hundreds of negative pockets.

A smooth positive background (0.02-0.06 e/Å³) with 400 negative pockets (balls of
radius 0.5-2.5 voxels, -0.05 to -0.2 e/Å³), so each needs one to a few layers and
some pockets touch and merge. Baseline, measured in the same run: one
``np.fft.fftn`` of the same field (the autocorrelation step does two of these).

Run: ``.venv/bin/python benchmarks/bench_renormalize.py``
"""

from __future__ import annotations

import time

import numpy as np

from leanecd.io import ECDField
from leanecd.renormalize import remove_negative


def pocket_field(n=100, pockets=400, seed=0):
    rng = np.random.default_rng(seed)
    x = np.arange(n) / n
    c = np.cos(2 * np.pi * x)
    rho = 0.04 + 0.02 * c[:, None, None] * c[None, :, None] * c[None, None, :]
    rho = np.broadcast_to(rho, (n, n, n)).copy()
    g = np.arange(-3, 4)
    offsets = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    dist = np.linalg.norm(offsets, axis=1)
    for centre in rng.integers(0, n, (pockets, 3)):
        ball = offsets[dist <= rng.uniform(0.5, 2.5)]
        rho[tuple(((centre + ball) % n).T)] = -rng.uniform(0.05, 0.2)
    return ECDField(rho=rho, lattice=8.0 * np.eye(3), source="synthetic: 100³ with negative pockets")


def best_time(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    field = pocket_field()
    t_fft, _ = best_time(lambda: np.fft.fftn(field.rho))
    t, out = best_time(lambda: remove_negative(field))
    rec = out.meta["remove_negative"]
    print(f"field {field.shape}, negative voxels {int((field.rho < 0).sum())}, "
          f"clusters {rec['clusters']}, merges {rec['merges']}, layer steps {rec['layer_steps']}")
    print(f"negative charge moved {rec['negative_charge_e']:.4f} e of {field.n_electrons:.4f} e")
    print(f"remove_negative  {t * 1e3:8.1f} ms   (best of 5)")
    print(f"np.fft.fftn      {t_fft * 1e3:8.1f} ms   (baseline, same field)")
    print(f"ratio            {t / t_fft:8.2f} x fftn")
    print(f"min rho after    {out.rho.min():.3g}, relative change in n_electrons "
          f"{out.n_electrons / field.n_electrons - 1:.1e}")


if __name__ == "__main__":
    main()
