"""Any stored restart opened up as figures (`orthosweep show`): what disentanglement_lib's `visualize_model`
draws, for one restart at one saved epoch.

    reconstructions   held-out points next to decode(encode(x))
    prior_samples     decoded draws z ~ N(0, I)
    traversals_1d     each active latent swept while the others stay at the codes of encoded held-out points
    traversal_2d      the two latents with the largest KL swept together around the first encoded point
    traversals.gif    the 1-d traversals as an animation (one frame per step), where Pillow can write one

Images (C, H, W) are drawn as pictures; vector observations (synth_lin, synth_nonlin) as their coordinates.
The codes and sweeps are pure functions of arrays (`active_latents`, `traversal_codes`, `sweep_values`); the
figures take decoded arrays and read nothing.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from workers.metrics.polarized import ACTIVE_SIGMA2, active_mask_mu

STEPS = 9  # values per traversal
SPAN = 2.5  # a VAE's latents sweep -SPAN..SPAN prior standard deviations
N_POINTS = 3  # encoded held-out points the 1-d traversals go around
N_RECON = 8
N_PRIOR = 64
FIGURES = ("reconstructions", "prior_samples", "traversals_1d", "traversal_2d")


def active_latents(mu: np.ndarray, post: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(active (d,) bool, score (d,) float) of an encoder on N points: mu (N, d) and its posterior
    ({} | {"logvar": (N, d)} | {"scale_tril": (N, d, d)}).

    With a posterior: active ⇔ E_x σ_j² < ACTIVE_SIGMA2 (the thesis's rule), score = the latent's mean KL to
    N(0, 1) in nats. Without (an autoencoder): active ⇔ std_x μ_j > 0.5 (paper eq. 30), score = std_x μ_j.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if "logvar" in post:
        sigma2 = np.exp(np.asarray(post["logvar"], dtype=np.float64))
    elif "scale_tril" in post:
        L = np.asarray(post["scale_tril"], dtype=np.float64)
        sigma2 = np.einsum("nij,nij->ni", L, L)  # diagonal of L Lᵀ
    else:
        return active_mask_mu(mu), mu.std(axis=0)
    kl = 0.5 * (mu**2 + sigma2 - np.log(sigma2) - 1.0)
    return sigma2.mean(axis=0) < ACTIVE_SIGMA2, kl.mean(axis=0)


def sweep_values(mu: np.ndarray, prior: bool, steps: int = STEPS, span: float = SPAN) -> np.ndarray:
    """(d, steps) values each latent sweeps: -span..span for a model with a N(0, I) prior; without one (an
    autoencoder) the 2nd..98th percentile of that latent's codes on the points mu (N, d)."""
    d = mu.shape[1]
    if prior:
        return np.tile(np.linspace(-span, span, steps), (d, 1))
    lo, hi = np.percentile(mu, [2, 98], axis=0)
    return np.linspace(lo, hi, steps).T


def traversal_codes(z0: np.ndarray, latents: list[int], values: np.ndarray) -> np.ndarray:
    """Codes of 1-d traversals: z0 (P, d) encoded points, `latents` (L,), values (d, steps) ->
    (P, L, steps, d), where [p, l, s] is z0[p] with latent latents[l] set to values[latents[l], s]."""
    P, d = z0.shape
    steps = values.shape[1]
    z = np.broadcast_to(z0[:, None, None, :], (P, len(latents), steps, d)).copy()
    for i, j in enumerate(latents):
        z[:, i, :, j] = values[j]
    return z


def grid_codes(z0: np.ndarray, pair: tuple[int, int], values: np.ndarray) -> np.ndarray:
    """Codes of a 2-d traversal: z0 (d,), latents (a, b), values (d, steps) -> (steps, steps, d), [i, k] being
    z0 with latent a at values[a, i] and latent b at values[b, k]."""
    a, b = pair
    steps = values.shape[1]
    z = np.broadcast_to(z0, (steps, steps, z0.shape[0])).copy()
    z[:, :, a] = values[a][:, None]
    z[:, :, b] = values[b][None, :]
    return z


