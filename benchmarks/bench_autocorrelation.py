"""Benchmark: the exact autocorrelation against the paper-style pipeline, one core.

Fields (synthetic: periodic Gaussians at atom sites, no DFT behind them):

* ``cubic 80^3`` - a simple cubic cell, a = 3.83 Å, 80³ grid (the size of the paper's
  Fe₃SnC example, Fig. 3), atoms at the anti-perovskite sites;
* ``fcc primitive 48^3`` - a Heusler-like FCC compound, a = 5.9 Å, in its primitive cell.

Routes, timed per field in the same run:

* ``exact``  - :func:`leanecd.correlations.autocorrelation` (one real FFT and three
  small matrix products; works on the primitive cell directly);
* ``paper``  - the paper-style pipeline: SimpleITK trilinear resampling to the
  conventional cube (FCC only; :func:`leanecd.cells.to_conventional` with
  ``method="sitk"`` when available), the FFT autocorrelation (Eq. 2) on that grid,
  then cubic-spline interpolation to the 51³ grid with
  ``scipy.ndimage.map_coordinates(order=3, mode="grid-wrap")``;
* ``sitk+exact`` (FCC only) - the trilinear cube followed by the exact evaluation,
  to separate the error of the cell transform from that of the spline.

Errors are against ``exact`` (verified independently in ``tests/test_correlations.py``),
relative to F(0) = mean density. Run::

    .venv/bin/python benchmarks/bench_autocorrelation.py [--repeat 7]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"  # one core; must precede the numpy import

import argparse  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402
import scipy.ndimage  # noqa: E402

from leanecd.correlations import autocorrelation, autocorrelation_grid  # noqa: E402
from leanecd.io import ECDField  # noqa: E402
from leanecd.lattice import find_cubic_cell  # noqa: E402

# --------------------------------------------------------------------------- fields


def gaussians(shape, lattice, sites, weights, sigma=0.3, background=0.02) -> np.ndarray:
    """Periodic Gaussians (width ``sigma`` Å) at fractional ``sites`` on the grid, e/Å³."""
    lattice = np.asarray(lattice, float)
    u = np.stack(np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij"), -1).reshape(-1, 3)
    rho = np.full(len(u), background)
    for site, w in zip(np.asarray(sites, float), weights):
        d = u - site
        d -= np.round(d)
        for img in itertools.product((-1, 0, 1), repeat=3):
            r = (d + img) @ lattice
            rho += w * np.exp(-(r * r).sum(1) / (2 * sigma**2))
    return rho.reshape(shape)


def cubic_field() -> ECDField:
    a = 3.83
    sites = [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)]
    rho = gaussians((80,) * 3, a * np.eye(3), sites, [1.0, 0.5, 0.8, 0.8, 0.8])
    return ECDField(rho=rho, lattice=a * np.eye(3), source="synthetic: anti-perovskite Gaussians, 80^3")


def fcc_field() -> ECDField:
    a = 5.9
    L = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], float)
    sites = [(0, 0, 0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), (0.75, 0.75, 0.75)]
    rho = gaussians((48,) * 3, L, sites, [1.0, 0.6, 0.8, 0.8])
    return ECDField(rho=rho, lattice=L, source="synthetic: Heusler-like Gaussians, FCC primitive 48^3")


# --------------------------------------------------------------------------- the paper-style route


def sitk_conventional(field: ECDField) -> tuple[ECDField, str]:
    """Trilinear (SimpleITK) conventional cube; leanecd.cells when it is there."""
    try:
        from leanecd.cells import to_conventional
    except ImportError:
        to_conventional = None
    if to_conventional is not None:
        return to_conventional(field, method="sitk"), "leanecd.cells.to_conventional(method='sitk')"
    return _sitk_fallback(field), "benchmark's own SimpleITK resampling (leanecd.cells not found)"


def _sitk_fallback(field: ECDField) -> ECDField:
    import SimpleITK as sitk

    cube = find_cubic_cell(field.lattice)
    L, n = field.lattice, np.array(field.shape)
    m = int(math.ceil(cube.a / field.spacing.min()))
    padded = np.pad(field.rho, [(k, k + 1) for k in n], mode="wrap")
    img = sitk.GetImageFromArray(padded.transpose(2, 1, 0))
    lengths = np.linalg.norm(L, axis=1)
    img.SetSpacing(tuple(float(v) for v in lengths / n))
    img.SetDirection(tuple(float(v) for v in (L / lengths[:, None]).T.ravel()))
    img.SetOrigin(tuple(float(v) for v in -L.sum(axis=0)))
    ref = sitk.Image([m] * 3, sitk.sitkFloat64)
    ref.SetSpacing((cube.a / m,) * 3)
    ref.SetDirection(tuple(float(v) for v in cube.rotation.T.ravel()))
    out = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat64)
    return ECDField(rho=sitk.GetArrayFromImage(out).transpose(2, 1, 0), lattice=cube.a * np.eye(3))


def fft_then_spline(field: ECDField, spacing=0.2, size=51) -> np.ndarray:
    """Eq. 2 on the field's cubic grid, then cubic splines (periodic) to the standard grid."""
    s = np.sqrt(field.rho)
    S = scipy.fft.rfftn(s, workers=1)
    f = scipy.fft.irfftn(S.real**2 + S.imag**2, s=s.shape, workers=1) / s.size  # index 0: r = 0
    a = find_cubic_cell(field.lattice).a
    x = autocorrelation_grid(spacing, size)
    coords = np.stack(np.meshgrid(*[x / a * n for n in s.shape], indexing="ij")).reshape(3, -1)
    out = scipy.ndimage.map_coordinates(f, coords, order=3, mode="grid-wrap")
    return out.reshape(size, size, size)


