"""Latent traversals of the best and worst restart of a group, from their saved checkpoints (Figs. 4.10/4.11).

The model is rebuilt from the row's `config` JSON with the trainer's own builder (`workers.models.vae`),
and the state dict `<study_uri>/models/<run_key>/e<epoch>.pt` is loaded with `weights_only=True`. When
no checkpoint was saved, the figure says so rather than drawing anything made up.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.plots import message_figure

TRAVERSAL_STEPS = 7
TRAVERSAL_RANGE = 2.5  # latent values in prior standard deviations: -2.5 .. 2.5, others held at 0


def decode_traversal(config: dict, state_uri: str, steps: int = TRAVERSAL_STEPS,
                     span: float = TRAVERSAL_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """Decoded traversals of one saved restart: (values (steps,), outputs (d, steps, *obs_shape)).

    Latent j sweeps `values` while the other latents stay at 0 (the prior mean).
    """
    import torch

    from workers.checkpoint import load_torch
    from workers.data.catalog import DATASETS
    from workers.models.vae import BatchedVAE
    from workers.trial import RestartConfig

    state = load_torch(state_uri, weights_only=True)
    vae = BatchedVAE(RestartConfig.from_dict(config), DATASETS[config["dataset"]].observation_shape)
    model = vae.load_seed(state)
    d = model.latent_dim
    values = np.linspace(-span, span, steps)
    z = torch.zeros(d, steps, d)
    for j in range(d):
        z[j, :, j] = torch.as_tensor(values, dtype=torch.float32)
    with torch.no_grad():
        out = model.decode(z.reshape(d * steps, d))
    return values, out.reshape(d, steps, *out.shape[1:]).numpy()


def pick_best_worst(runs: pd.DataFrame, metric: str = "mig") -> tuple[pd.Series, pd.Series] | None:
    """Best and worst restart by `metric` within the group (config_key) where the metric spreads most."""
    d = runs.dropna(subset=[metric])
    sizes = d.groupby("config_key")[metric].agg(["size", "min", "max"])
    sizes = sizes[sizes["size"] >= 2]
    if sizes.empty:
        return None
    key = (sizes["max"] - sizes["min"]).idxmax()
    g = d[d["config_key"] == key].sort_values(metric, kind="stable")
    return g.iloc[-1], g.iloc[0]


def traversal_figure(runs: pd.DataFrame, study_uri: str, config_of: Callable[[str], dict],
                     metric: str = "mig") -> Figure:
    """Traversals of the best and worst restart (by `metric`) of the most spread group, side by side.

    config_of: run_key -> the restart's config (e.g. `functools.partial(frames.restart_config, con)`).
    """
    from workers.store.layout import filesystem, model_uri

    title = f"Latent traversals: best vs worst restart by {metric.upper()}"
    if metric not in runs or runs[metric].isna().all():
        metric = "ds" if "ds" in runs and runs["ds"].notna().any() else metric
    picked = pick_best_worst(runs, metric)
    if picked is None:
        return message_figure(f"traversals need at least two restarts of a group with {metric} recorded", title)
    decoded = []
    for row in picked:
        uri = model_uri(study_uri, row["run_key"], int(row["epoch"]))
        fs, path = filesystem(uri)
        if fs.get_file_info(path).type.name == "NotFound":
            return message_figure(f"no saved checkpoint for restart {row['run_key']} at epoch {int(row['epoch'])}\n"
                                  f"(expected {uri}); traversals are drawn only from saved models", title)
        decoded.append(decode_traversal(config_of(row["run_key"]), uri))
    return _draw(picked, decoded, metric, title)


def _draw(picked: tuple[pd.Series, pd.Series], decoded: list[tuple[np.ndarray, np.ndarray]], metric: str,
          title: str) -> Figure:
    import matplotlib.pyplot as plt

    values, first = decoded[0]
    d, steps = first.shape[:2]
    image = first.ndim == 5  # (d, steps, C, H, W)
    if image:
        fig, axes = plt.subplots(d, 2 * steps + 1, figsize=(0.9 * (2 * steps + 1), 0.95 * d + 0.8), squeeze=False)
        for a in axes.flat:
            a.axis("off")
        for side, (row, (_, out)) in enumerate(zip(picked, decoded, strict=True)):
            for j in range(d):
                for s in range(steps):
                    img = np.moveaxis(out[j, s], 0, -1)
                    axes[j, side * (steps + 1) + s].imshow(img.squeeze(), cmap="gray", vmin=0, vmax=1)
            axes[0, side * (steps + 1)].set_title(f"{'best' if side == 0 else 'worst'} {row['run_key'][:8]} "
                                                  f"{metric}={row[metric]:.3f}", fontsize=8, loc="left")
    else:
        fig, axes = plt.subplots(2, d, figsize=(3.2 * d, 5.2), squeeze=False)
        for side, (row, (vals, out)) in enumerate(zip(picked, decoded, strict=True)):
            out = out.reshape(d, steps, -1)
            for j in range(d):
                ax = axes[side, j]
                for c in range(out.shape[-1]):
                    ax.plot(vals, out[j, :, c], marker=".", label=f"x{c}")
                ax.set_title(f"{'best' if side == 0 else 'worst'} {row['run_key'][:8]} ({metric}="
                             f"{row[metric]:.3f}): z{j}", fontsize=8)
                ax.set_xlabel(f"z{j} (others 0)")
                ax.grid(alpha=0.3)
            axes[side, 0].set_ylabel("decoded output")
        axes[0, -1].legend(fontsize=7, ncol=max(1, math.ceil(out.shape[-1] / 4)))
    fig.suptitle(title)
    fig.tight_layout()
    return fig
