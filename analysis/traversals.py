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

from analysis.plots import NothingToDraw
from workers.trial import RestartConfig

TRAVERSAL_STEPS = 7
TRAVERSAL_RANGE = 2.5  # latent values in prior standard deviations: -2.5 .. 2.5, others held at 0


def load_saved_model(config: dict, state_uri: str):  # noqa: ANN201 - a workers.models.vae.SeedView
    """One saved restart as a model: rebuilt from its `config` with the trainer's builder, weights loaded with
    `weights_only=True`."""
    from workers.checkpoint import load_torch
    from workers.data.catalog import DATASETS
    from workers.models.vae import BatchedVAE

    vae = BatchedVAE(RestartConfig.from_dict(config), DATASETS[config["dataset"]].observation_shape)
    return vae.load_seed(load_torch(state_uri, weights_only=True))


def traversal_metric(runs: pd.DataFrame, metric: str = "mig") -> str:
    """The metric the best and worst restart are picked by: `metric`, or DS where `metric` is not recorded."""
    if metric not in runs or runs[metric].isna().all():
        return "ds" if "ds" in runs and runs["ds"].notna().any() else metric
    return metric


def saved_best_worst(runs: pd.DataFrame, study_uri: str, metric: str) -> tuple[tuple[pd.Series, pd.Series], list[str]]:
    """The best and worst restart (`pick_best_worst`) and their saved state-dict URIs; NothingToDraw says why
    there are none."""
    from workers.store.layout import filesystem, model_uri

    picked = pick_best_worst(runs, metric)
    if picked is None:
        raise NothingToDraw(f"traversals need at least two restarts of a group with {metric} recorded")
    uris = []
    for row in picked:
        uri = model_uri(study_uri, row["run_key"], int(row["epoch"]))
        fs, path = filesystem(uri)
        if fs.get_file_info(path).type.name == "NotFound":
            raise NothingToDraw(f"no saved checkpoint for restart {row['run_key']} at epoch {int(row['epoch'])}\n"
                                  f"(expected {uri}); traversals are drawn only from saved models")
        uris.append(uri)
    return picked, uris


def decode_traversal(config: dict, state_uri: str, steps: int = TRAVERSAL_STEPS,
                     span: float = TRAVERSAL_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """Decoded traversals of one saved restart: (values (steps,), outputs (d, steps, *obs_shape)).

    Latent j sweeps `values` while the other latents stay at 0 (the prior mean).
    """
    import torch

    model = load_saved_model(config, state_uri)
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
    title = f"Latent traversals: best vs worst restart by {metric.upper()}"
    metric = traversal_metric(runs, metric)
    picked, uris = saved_best_worst(runs, study_uri, metric)
    decoded = [decode_traversal(config_of(row["run_key"]), uri) for row, uri in zip(picked, uris, strict=True)]
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


def top_two_latents(row: pd.Series, d: int) -> tuple[int, int]:
    """The two latents a 2-d traversal spans: the two with the largest KL (`kl_per_dim`), else 0 and 1."""
    kl = row.get("kl_per_dim") if hasattr(row, "get") else None
    if isinstance(kl, list | tuple | np.ndarray) and len(kl) == d and d >= 2:
        order = np.argsort(-np.nan_to_num(np.asarray(kl, dtype=float), nan=-1.0), kind="stable")
        return int(order[0]), int(order[1])
    return 0, min(1, d - 1)


def decode_traversal_2d(config: dict, state_uri: str, latents: tuple[int, int], steps: int = TRAVERSAL_STEPS,
                        span: float = TRAVERSAL_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """Decoded 2-d traversal of one saved restart over `latents` (a, b): (values (steps,), outputs
    (steps_a, steps_b, *obs_shape)); the other latents stay at 0 (the prior mean)."""
    import torch

    model = load_saved_model(config, state_uri)
    values = np.linspace(-span, span, steps)
    z = torch.zeros(steps, steps, model.latent_dim)
    grid = torch.as_tensor(values, dtype=torch.float32)
    z[:, :, latents[0]] = grid[:, None]
    z[:, :, latents[1]] = grid[None, :]
    with torch.no_grad():
        out = model.decode(z.reshape(steps * steps, model.latent_dim))
    return values, out.reshape(steps, steps, *out.shape[1:]).numpy()


def traversal_2d_figure(runs: pd.DataFrame, study_uri: str, config_of: Callable[[str], dict],
                        metric: str = "mig") -> Figure:
    """Two-dimensional traversals (the two latents with the largest KL) of the same best and worst restart as
    `traversal_figure`: images as a mosaic, vector data as the decoded grid's iso-lines in its first two
    output dimensions — straight, crossing lines for a cartesian code, rays and circles for a polar one."""
    title = f"2-d latent traversals: best vs worst restart by {metric.upper()}"
    metric = traversal_metric(runs, metric)
    picked, uris = saved_best_worst(runs, study_uri, metric)
    decoded = []
    for row, uri in zip(picked, uris, strict=True):
        config = config_of(row["run_key"])
        if int(config["latent_dim"]) < 2:
            raise NothingToDraw("a 2-d traversal needs at least two latents")
        latents = top_two_latents(row, int(config["latent_dim"]))
        decoded.append((latents, *decode_traversal_2d(config, uri, latents)))
    return _draw_2d(picked, decoded, metric, title)


def _draw_2d(picked: tuple[pd.Series, pd.Series], decoded: list[tuple[tuple[int, int], np.ndarray, np.ndarray]],
             metric: str, title: str) -> Figure:
    import matplotlib.pyplot as plt

    image = decoded[0][2].ndim == 5  # (steps, steps, C, H, W)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.4), squeeze=False)
    for side, (row, ((a, b), _, out)) in enumerate(zip(picked, decoded, strict=True)):
        ax = axes[0, side]
        steps = out.shape[0]
        if image:
            tiles = [np.concatenate([np.moveaxis(out[i, j], 0, -1) for j in range(steps)], axis=1)
                     for i in range(steps)]
            ax.imshow(np.concatenate(tiles, axis=0).squeeze(), cmap="gray", vmin=0, vmax=1)
            ax.set_xlabel(f"z{b}")
            ax.set_ylabel(f"z{a}")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            flat = out.reshape(steps, steps, -1)
            if flat.shape[-1] < 2:
                ax.text(0.5, 0.5, "one output dimension: nothing to draw in 2-d", ha="center", transform=ax.transAxes)
            else:
                for i in range(steps):
                    ax.plot(flat[i, :, 0], flat[i, :, 1], color="tab:blue", marker=".", lw=1)  # z_a fixed
                    ax.plot(flat[:, i, 0], flat[:, i, 1], color="tab:orange", marker=".", lw=1)  # z_b fixed
                ax.set_xlabel("decoded x0")
                ax.set_ylabel("decoded x1")
                ax.grid(alpha=0.3)
        ax.set_title(f"{'best' if side == 0 else 'worst'} {row['run_key'][:8]} ({metric}={row[metric]:.3f}): "
                     f"z{a} × z{b}", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
