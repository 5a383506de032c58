"""Figures of the results (paper §4, Figs. 5–6): parity plots, per-compound error
histograms and learning curves, each model in its colour from :mod:`leanecd.registry`.

Functions return the figure (or the axes they drew on) and never call ``show()``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.colors import to_hex
from matplotlib.ticker import LogFormatter, NullFormatter, ScalarFormatter

from . import registry
from .metrics import fraction_above, fraction_below, mae, per_sample_nmae
from .registry import model_label, target_label, target_unit

__all__ = ["parity_plot", "parity_plotly", "nmae_histogram", "model_color", "learning_curve"]

_SPLIT_STYLE = {"train": ("tab:blue", "train (final model)"), "test": ("tab:red", "test"),
                "cv": ("tab:green", "CV (out-of-fold)")}


def _predictions_of(predictions, target, split):
    p = predictions[(predictions["target"] == target) & (predictions["split"] == split)]
    return p


def parity_plot(predictions, target: str, ax=None, splits=("train", "test"), title: str | None = None):
    """Paper Fig. 5: predicted vs DFT value of ``target``, test (red) over train (blue).

    ``predictions``: the long-format DataFrame of a run (:func:`leanecd.runs.read_run`).
    The legend gives each split's MAE (target units) and size. Returns the Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4.4), constrained_layout=True)
    lo, hi = np.inf, -np.inf
    for split in splits:
        p = _predictions_of(predictions, target, split)
        if p.empty:
            continue
        color, name = _SPLIT_STYLE.get(split, ("k", split))
        ax.scatter(p["y_true"], p["y_pred"], s=22 if split == "test" else 14, color=color, alpha=0.75,
                   edgecolor="white" if split == "test" else "none", linewidth=0.5, zorder=3 if split == "test" else 2,
                   label=f"{name}: n={len(p)}, MAE {float(mae(p['y_true'], p['y_pred'])):.3g}")
        lo = min(lo, p["y_true"].min(), p["y_pred"].min())
        hi = max(hi, p["y_true"].max(), p["y_pred"].max())
    if np.isfinite(lo):
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=1, ls="--", zorder=1)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    label = target_label(target)
    ax.set_xlabel(f"DFT {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.set_aspect("equal", adjustable="box")
    ax.legend(fontsize="small", loc="upper left")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def parity_plotly(predictions, target: str, table=None, splits=("train", "test"), title: str | None = None):
    """Interactive parity plot: hover shows the compound id, formula and prototype (from ``table``),
    values and error."""
    unit = target_unit(target)
    fig = go.Figure()
    lo, hi = np.inf, -np.inf
    for split in splits:
        p = _predictions_of(predictions, target, split)
        if p.empty:
            continue
        color, name = _SPLIT_STYLE.get(split, ("black", split))

        color = to_hex(color)  # plotly wants CSS colours, not matplotlib's "tab:" names
        if table is not None:
            info = table.reindex(p["id"])
            formula = info["formula"].fillna("?").astype(str).to_numpy() if "formula" in info else ["?"] * len(p)
            proto = info["prototype"].fillna("?").astype(str).to_numpy() if "prototype" in info else ["?"] * len(p)
        else:
            formula, proto = ["?"] * len(p), ["?"] * len(p)
        custom = np.stack([p["id"].to_numpy(), formula, proto, (p["y_pred"] - p["y_true"]).to_numpy()], axis=1)
        fig.add_trace(go.Scatter(
            x=p["y_true"], y=p["y_pred"], mode="markers", name=name, customdata=custom,
            marker=dict(color=color, size=9 if split == "test" else 7, opacity=0.8,
                        line=dict(width=0.5, color="white")),
            hovertemplate=("<b>%{customdata[0]}</b><br>%{customdata[1]} (%{customdata[2]})<br>"
                           f"DFT %{{x:.4g}} {unit}<br>predicted %{{y:.4g}} {unit}<br>"
                           f"error %{{customdata[3]:.3g}} {unit}<extra>{name}</extra>"),
        ))
        lo = min(lo, p["y_true"].min(), p["y_pred"].min())
        hi = max(hi, p["y_true"].max(), p["y_pred"].max())
    if np.isfinite(lo):
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color="gray", dash="dash"),
                                 name="y = x", hoverinfo="skip"))
    label = target_label(target)
    fig.update_layout(title=title, xaxis_title=f"DFT {label}", yaxis_title=f"predicted {label}",
                      width=560, height=500, margin=dict(l=60, r=20, t=50, b=50))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def nmae_histogram(predictions, target: str, split: str = "test", ax=None, bins=None, title: str | None = None):
    """Paper Fig. 6: histogram of the per-sample NMAE (%) of ``split``, with the 10 % and 30 % marks.

    Per-sample NMAE = |y − ŷ| / |mean(y over the split)| × 100
    (:func:`leanecd.metrics.per_sample_nmae`). The legend gives the shares below 10 %
    and above 30 % (the numbers the paper quotes). Returns the Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 3.4), constrained_layout=True)
    p = _predictions_of(predictions, target, split)
    v = per_sample_nmae(p["y_true"], p["y_pred"]) if len(p) else np.array([])
    if bins is None:
        top = max(40.0, float(np.nanmax(v)) if v.size else 40.0)
        bins = np.arange(0.0, top + 5.0, 5.0) if top <= 200 else 40
    ax.hist(v, bins=bins, color="tab:blue", edgecolor="white")
    below, above = fraction_below(v, 10.0), fraction_above(v, 30.0)
    ax.axvline(10, color="tab:green", ls="--", lw=1, label=f"< 10 %: {100 * below:.0f} % of compounds")
    ax.axvline(30, color="tab:red", ls="--", lw=1, label=f"> 30 %: {100 * above:.0f} % of compounds")
    ax.set_xlabel(f"per-compound NMAE (%), {target_label(target)}")
    ax.set_ylabel({"test": "test compounds", "cv": "compounds (out-of-fold CV)",
                   "train": "training compounds"}.get(split, f"{split} compounds"))
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title, fontsize=10)
    return ax



def model_color(model: str) -> str:
    """The colour of ``model`` in every figure (its :data:`leanecd.registry.MODELS` entry; black if unknown)."""
    m = registry.MODELS.get(model)
    return m.color if m else "black"


def learning_curve(df, title: str | None = None):
    """Test MAE against the number of training compounds, log–log, one panel per target.

    ``df``: the frame of :func:`leanecd.tables.learning_curve` and/or
    :func:`leanecd.baselines.learning_curve` (epochs ``None``); one line per model and
    epochs in each panel, in the model's colour (:func:`model_color`), a marker per
    run, the x ticks at the training-set sizes. A collapsed run (column ``collapsed``:
    it predicts about one value) is drawn as a cross and no line passes through it.
    On log–log axes a power law MAE ∝ n^(−a) is a straight line. (Not to be confused
    with :func:`leanecd.train.plot_learning_curves`, the loss against epoch.)
    Returns the Figure.
    """
    class _PlainLogFormatter(LogFormatter):
        """Labels the ticks LogFormatter labels, as plain numbers (0.6, not 6e-01)."""

        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    targets = list(dict.fromkeys(df["target"]))
    fig, axes = plt.subplots(1, max(1, len(targets)), figsize=(5.2 * max(1, len(targets)), 3.8),
                             constrained_layout=True, squeeze=False)
    for ax, t in zip(axes[0], targets):
        d = df[df["target"] == t]
        for k, ((m, epochs), line) in enumerate(d.groupby(["model", "epochs"], sort=True, dropna=False)):
            line = line.sort_values("n_train")
            collapsed = (line["collapsed"].fillna(False).astype(bool) if "collapsed" in line
                         else pd.Series(False, line.index))
            trained = "" if pd.isna(epochs) else f", {int(epochs)} epochs"  # a baseline has no epochs
            color = model_color(m)
            ok = line[~collapsed]
            ax.plot(ok["n_train"], ok["test_mae"], marker="o", color=color, ls="-" if k % 2 == 0 else "--",
                    label=f"{model_label(m)}{trained} (n test = {line['n_test'].iloc[0]})")
            if collapsed.any():
                bad = line[collapsed]
                ax.plot(bad["n_train"], bad["test_mae"], ls="none", marker="x", ms=9, mew=2, color=color,
                        label=f"{model_label(m)}{trained}: collapsed (predicts about one value)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = sorted(set(int(n) for n in d["n_train"]))
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))
        ax.set_xlabel("training compounds")
        ax.set_ylabel(f"test MAE, {target_label(t)}")
        ax.legend(fontsize="small")
    if not targets:
        axes[0, 0].text(0.5, 0.5, "no learning-curve runs", ha="center", va="center")
        axes[0, 0].set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


