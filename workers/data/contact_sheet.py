"""Contact sheets: one row per factor, varying only that factor around a fixed base combination."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DataError, Dataset


def factor_sweeps(ds: Dataset, columns: int = 10, seed: int = 0) -> tuple[np.ndarray, list[list[str]]]:
    """Factors (K, columns, K) of the sheet and the value labels per cell.

    Row k starts from one base combination (drawn with `seed`) and sets factor k to `columns` evenly
    spaced classes (all classes if fewer) or, for a continuous factor, evenly spaced values in [0, 1].
    """
    if ds.num_factors == 0:
        raise DataError(f"{ds.name} has no generative factors: nothing to sweep")
    base = ds.sample_factors(1, np.random.default_rng(seed))[0]
    rows, labels = [], []
    for k, size in enumerate(ds.factor_sizes):
        values = (np.unique(np.linspace(0, size - 1, min(columns, size)).round().astype(np.int64))
                  if size is not None else np.linspace(0.0, 1.0, columns))
        f = np.repeat(base[None], len(values), axis=0)
        f[:, k] = values
        f = np.concatenate([f, np.repeat(f[-1:], columns - len(values), axis=0)])  # pad short rows
        rows.append(f)
        names = getattr(ds, "factor_values", None)
        shown = names[k][values] if names is not None and size is not None else values
        labels.append([f"{v:.3g}" for v in shown] + [""] * (columns - len(values)))
    return np.stack(rows), labels


def _as_picture(obs: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) picture of one observation (C, H, W) or a vector (D,) as a 1×D strip."""
    if obs.ndim == 1:
        return obs[None, :]
    return obs[0] if obs.shape[0] == 1 else np.moveaxis(obs, 0, -1)


def write_contact_sheet(ds: Dataset, out: str | Path, columns: int = 10, seed: int = 0) -> Path:
    """Write a PNG with one row per factor (or, without factors, one row per label) to `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if ds.num_factors:
        factors, labels = factor_sweeps(ds, columns, seed)
        obs = ds.observations(factors.reshape(-1, ds.num_factors)).reshape(*factors.shape[:2],
                                                                           *ds.observation_shape)
        row_names = ds.factor_names
    else:
        obs, row_names, labels = _examples_by_label(ds, columns, seed)
    n_rows = obs.shape[0]
    fig, axes = plt.subplots(n_rows, columns, figsize=(1.1 * columns + 1, 1.2 * n_rows + 0.4), squeeze=False)
    vector = len(ds.observation_shape) == 1
    lo, hi = (float(obs.min()), float(obs.max())) if vector else (0.0, 1.0)
    for r in range(n_rows):
        for c in range(columns):
            ax = axes[r, c]
            if not labels[r][c] and ds.num_factors:  # padding of a factor with fewer classes than columns
                ax.axis("off")
                continue
            ax.imshow(_as_picture(obs[r, c]), cmap="gray" if not vector else "coolwarm", vmin=lo, vmax=hi,
                      interpolation="nearest", aspect="auto" if vector else "equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(labels[r][c], fontsize=7, pad=2)
        axes[r, 0].set_ylabel(row_names[r], fontsize=9)
    fig.suptitle(f"{ds.name}: one row per factor, only that factor varies", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def _examples_by_label(ds: Dataset, columns: int, seed: int) -> tuple[np.ndarray, list[str], list[list[str]]]:
    labels_at = getattr(ds, "labels_at", None)
    if labels_at is None:
        raise DataError(f"{ds.name} has neither factors nor labels to arrange a sheet by")
    rng = np.random.default_rng(seed)
    all_labels = labels_at(np.arange(len(ds)))
    classes = np.unique(all_labels)
    rows = []
    for c in classes:
        members = np.flatnonzero(all_labels == c)
        rows.append(ds.observations_at(rng.choice(members, size=columns, replace=members.size < columns)))
    return np.stack(rows), [f"label {c}" for c in classes], [[""] * columns for _ in classes]
