"""Figures of the book: field slices, 3-D views, dataset histograms.

Static figures use matplotlib; interactive ones use plotly. Functions return the
figure and never call ``show()``, so notebooks and scripts decide what to do.
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from matplotlib import patheffects
from matplotlib.collections import PolyCollection
from matplotlib.colors import AsinhNorm
from matplotlib.ticker import MaxNLocator
from plotly.io import to_html
from plotly.io.base_renderers import MimetypeRenderer
from scipy.spatial import Voronoi

from .field import ECDField
from .jarvis import PAPER_COUNTS, PAPER_SPACE_GROUPS
from .lattice import find_cubic_cell

__all__ = ["field_slices", "field_isosurface", "label_histograms", "spacegroup_bars", "grid_plane",
           "primitive_samples_on_cube_plane", "primitive_outline_on_cube", "density_norm", "cell_transform",
           "renormalization", "selection_histograms"]


def field_slices(field: ECDField, index: int | None = None, cmap: str = "viridis", title: str | None = None):
    """Three central slices of ``field.rho`` (e/Å³), one per pair of grid axes.

    For a non-orthogonal (primitive) cell the slices are planes of the grid, drawn
    in grid coordinates: the axes are labelled with the lattice vectors they follow.
    """
    rho = field.rho
    idx = [n // 2 if index is None else index % n for n in rho.shape]
    panels = [
        (rho[idx[0], :, :], "a2", "a3", f"i1 = {idx[0]}"),
        (rho[:, idx[1], :], "a1", "a3", f"i2 = {idx[1]}"),
        (rho[:, :, idx[2]], "a1", "a2", f"i3 = {idx[2]}"),
    ]
    vmin, vmax = float(rho.min()), float(rho.max())
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), constrained_layout=True)
    for ax, (img, xl, yl, t) in zip(axes, panels):
        im = ax.imshow(img.T, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_xlabel(f"grid index along {xl}")
        ax.set_ylabel(f"grid index along {yl}")
        ax.set_title(t)
    fig.colorbar(im, ax=axes, label="ρ (e/Å³)", shrink=0.9)
    if title:
        fig.suptitle(title)
    return fig


def _cartesian_grid(field: ECDField):
    n1, n2, n3 = field.shape
    f = np.stack(np.meshgrid(np.arange(n1) / n1, np.arange(n2) / n2, np.arange(n3) / n3, indexing="ij"), -1)
    return f @ field.lattice  # (n1, n2, n3, 3) Å


def field_isosurface(field: ECDField, levels: int = 4, quantiles=(0.80, 0.995), title: str | None = None):
    """Interactive plotly iso-surfaces of ρ in Cartesian space (Å), atoms as markers."""
    xyz = _cartesian_grid(field)
    lo, hi = np.quantile(field.rho, quantiles)
    fig = go.Figure(
        go.Isosurface(
            x=xyz[..., 0].ravel(), y=xyz[..., 1].ravel(), z=xyz[..., 2].ravel(), value=field.rho.ravel(),
            isomin=float(lo), isomax=float(hi), surface_count=levels, opacity=0.35,
            caps=dict(x_show=False, y_show=False, z_show=False), colorscale="Viridis",
            colorbar=dict(title="ρ (e/Å³)"),
        )
    )
    if field.atoms is not None:
        pos = field.atoms.get_positions()
        fig.add_trace(go.Scatter3d(x=pos[:, 0], y=pos[:, 1], z=pos[:, 2], mode="markers+text",
                                   text=field.atoms.get_chemical_symbols(), marker=dict(size=6, color="black"),
                                   name="atoms"))
    fig.update_layout(title=title, scene=dict(xaxis_title="x (Å)", yaxis_title="y (Å)", zaxis_title="z (Å)",
                                              aspectmode="data"), height=520, margin=dict(l=0, r=0, t=40, b=0))
    return fig


def label_histograms(table, columns=("bulk_modulus_GPa", "energy_per_atom_eV"), bins: int = 30):
    """Histograms of the targets (paper Fig. 1b, c)."""
    names = {"bulk_modulus_GPa": "bulk modulus (GPa)", "energy_per_atom_eV": "total energy (eV/atom)"}
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 3.5), constrained_layout=True)
    for ax, col in zip(np.atleast_1d(axes), columns):
        ax.hist(table[col], bins=bins, color="tab:blue", edgecolor="white")
        ax.set_xlabel(names.get(col, col))
        ax.set_ylabel("compounds")
    return fig


def spacegroup_bars(table):
    """Compounds per space group and number of elements (paper Fig. 1a)."""
    counts = table.groupby(["spacegroup_symbol", "n_elements"]).size().unstack(fill_value=0)
    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    bottom = np.zeros(len(counts))
    for ne in counts.columns:
        ax.bar(counts.index, counts[ne], bottom=bottom, label=f"{ne} element{'s' if ne > 1 else ''}")
        bottom += counts[ne].to_numpy()
    ax.set_ylabel("compounds")
    ax.set_xlabel("space group")
    ax.legend()
    return fig


def selection_histograms(report, bins: int = 40, title: str | None = None):
    """The JARVIS selection as paper Fig. 1, from a :class:`leanecd.jarvis.SelectionReport`.

    (a) compounds per space group, stacked by number of elements; (b) compounds per
    number of elements, this selection next to the paper's counts (written on the
    bars); (c) bulk modulus (GPa) and (d) total energy (eV/atom) histograms.
    """
    table = report.table
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    (ax_a, ax_b), (ax_c, ax_d) = axes
    groups = report.space_groups
    names = [f"{PAPER_SPACE_GROUPS.get(s, s)}\n({s})" for s in groups]
    bottom = np.zeros(len(groups))
    for ne in sorted(table["n_elements"].unique()):
        counts = np.array([((table["spacegroup"] == s) & (table["n_elements"] == ne)).sum() for s in groups])
        ax_a.bar(names, counts, bottom=bottom, label=f"{ne} element{'s' if ne > 1 else ''}")
        bottom += counts
    ax_a.set_ylabel("compounds")
    ax_a.set_title("(a) space groups")
    if len(table):
        ax_a.legend(fontsize="small")
    ours, paper = report.by_n_elements, PAPER_COUNTS["by_n_elements"]
    ks = np.array(sorted(set(ours) | set(paper)))
    for dx, counts, label in ((-0.2, ours, f"this selection ({len(table):,})"),
                              (0.2, paper, f"paper ({PAPER_COUNTS['compounds']:,})")):
        bars = ax_b.bar(ks + dx, [counts.get(k, 0) for k in ks], width=0.4, label=label)
        ax_b.bar_label(bars, fontsize="x-small")
    ax_b.set_xticks(ks)
    ax_b.set_xlabel("number of elements")
    ax_b.set_ylabel("compounds")
    ax_b.set_title("(b) elements per compound")
    ax_b.legend(fontsize="small")
    for ax, col, label, tag in ((ax_c, "bulk_modulus_GPa", "bulk modulus (GPa)", "(c)"),
                                (ax_d, "energy_per_atom_eV", "total energy (eV/atom)", "(d)")):
        ax.hist(table[col], bins=bins, color="tab:blue", edgecolor="white")
        ax.set_xlabel(label)
        ax.set_ylabel("compounds")
        ax.set_title(f"{tag} {label.split(' (')[0]}")
    for ax in axes.flat:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- chapters 2 and 3: planes in Å


def _plane_frame(field: ECDField, axis: int):
    """The two in-plane lattice vectors of grid planes normal to ``axis`` and an orthonormal 2-D frame."""
    q, r = [i for i in range(3) if i != axis]
    u, v = field.lattice[q], field.lattice[r]
    e1 = u / np.linalg.norm(u)
    e2 = v - (v @ e1) * e1
    e2 /= np.linalg.norm(e2)
    return q, r, u, v, e1, e2


def grid_plane(field: ECDField, axis: int = 2, index: int = 0, ax=None, norm=None, cmap: str = "viridis",
               outline: bool = True, show_atoms: bool = True, values=None):
    """Draw the grid plane ``i_axis = index`` of ``field`` in true Cartesian in-plane coordinates (Å).

    Each voxel is a flat-coloured parallelogram centred on its grid point, so a
    primitive (non-orthogonal) plane shows as the parallelogram it really is.
    In-plane frame: x along the first in-plane lattice vector, y perpendicular to it
    in the plane; the origin is the grid point (0, 0) of the plane. ``outline`` draws
    the cell face (the lattice vectors' parallelogram); ``show_atoms`` marks atoms
    within half a plane spacing of the plane. ``values`` replaces ``field.rho`` (same
    shape), e.g. a difference of two fields. Returns the QuadMesh (for a colorbar).
    """
    ax = plt.gca() if ax is None else ax
    rho = field.rho if values is None else np.asarray(values)
    q, r, u, v, e1, e2 = _plane_frame(field, axis)
    nq, nr = field.shape[q], field.shape[r]
    U = np.array([u @ e1, u @ e2])
    V = np.array([v @ e1, v @ e2])
    fi = (np.arange(nq + 1) - 0.5) / nq
    fj = (np.arange(nr + 1) - 0.5) / nr
    XY = fi[:, None, None] * U + fj[None, :, None] * V
    C = np.take(rho, index % field.shape[axis], axis=axis)
    mesh = ax.pcolormesh(XY[..., 0], XY[..., 1], C, shading="flat", cmap=cmap, norm=norm, rasterized=True)
    if outline:
        P = np.array([[0, 0], U, U + V, V, [0, 0]])
        ax.plot(P[:, 0], P[:, 1], color="white", lw=1.2, ls="--")
    if show_atoms and field.atoms is not None:
        frac = field.atoms.get_positions() @ np.linalg.inv(field.lattice)
        d = (frac[:, axis] - index / field.shape[axis] + 0.5) % 1.0 - 0.5
        near = np.abs(d) * field.shape[axis] <= 0.5 + 1e-9
        symbols = np.array(field.atoms.get_chemical_symbols())
        for f, s in zip(frac[near], symbols[near]):
            fq, fr = f[q] % 1.0, f[r] % 1.0
            for dq in (0, 1):
                for dr in (0, 1):
                    if (dq and fq > 1e-6) or (dr and fr > 1e-6):
                        continue
                    xy = (fq + dq) * U + (fr + dr) * V
                    ax.plot(*xy, "o", ms=5, mfc="none", mec="white", mew=1.2)
                    ax.annotate(s, xy, xytext=(4, 4), textcoords="offset points", color="white", fontsize=9,
                                path_effects=[patheffects.withStroke(linewidth=2, foreground="black")])
    ax.set_aspect("equal")
    ax.set_xlabel("x in plane (Å)")
    ax.set_ylabel("y in plane (Å)")
    return mesh


def primitive_outline_on_cube(ax, prim: ECDField, rotation, color: str = "white"):
    """The 12 edges of the primitive cell, in the cube's frame, projected onto its xy plane (Å)."""
    Lc = prim.lattice @ np.asarray(rotation).T  # primitive vectors in the cube's frame
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    for a in range(8):
        for b in range(a + 1, 8):
            if np.abs(corners[a] - corners[b]).sum() == 1:
                seg = corners[[a, b]] @ Lc
                ax.plot(seg[:, 0], seg[:, 1], color=color, lw=1.0, ls=":")


def primitive_samples_on_cube_plane(prim: ECDField, ax=None, height: float = 0.0, norm=None, cmap: str = "viridis",
                                    margin: float = 0.1):
    """The primitive grid points lying in the cube's plane z = ``height`` (cube-fractional), drawn in Å.

    These are the only stored values on that plane; they form a 2-D lattice that is
    not the cube's grid (for FCC a square lattice turned by 45°). Each sample is drawn
    as its Voronoi cell, so the picture shows exactly what the data holds there.
    Returns the PolyCollection, or None when no grid point lies in the plane.
    """
    ax = plt.gca() if ax is None else ax
    cell = find_cubic_cell(prim.lattice)
    T = cell.T.astype(float)
    shape = np.array(prim.shape)
    box = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    box = np.vstack([box * (1 + 2 * margin) - margin]) @ T  # primitive-fractional corners of the padded cube
    lo = np.floor(box.min(axis=0) * shape).astype(int)
    hi = np.ceil(box.max(axis=0) * shape).astype(int)
    idx = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    u = (idx / shape) @ np.linalg.inv(T)  # cube-fractional coordinates
    on = (np.abs(u[:, 2] - height) < 1e-9) & (u[:, :2] > -margin).all(1) & (u[:, :2] < 1 + margin).all(1)
    if not on.any():
        return None
    xy = u[on, :2] * cell.a
    vals = prim.rho[tuple((idx[on] % shape).T)]
    vor = Voronoi(xy)
    inner = (u[on, :2] > -margin / 2).all(1) & (u[on, :2] < 1 + margin / 2).all(1)
    polys, colours = [], []
    for p, ok in enumerate(inner):
        region = vor.regions[vor.point_region[p]]
        if ok and region and -1 not in region:
            polys.append(vor.vertices[region])
            colours.append(vals[p])
    coll = PolyCollection(polys, array=np.array(colours), cmap=cmap, norm=norm, edgecolors="face", linewidths=0.2)
    ax.add_collection(coll)
    ax.set_xlim(0, cell.a)
    ax.set_ylim(0, cell.a)
    ax.set_aspect("equal")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    return coll


def density_norm(*fields, linear_width: float = 0.1, symmetric: bool = False):
    """An asinh colour scale (linear below ``linear_width`` e/Å³, logarithmic above) spanning the fields.

    Charge densities range from ~0.01 e/Å³ between atoms to tens of e/Å³ at the
    cores; a linear scale shows only the cores. ``symmetric`` centres it on 0 (for
    densities with negative values or differences, with a diverging colour map).
    """
    lo = min(float(np.min(f.rho if isinstance(f, ECDField) else f)) for f in fields)
    hi = max(float(np.max(f.rho if isinstance(f, ECDField) else f)) for f in fields)
    if symmetric:
        m = max(abs(lo), abs(hi))
        lo, hi = -m, m
    return AsinhNorm(linear_width=linear_width, vmin=lo, vmax=hi)


def _asinh_ticks(norm):
    """Colour-bar ticks for an asinh norm: 0 and ±linear_width·10^k inside its range."""
    w = norm.linear_width
    mags = w * 10.0 ** np.arange(0, 8)
    ticks = np.concatenate([-mags[::-1], [0.0], mags])
    return ticks[(ticks >= norm.vmin) & (ticks <= norm.vmax)]


def cell_transform(prim: ECDField, cube: ECDField, prim_index: int = 0, cube_index: int = 0, cmap: str = "viridis",
                   title: str | None = None):
    """Paper Fig. 2(a): a primitive grid plane, the primitive samples on the cube's (001) plane, the cube's plane.

    ``cube`` is ``to_conventional(prim, ...)``. All three panels are in Å with one
    asinh colour scale; dashed lines are the primitive cell (its face, and in the cube
    panels its edges projected on the (001) plane, dotted).
    """
    rotation = cube.meta["to_conventional"]["rotation"]
    norm = density_norm(prim, cube)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), constrained_layout=True)
    mesh = grid_plane(prim, axis=2, index=prim_index, ax=axes[0], norm=norm, cmap=cmap)
    axes[0].set_title(f"primitive grid plane i3 = {prim_index}\n"
                      f"(spanned by a1, a2; {prim.shape[0]}×{prim.shape[1]} points)", fontsize=10)
    height = cube_index / cube.shape[2]
    if primitive_samples_on_cube_plane(prim, ax=axes[1], height=height, norm=norm, cmap=cmap) is None:
        axes[1].text(0.5, 0.5, "no primitive grid point\nlies in this plane", ha="center", transform=axes[1].transAxes)
    primitive_outline_on_cube(axes[1], prim, rotation)
    axes[1].set_title(f"stored values on the cube's plane z = {height * cube.lattice[2, 2]:.2f} Å\n"
                      "(primitive grid points in it, each drawn as its Voronoi cell)", fontsize=10)
    grid_plane(cube, axis=2, index=cube_index, ax=axes[2], norm=norm, cmap=cmap, outline=False)
    primitive_outline_on_cube(axes[2], prim, rotation)
    axes[2].set_title(f"conventional cube, plane z = {height * cube.lattice[2, 2]:.2f} Å\n"
                      f"({cube.shape[0]}×{cube.shape[1]} grid, {cube.meta['to_conventional']['method']})", fontsize=10)
    for ax in axes[1:]:
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
    fig.colorbar(mesh, ax=axes, label="ρ (e/Å³), asinh scale", shrink=0.9, ticks=_asinh_ticks(norm), format="%g")
    if title:
        fig.suptitle(title)
    return fig


