"""Figures over restarts (matplotlib, Agg backend): each function takes a DataFrame and returns a Figure.

Inputs are rows of the `runs` / `checkpoints` views (one row per restart, or per restart and epoch).
`figure_png(fig)` turns a figure into PNG bytes (and closes it). Nothing here reads storage.

    metric_histograms      histograms of a metric over restarts, one panel per group (thesis Fig. 4.8)
    scatter_dto_vs_metric  DtO vs a disentanglement score, coloured by epoch or group (paper Fig. 4)
    beta_line_search       mean and spread of metrics over beta, per (dataset, model) (thesis Fig. 3.7)
    violins_over           distributions of a metric over the values of a hyperparameter (Figs. 4.4–4.7)
    per_factor_mig         MIG per ground-truth factor, mean ± std over restarts per group (Fig. 4.9)
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis.groups import relabel  # noqa: E402

LABELS = {"dto": "DtO (distance to orthogonality)", "mig": "MIG", "ds": "DS (disentanglement score)",
          "dto_active": "DtO (active latents)", "recon": "reconstruction loss", "kl": "KL",
          "active_units": "active units", "beta": "β"}


def label(col: str) -> str:
    return LABELS.get(col, col)


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of `fig` (laid out by the function that drew it; one render pass); the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


class NothingToDraw(ValueError):
    """A figure has no data to draw: it is left out (the message says why), never drawn as an empty panel."""


def message_figure(text: str, title: str = "") -> Figure:
    """A figure that states why a figure could not be drawn (never an empty or faked plot)."""
    fig, ax = plt.subplots(figsize=(6, 2.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11)
    if title:
        ax.set_title(title)
    return fig


def group_labels(df: pd.DataFrame, omit: tuple[str, ...] = ()) -> pd.Series:
    """Each row's group label (`analysis.groups`: its configuration, by the fields that differ); with
    `omit`, relabelled among df's configurations without those fields (panels of a figure drawn over them)."""
    if not omit and "group" in df:
        return df["group"]
    return relabel(df, omit)


def _grid(n: int, width: float = 3.6, height: float = 2.8) -> tuple[Figure, np.ndarray]:
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat


def metric_histograms(df: pd.DataFrame, metric: str, bins: int = 20, max_panels: int = 24) -> Figure:
    """Histogram of `metric` over restarts, one panel per group (shared x range)."""
    d = df.dropna(subset=[metric]) if metric in df else df.iloc[:0]
    if d.empty:
        raise NothingToDraw(f"no values of {metric} recorded")
    labels = group_labels(d)
    groups = list(dict.fromkeys(labels))[:max_panels]
    lo, hi = float(d[metric].min()), float(d[metric].max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, bins + 1)
    fig, axes = _grid(len(groups))
    for ax, g in zip(axes, groups, strict=False):
        v = d.loc[labels == g, metric].to_numpy(float)
        ax.hist(v, bins=edges, color="#3b75af", edgecolor="white")
        ax.set_title(f"{g} (n={len(v)})", fontsize=9)
        ax.set_xlabel(label(metric))
        ax.set_ylabel("restarts")
    fig.suptitle(f"{label(metric)} over restarts")
    fig.tight_layout()
    return fig


