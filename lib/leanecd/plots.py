"""Figures of the book: field slices, 3-D views, dataset histograms.

Static figures use matplotlib; interactive ones use plotly. Functions return the
figure and never call ``show()``, so notebooks and scripts decide what to do.
"""

from __future__ import annotations

import numpy as np

from .io import ECDField

__all__ = ["field_slices", "field_isosurface", "label_histograms", "spacegroup_bars"]


def field_slices(field: ECDField, index: int | None = None, cmap: str = "viridis", title: str | None = None):
    """Three central slices of ``field.rho`` (e/Å³), one per pair of grid axes.

    For a non-orthogonal (primitive) cell the slices are planes of the grid, drawn
    in grid coordinates: the axes are labelled with the lattice vectors they follow.
    """
    import matplotlib.pyplot as plt

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
    import plotly.graph_objects as go

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
    import matplotlib.pyplot as plt

    names = {"bulk_modulus_GPa": "bulk modulus (GPa)", "energy_per_atom_eV": "total energy (eV/atom)"}
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 3.5), constrained_layout=True)
    for ax, col in zip(np.atleast_1d(axes), columns):
        ax.hist(table[col], bins=bins, color="tab:blue", edgecolor="white")
        ax.set_xlabel(names.get(col, col))
        ax.set_ylabel("compounds")
    return fig


def spacegroup_bars(table):
    """Compounds per space group and number of elements (paper Fig. 1a)."""
    import matplotlib.pyplot as plt

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
