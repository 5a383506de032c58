"""Benchmark: primitive -> conventional cube, spectral vs SimpleITK trilinear.

Synthetic FCC fields (NaCl-like, periodic Gaussians, sigma = 0.5 Å, a = 5.6 Å) on
30³ and 48³ primitive grids. For each method: time per field, the relative
electron-count error (per primitive cell) and the largest deviation from the exact
density at 3000 cube grid points (relative to the peak). The baseline, measured in
the same run, is one ``np.fft.fftn`` of the primitive field. The last column
compares the two methods on the same (sitk) grid.

Run: ``.venv/bin/python benchmarks/bench_cells.py``
"""

from __future__ import annotations

import time

import numpy as np

from leanecd.cells import synthetic_density, synthetic_field, to_conventional


def best_time(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    print(f"{'grid':>5} {'method':>9} {'cube':>5} {'time s':>8} {'x fftn':>8} {'dNe/Ne':>9} "
          f"{'max err/peak':>12} {'|sitk-spec|/peak':>16}")
    for n in (30, 48):
        prim = synthetic_field("fcc", a=5.6, n=n, sigma=0.5)
        t_fft, _ = best_time(lambda prim=prim: np.fft.fftn(prim.rho))
        peak = prim.rho.max()
        results = {}
        for method in ("spectral", "sitk"):
            t, cube = best_time(lambda prim=prim, method=method: to_conventional(prim, method))
            m = cube.shape[0]
            idx = np.random.default_rng(0).integers(0, m, (3000, 3))
            exact = synthetic_density(cube, idx / m * cube.lattice[0, 0])
            err = np.abs(cube.rho[tuple(idx.T)] - exact).max() / peak
            dne = cube.n_electrons / cube.meta["to_conventional"]["multiplicity"] / prim.n_electrons - 1
            results[method] = (t, cube, err, dne)
        m = results["sitk"][1].shape[0]
        same_grid = to_conventional(prim, "spectral", spacing=results["sitk"][1].lattice[0, 0] / m)
        cross = np.abs(same_grid.rho - results["sitk"][1].rho).max() / peak
        for method, (t, cube, err, dne) in results.items():
            print(f"{n:>4}³ {method:>9} {cube.shape[0]:>4}³ {t:8.3f} {t / t_fft:8.1f} {dne:9.1e} {err:12.1e} "
                  f"{cross if method == 'sitk' else float('nan'):16.1e}")
        print(f"{'':>5} {'fftn':>9} {n:>4}³ {t_fft:8.4f}  (baseline: one np.fft.fftn of the primitive field)")


if __name__ == "__main__":
    main()