def restart_views(restart: Any, *, n_points: int = N_POINTS, steps: int = STEPS, seed: int = 0) -> dict[str, bytes]:
    """File name -> bytes of every view of one `analysis.restart.SavedRestart`: four PNGs, plus
    traversals.gif where Pillow is installed. Held-out points: the first of the test split."""
    from analysis.plots import figure_png

    n_eval = max(N_RECON, n_points, min(2000, len(restart.dataset.split_indices("test"))))
    x = restart.heldout(n_eval)
    mu, post = restart.posterior(x)
    active, score = active_latents(mu, post)
    prior = restart.model.posterior != "none"
    order = [int(j) for j in np.argsort(-score, kind="stable")]
    shown = [j for j in order if active[j]] or order  # none active (e.g. before training): all of them
    values = sweep_values(mu, prior, steps)
    title = f"{restart.run_key} · {restart.config['model']} on {restart.config['dataset']} · epoch {restart.epoch}"
    image = x.ndim == 4
    recon = restart.decode(mu[:N_RECON])
    rng = np.random.default_rng(seed)
    samples = restart.decode(rng.standard_normal((N_PRIOR, mu.shape[1])).astype(np.float32))
    z1 = traversal_codes(mu[:n_points], shown, values)
    dec1 = restart.decode(z1.reshape(-1, mu.shape[1])).reshape(*z1.shape[:3], *x.shape[1:])
    note = "" if any(active) else " (no latent active: all shown)"
    out = {
        "reconstructions.png": figure_png(reconstruction_figure(x[:N_RECON], recon, image, x, title)),
        "prior_samples.png": figure_png(prior_figure(samples, x, image, prior, title)),
        "traversals_1d.png": figure_png(traversal_figure(dec1, shown, values, score, prior, image,
                                                         title + note, x)),
    }
    if mu.shape[1] >= 2:
        pair = (order[0], order[1])
        z2 = grid_codes(mu[0], pair, values)
        dec2 = restart.decode(z2.reshape(-1, mu.shape[1])).reshape(steps, steps, *x.shape[1:])
        out["traversal_2d.png"] = figure_png(grid_figure(dec2, pair, values, image, title, x, prior))
    else:
        from analysis.plots import message_figure

        out["traversal_2d.png"] = figure_png(message_figure("a 2-d traversal needs at least two latents", title))
    gif = traversal_gif(dec1, shown, values, image, x)
    if gif is not None:
        out["traversals.gif"] = gif
    return out


# ---- figures (decoded arrays in, matplotlib figures out) -----------------------------------------------

def _img(a: np.ndarray) -> np.ndarray:
    """(C, H, W) -> what imshow takes ((H, W) or (H, W, 3)), clipped to [0, 1]."""
    return np.clip(np.moveaxis(a, 0, -1).squeeze(), 0.0, 1.0)