def scatter_dto_vs_metric(df: pd.DataFrame, metric: str, color_by: str = "epoch", title: str = "") -> Figure:
    """DtO (x) vs `metric` (y), one point per row; colour by 'epoch' (colour bar) or 'group' (configuration)."""
    d = df.dropna(subset=["dto", metric]) if {"dto", metric} <= set(df) else df.iloc[:0]
    title = title or f"DtO vs {label(metric)}"
    if d.empty:
        raise NothingToDraw(f"no rows with both DtO and {metric}")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    if color_by == "epoch":
        sc = ax.scatter(d["dto"], d[metric], c=d["epoch"], cmap="viridis", s=14, alpha=0.8)
        fig.colorbar(sc, ax=ax, label="epoch")
    else:
        labels = group_labels(d)
        for g in dict.fromkeys(labels):
            m = labels == g
            ax.scatter(d.loc[m, "dto"], d.loc[m, metric], s=18, alpha=0.8, label=g)
        ax.legend(fontsize=8, loc="best")
    ax.set_xlabel(label("dto"))
    ax.set_ylabel(label(metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def beta_line_search(df: pd.DataFrame, metrics: tuple[str, ...] = ("ds", "dto")) -> Figure:
    """Mean of each metric over restarts vs β (log axis), with the 25–75% band, one line per configuration
    but β."""
    d = df.dropna(subset=["beta"])
    metrics = tuple(m for m in metrics if m in d and d[m].notna().any())
    if d.empty or not metrics or d["beta"].nunique() < 2:
        raise NothingToDraw("a β line search needs at least two β values with recorded metrics")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
    labels = group_labels(d, omit=("beta",))
    for ax, m in zip(axes.flat, metrics, strict=True):
        for g in dict.fromkeys(labels):
            s = d[labels == g].groupby("beta")[m]
            stats = pd.DataFrame({"mean": s.mean(), "q25": s.quantile(0.25), "q75": s.quantile(0.75)}).dropna()
            if stats.empty:
                continue
            ax.plot(stats.index, stats["mean"], marker="o", label=g)
            ax.fill_between(stats.index, stats["q25"], stats["q75"], alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("β")
        ax.set_ylabel(label(m))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("β line search: mean over restarts, band = 25–75% quantiles")
    fig.tight_layout()
    return fig


def violins_over(df: pd.DataFrame, metric: str, hparam: str = "beta") -> Figure:
    """Violin of `metric` over restarts for each value of `hparam`, one panel per configuration but `hparam`."""
    d = df.dropna(subset=[metric, hparam]) if {metric, hparam} <= set(df) else df.iloc[:0]
    if d.empty or d[hparam].nunique() < 2:
        raise NothingToDraw(f"no two values of {hparam} with {metric} recorded")
    labels = group_labels(d, omit=(hparam,))
    groups = list(dict.fromkeys(labels))
    fig, axes = _grid(len(groups), width=4.2, height=3.2)
    for ax, g in zip(axes, groups, strict=False):
        sub = d[labels == g]
        values = sorted(sub[hparam].unique())
        data = [sub.loc[sub[hparam] == v, metric].to_numpy(float) for v in values]
        pos = np.arange(len(values))
        big = [i for i, x in enumerate(data) if len(x) >= 2 and np.ptp(x) > 0]
        if big:
            ax.violinplot([data[i] for i in big], positions=pos[big], showmedians=True)
        for i, x in enumerate(data):
            if len(x) <= 200:  # individual restarts visible; beyond that the violin says it
                ax.scatter(np.full(len(x), pos[i]), x, s=6, color="k", alpha=0.4)
        ax.set_xticks(pos, [f"{v:g}" if isinstance(v, float) else str(v) for v in values], rotation=45)
        ax.set_xlabel(label(hparam))
        ax.set_ylabel(label(metric))
        ax.set_title(g, fontsize=9)
    fig.suptitle(f"{label(metric)} over {label(hparam)}")
    fig.tight_layout()
    return fig


def per_factor_mig(df: pd.DataFrame, max_panels: int = 12) -> Figure:
    """Bar per ground-truth factor: mean ± std over restarts of `mig_per_factor`, one panel per group."""
    d = df[df["mig_per_factor"].str.len() > 0] if "mig_per_factor" in df else df.iloc[:0]
    if d.empty:
        raise NothingToDraw("no per-factor MIG recorded")
    labels = group_labels(d)
    groups = list(dict.fromkeys(labels))[:max_panels]
    fig, axes = _grid(len(groups))
    for ax, g in zip(axes, groups, strict=False):
        vals = d.loc[labels == g, "mig_per_factor"]
        k = int(vals.str.len().max())
        flat = np.concatenate(vals.to_numpy()).astype(float)
        if flat.size == k * len(vals):  # every restart has all k factors (the usual case)
            arr = flat.reshape(len(vals), k)
        else:
            arr = np.full((len(vals), k), np.nan)
            for i, v in enumerate(vals):
                arr[i, : len(v)] = np.asarray(v, float)
        mean, std = np.nanmean(arr, axis=0), np.nanstd(arr, axis=0)
        ax.bar(np.arange(k), mean, yerr=std, color="#c05a2c", capsize=3)
        ax.set_xticks(np.arange(k), [f"f{i}" for i in range(k)])
        ax.set_ylim(0, max(1.0, float(np.nanmax(mean + std))))
        ax.set_ylabel("MIG")
        ax.set_title(f"{g} (n={len(vals)})", fontsize=9)
    fig.suptitle("MIG per factor (mean ± std over restarts)")
    fig.tight_layout()
    return fig


MAX_CURVE_GROUPS = 12  # groups drawn in one training-curve figure (the rest are named in its title)


def _curve_groups(df: pd.DataFrame) -> tuple[list[tuple[str, pd.DataFrame]], str]:
    """[(label, rows)] of the first MAX_CURVE_GROUPS groups (config_key) and a note on those left out."""
    df = df.assign(_label=group_labels(df))
    groups = [(str(g["_label"].iloc[0]), g) for _, g in df.groupby("config_key", sort=False)]
    note = f" (first {MAX_CURVE_GROUPS} of {len(groups)} groups)" if len(groups) > MAX_CURVE_GROUPS else ""
    return groups[:MAX_CURVE_GROUPS], note


def training_curves(df: pd.DataFrame, columns: tuple[str, ...] = ("loss", "recon", "kl")) -> Figure:
    """Training loss, reconstruction and KL (training batch) against the step: per group the median over
    seeds and the 25–75% band (rows of `analysis.frames.trace_quantiles`); one panel per quantity."""
    if df.empty:
        return message_figure("no training trace recorded (train.trace_every)", "Training curves")
    groups, note = _curve_groups(df)
    fig, axes = plt.subplots(1, len(columns), figsize=(4.4 * len(columns), 3.6), squeeze=False)
    for ax, col in zip(axes[0], columns, strict=True):
        for name, g in groups:
            line, = ax.plot(g["step"], g[f"{col}_median"], lw=1.2, label=f"{name} (n={int(g['n'].max())})")
            ax.fill_between(g["step"], g[f"{col}_q25"], g[f"{col}_q75"], color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xlabel("training step")
        ax.set_title(f"{label(col)} (training batch)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Training curves: median over seeds, 25–75% band{note}")
    fig.tight_layout()
    return fig


def kl_per_latent_curves(df: pd.DataFrame) -> Figure:
    """KL of each latent against the step, one panel per group: latents ranked by their final KL within each
    seed, median over seeds and 25–75% band per rank (rows of `analysis.frames.trace_kl_ranks`). In the
    polarised regime the active latents keep a large KL and the passive ones fall to ~0."""
    title = "Per-latent KL during training\n(latents ranked by final KL)"
    if df.empty:
        return message_figure("no per-latent KL in the training trace (models without a posterior, or a trace\n"
                              "written before per-latent KL was recorded)", title)
    groups, note = _curve_groups(df)
    fig, axes = _grid(len(groups), 4.0, 3.0)
    for ax, (name, g) in zip(axes, groups, strict=False):
        for rank, r in g.groupby("latent_rank"):
            line, = ax.plot(r["step"], r["median"], lw=1.1, label=f"#{int(rank)}")
            ax.fill_between(r["step"], r["q25"], r["q75"], color=line.get_color(), alpha=0.2, lw=0)
        ax.set_title(f"{name} (n={int(g['n'].max())})", fontsize=8)
        ax.set_xlabel("training step")
        ax.set_ylabel("KL (nats)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2, title="latent by final KL", title_fontsize=6)
    fig.suptitle(title + note)
    fig.tight_layout()
    return fig