def renormalization(before: ECDField, after: ECDField, axis: int = 2, index: int | None = None,
                    title: str | None = None):
    """Paper Fig. 2(b): a grid plane through the negative region before and after, and the change (e/Å³).

    ``index`` defaults to the plane holding the most negative voxel of ``before``.
    Negative densities are blue (diverging asinh scale centred on 0).
    """
    if index is None:
        index = int(np.unravel_index(np.argmin(before.rho), before.shape)[axis])
    diff = after.rho - before.rho
    norm = density_norm(before, after, symmetric=True)
    dnorm = density_norm(diff, linear_width=0.05, symmetric=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
    m0 = grid_plane(before, axis=axis, index=index, ax=axes[0], norm=norm, cmap="RdBu_r")
    grid_plane(after, axis=axis, index=index, ax=axes[1], norm=norm, cmap="RdBu_r")
    m2 = grid_plane(before, axis=axis, index=index, ax=axes[2], norm=dnorm, cmap="PuOr_r", values=diff)
    plane = np.take(before.rho, index, axis=axis)
    axes[0].set_title(f"before: {int((plane < 0).sum())} negative voxels in this plane\nmin {plane.min():.3g} e/Å³",
                      fontsize=10)
    plane_after = np.take(after.rho, index, axis=axis)
    axes[1].set_title(f"after remove_negative\nmin {plane_after.min():.3g} e/Å³", fontsize=10)
    axes[2].set_title("change (after − before)", fontsize=10)
    fig.colorbar(m0, ax=axes[:2], label="ρ (e/Å³), asinh scale", shrink=0.9, ticks=_asinh_ticks(norm), format="%g")
    fig.colorbar(m2, ax=axes[2], label="Δρ (e/Å³), asinh scale", shrink=0.9, ticks=_asinh_ticks(dnorm), format="%g")
    if title:
        fig.suptitle(title)
    return fig


__all__ += ["plotly_renderer", "PLOTLY_RENDERER"]

#: Name of the plotly renderer registered by :func:`plotly_renderer`.
PLOTLY_RENDERER = "leanecd"


def _page_script_renderer():
    """A text/html renderer that loads nothing: neither plotly.js nor MathJax.

    The page showing the figure must provide ``window.Plotly``; the book loads its
    own copy of plotly.js (the one in the plotly package) on every page.
    """
    class PageScriptRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            html = to_html(fig_dict, include_plotlyjs=False, include_mathjax=False, full_html=False,
                           default_width="100%", default_height=525, validate=False)
            return {"text/html": html}

    return PageScriptRenderer()


def plotly_renderer() -> str:
    """Register the book's plotly renderer and return the renderer string to use.

    ``pio.renderers.default = plots.plotly_renderer()`` shows figures with nothing
    loaded from the internet: JupyterLab, Notebook 7 and VS Code draw the
    ``application/vnd.plotly.v1+json`` output themselves, and the book's HTML pages
    draw the ``text/html`` one with the plotly.js they serve. On Google Colab, which
    draws neither, it returns plotly's ``"colab"`` renderer.
    """
    if "google.colab" in sys.modules:
        return "colab"
    if PLOTLY_RENDERER not in pio.renderers:
        pio.renderers[PLOTLY_RENDERER] = _page_script_renderer()
    return f"plotly_mimetype+{PLOTLY_RENDERER}"