def _show_mosaic(ax: Any, tiles: np.ndarray) -> None:
    """Draw (cols, rows, C, H, W) pictures as one image on `ax` (`_mosaic`: one imshow, not one axes each)."""
    ax.imshow(_mosaic(tiles), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def _pairs(dim: int) -> list[tuple[int, int]]:
    """Coordinate pairs a vector observation is drawn in (at most three panels)."""
    return [(0, 1), (0, 2), (1, 2)][: 3 if dim >= 3 else 1] if dim >= 2 else [(0, 0)]


def _coordinate_panels(data: np.ndarray) -> tuple[Figure, list[tuple[Any, tuple[int, int]]]]:
    """A row of panels, one per coordinate pair of vector observations, each with the held-out cloud `data`
    (N, D) in grey: (figure, [(axes, (a, b))])."""
    import matplotlib.pyplot as plt

    pairs = _pairs(data.shape[1])
    fig, axes = plt.subplots(1, len(pairs), figsize=(4 * len(pairs), 3.8), squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs, strict=True):
        ax.scatter(data[:, a], data[:, b], s=2, color="0.8", label="held-out points")
        ax.set_xlabel(f"x{a}")
        ax.set_ylabel(f"x{b}")
    return fig, list(zip(axes[0], pairs, strict=True))


def reconstruction_figure(x: np.ndarray, recon: np.ndarray, image: bool, data: np.ndarray, title: str) -> Figure:
    """Held-out points x (n, *obs) and their reconstructions (n, *obs): two rows of pictures, or for vectors
    each point joined to its reconstruction over the held-out cloud `data`."""
    import matplotlib.pyplot as plt

    if image:
        n = x.shape[0]
        fig, ax = plt.subplots(figsize=(1.3 * n, 3.0))
        _show_mosaic(ax, np.stack([x, recon], axis=1))
        ax.set_ylabel("held-out (top), reconstructed (bottom)", fontsize=8)
    else:
        fig, panels = _coordinate_panels(data)
        for ax, (a, b) in panels:
            for i in range(x.shape[0]):
                ax.plot([x[i, a], recon[i, a]], [x[i, b], recon[i, b]], color="0.4", lw=0.8)
            ax.scatter(x[:, a], x[:, b], s=18, color="tab:blue", label="x")
            ax.scatter(recon[:, a], recon[:, b], s=18, color="tab:orange", marker="x", label="decode(encode(x))")
        panels[0][0].legend(fontsize=7)
    fig.suptitle(f"Reconstructions of held-out points\n{title}", fontsize=9)
    fig.tight_layout()
    return fig


def prior_figure(samples: np.ndarray, data: np.ndarray, image: bool, prior: bool, title: str) -> Figure:
    """Decoded prior draws (n, *obs): a mosaic of pictures, or for vectors a scatter over the held-out cloud."""
    import matplotlib.pyplot as plt

    what = "Samples from the prior N(0, I)" + ("" if prior else " (an autoencoder has no prior: for comparison only)")
    if image:
        side = int(np.ceil(np.sqrt(samples.shape[0])))
        padded = np.concatenate([samples, np.ones((side * side - samples.shape[0], *samples.shape[1:]))])
        fig, ax = plt.subplots(figsize=(0.9 * side, 0.9 * side + 0.6))
        _show_mosaic(ax, padded.reshape(side, side, *samples.shape[1:]))
    else:
        fig, panels = _coordinate_panels(data)
        for ax, (a, b) in panels:
            ax.scatter(samples[:, a], samples[:, b], s=10, color="tab:green", label="decoded z ~ N(0, I)")
        panels[0][0].legend(fontsize=7)
    fig.suptitle(f"{what}\n{title}", fontsize=9)
    fig.tight_layout()
    return fig


def _value_label(values: np.ndarray, j: int) -> str:
    return f"z{j}: {values[j, 0]:+.2f} .. {values[j, -1]:+.2f}"


def traversal_figure(decoded: np.ndarray, latents: list[int], values: np.ndarray, score: np.ndarray, prior: bool,
                     image: bool, title: str, data: np.ndarray) -> Figure:
    """1-d traversals decoded (P, L, steps, *obs) around P encoded points for latents (L,): for images one
    row per (point, latent); for vectors one panel per latent with the decoded path of each point in the
    first two coordinates over the held-out cloud."""
    import matplotlib.pyplot as plt

    P, L, steps = decoded.shape[:3]
    what = "KL" if prior else "std of μ"
    if image:
        fig, axes = plt.subplots(1, P, figsize=(0.8 * steps * P + 1.0, 0.8 * L + 1.4), squeeze=False)
        for p in range(P):
            _show_mosaic(axes[0, p], np.swapaxes(decoded[p], 0, 1))  # rows: latents, columns: steps
            axes[0, p].set_title(f"around x{p}", fontsize=8)
        h = decoded.shape[-2]  # tile pitch in the mosaic: (h + gap) * scale
        axes[0, 0].set_yticks([i * (h + 2) * 2 + h for i in range(L)], [f"z{j}" for j in latents], fontsize=7)
    else:
        a, b = _pairs(data.shape[1])[0]
        fig, axes = plt.subplots(1, L, figsize=(3.8 * L, 3.8), squeeze=False)
        for i, j in enumerate(latents):
            ax = axes[0, i]
            ax.scatter(data[:, a], data[:, b], s=2, color="0.85")
            for p in range(P):
                path = decoded[p, i].reshape(steps, -1)
                line, = ax.plot(path[:, a], path[:, b], marker=".", lw=1, label=f"around x{p}")
                ax.scatter(path[0, a], path[0, b], s=25, color=line.get_color(), marker="<")
            ax.set_title(f"{_value_label(values, j)} ({what} {score[j]:.3g})", fontsize=8)
            ax.set_xlabel(f"x{a}")
            ax.set_ylabel(f"x{b}")
        axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"1-d traversals of the active latents around encoded held-out points\n{title}", fontsize=9)
    fig.tight_layout()
    return fig


def grid_figure(decoded: np.ndarray, pair: tuple[int, int], values: np.ndarray, image: bool, title: str,
                data: np.ndarray, prior: bool = True) -> Figure:
    """2-d traversal decoded (steps, steps, *obs) over latents `pair`: a mosaic of pictures, or for vectors
    the decoded grid's iso-lines in the first two coordinates (straight crossing lines for a cartesian code,
    rays and circles for a polar one)."""
    import matplotlib.pyplot as plt

    a, b = pair
    steps = decoded.shape[0]
    fig, ax = plt.subplots(figsize=(6, 6))
    if image:
        _show_mosaic(ax, np.swapaxes(decoded, 0, 1))  # rows: latent a, columns: latent b
        ax.set_xlabel(_value_label(values, b))
        ax.set_ylabel(_value_label(values, a))
    else:
        c0, c1 = _pairs(data.shape[1])[0]
        flat = decoded.reshape(steps, steps, -1)
        ax.scatter(data[:, c0], data[:, c1], s=2, color="0.85")
        for i in range(steps):
            ax.plot(flat[i, :, c0], flat[i, :, c1], color="tab:blue", marker=".", lw=1)  # latent a fixed
            ax.plot(flat[:, i, c0], flat[:, i, c1], color="tab:orange", marker=".", lw=1)  # latent b fixed
        ax.set_xlabel(f"x{c0}  (blue: z{a} fixed, orange: z{b} fixed)")
        ax.set_ylabel(f"x{c1}")
    largest = "largest KL" if prior else "largest spread of μ"
    ax.set_title(f"2-d traversal of z{a} × z{b} ({largest}) around the first encoded point\n{title}", fontsize=9)
    fig.tight_layout()
    return fig