# --------------------------------------------------------------------------- timing


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times)), 1e3 * float(np.min(times)), out


def errors(F, ref):
    scale = ref[tuple(s // 2 for s in ref.shape)]  # F(0) = mean density
    d = F - ref
    return float(np.abs(d).max() / scale), float(np.sqrt(np.mean(d * d)) / scale)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=7, help="timed repetitions per route (median reported)")
    args = p.parse_args(argv)
    try:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    except (ImportError, AttributeError):
        pass

    rows = []
    note = None
    for name, make in (("cubic 80^3", cubic_field), ("fcc primitive 48^3", fcc_field)):
        field = make()
        t_ex, t_ex_min, F = timed(lambda field=field: autocorrelation(field), args.repeat)
        assert abs(F[25, 25, 25] - field.rho.mean()) < 1e-12 * field.rho.mean()
        rows.append((name, "exact", t_ex, t_ex_min, 0.0, 0.0, 1.0))
        if (find_cubic_cell(field.lattice).multiplicity == 1
                and np.allclose(field.lattice, np.diag(np.diag(field.lattice)))):
            t, tmin, G = timed(lambda field=field: fft_then_spline(field), args.repeat)
            rows.append((name, "paper: FFT + spline", t, tmin, *errors(G, F), t / t_ex))
        else:
            def paper(field=field):
                conv, _ = sitk_conventional(field)
                return fft_then_spline(conv)

            t, tmin, G = timed(paper, args.repeat)
            rows.append((name, "paper: sitk + FFT + spline", t, tmin, *errors(G, F), t / t_ex))
            conv, note = sitk_conventional(field)
            t_c, tmin_c, _ = timed(lambda field=field: sitk_conventional(field), args.repeat)
            t_e, tmin_e, H = timed(lambda conv=conv: autocorrelation(conv), args.repeat)
            rows.append((name, f"sitk cube ({conv.shape[0]}^3) + exact", t_c + t_e, tmin_c + tmin_e,
                         *errors(H, F), (t_c + t_e) / t_ex))

    print(f"# autocorrelation to the 51^3 grid (0.2 Å), one thread; {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}, scipy {scipy.__version__}; median of {args.repeat}")
    if note:
        print(f"# trilinear cube: {note}")
    print(f"{'field':<20} {'route':<30} {'ms/field':>9} {'min ms':>8} {'x exact':>8} {'max err':>9} {'RMS err':>9}")
    for name, route, t, tmin, emax, erms, ratio in rows:
        print(f"{name:<20} {route:<30} {t:9.1f} {tmin:8.1f} {ratio:8.2f} {emax:9.2e} {erms:9.2e}")
    print("# errors: |F - F_exact| relative to F(0) = mean density; F_exact agrees with brute force to 1e-12")


if __name__ == "__main__":
    main()