def traversal_gif(decoded: np.ndarray, latents: list[int], values: np.ndarray, image: bool, data: np.ndarray,
                  ms_per_frame: int = 250) -> bytes | None:
    """An animated GIF of the 1-d traversals (one frame per step, back and forth), or None without Pillow.
    Images: a mosaic with one row per latent and one column per encoded point; vectors: one panel per latent
    with every path's current point moving along it."""
    try:
        from PIL import Image
    except ImportError:
        return None
    P, L, steps = decoded.shape[:3]
    order = list(range(steps)) + list(range(steps - 2, 0, -1))
    if image:
        frames = [Image.fromarray(_mosaic(decoded[:, :, s])) for s in order]
    else:
        frames = [Image.fromarray(rgb) for rgb in _vector_frames(decoded, latents, values, data, order)]
    frames = [f.convert("P", palette=Image.ADAPTIVE) for f in frames]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
    return buf.getvalue()


def _mosaic(tiles: np.ndarray, gap: int = 2, scale: int = 2) -> np.ndarray:
    """(P, L, C, H, W) pictures in [0, 1] -> one uint8 (rows, cols[, 3]) picture: a row per latent, a column
    per point, `gap` white pixels between tiles, every pixel repeated `scale` times each way."""
    P, L = tiles.shape[:2]
    imgs = [[_img(tiles[p, i]) for p in range(P)] for i in range(L)]
    h, w = imgs[0][0].shape[:2]
    extra = imgs[0][0].shape[2:]
    out = np.ones((L * (h + gap) - gap, P * (w + gap) - gap, *extra))
    for i in range(L):
        for p in range(P):
            out[i * (h + gap):i * (h + gap) + h, p * (w + gap):p * (w + gap) + w] = imgs[i][p]
    out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return (out * 255).round().astype(np.uint8)


def _vector_frames(decoded: np.ndarray, latents: list[int], values: np.ndarray, data: np.ndarray,
                   order: list[int]) -> list[np.ndarray]:
    """RGB frames (H, W, 3) uint8 of the vector traversals: one figure laid out once, its moving points and
    titles updated per frame."""
    import matplotlib.pyplot as plt

    P, L, steps = decoded.shape[:3]
    a, b = _pairs(data.shape[1])[0]
    fig, axes = plt.subplots(1, L, figsize=(2.6 * L, 2.7), dpi=60, squeeze=False)
    movers = []
    for i, j in enumerate(latents):
        ax = axes[0, i]
        ax.scatter(data[:, a], data[:, b], s=1, color="0.85")
        paths = decoded[:, i].reshape(P, steps, -1)
        colors = [ax.plot(paths[p, :, a], paths[p, :, b], lw=0.8, alpha=0.5)[0].get_color() for p in range(P)]
        dot = ax.scatter(paths[:, 0, a], paths[:, 0, b], s=30, c=colors)
        movers.append((dot, ax.set_title(f"z{j} = {values[j, 0]:+.2f}", fontsize=8), paths, j))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    frames = []
    for s in order:
        for dot, title, paths, j in movers:
            dot.set_offsets(paths[:, s][:, [a, b]])
            title.set_text(f"z{j} = {values[j, s]:+.2f}")
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return frames


def write_views(study_dir: str, run_key: str, epoch: int | None = None, out: str | None = None) -> dict[str, str]:
    """Open restart `run_key` (a key or a unique prefix) at `epoch` (None: its last checkpoint), draw its views
    and write them to `out` (default `<study_dir>/show/<run_key>/e<epoch>`); file name -> written path."""
    from analysis.restart import open_restart
    from workers.store.layout import join_uri, write_bytes
    from workers.store.views import connect

    restart = open_restart(connect(study_dir), study_dir, run_key, epoch)
    folder = out or join_uri(study_dir, "show", restart.run_key, f"e{restart.epoch}")
    return {name: write_bytes(join_uri(folder, name), data) for name, data in restart_views(restart).items()}
