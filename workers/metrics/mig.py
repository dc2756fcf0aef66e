"""Mutual Information Gap (Chen et al. 2018, as in disentanglement_lib) and MIG-sup (Li et al. 2020).

MIG: discretise each code into 20 equal-width bins (`discrete.histogram_discretize`), take the discrete
mutual information I(z_j; v_k) in nats, and per factor k the gap between the two most informative codes
divided by the factor entropy H(v_k); the score is the mean over factors. Continuous factors (synthetic
datasets) are discretised with the same 20-bin equal-width rule before H and I are taken, so the
normalisation stays an entropy of a discrete variable.

MIG-sup: the transposed gap, per latent j, between the two factors it is most informative about, on the
same entropy-normalised MI I(z_j; v_k)/H(v_k), averaged over the (active) latents.

Degenerate inputs: a constant factor (H = 0) has no defined gap; its per-factor value is None and it is
left out of the mean (None if every factor is constant). With a single code (or a single factor for
MIG-sup) the "second best" is 0, i.e. the gap is the normalised MI itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.metrics.discrete import NUM_BINS, entropy, factor_classes, histogram_discretize, mutual_info
from workers.metrics.validate import check_pair


def normalized_mutual_info(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    num_bins: int = NUM_BINS,
    discrete: np.ndarray | list[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(I(z_j; v_k) / H(v_k) as (d, K) with NaN columns for constant factors, H (K,)) in nats."""
    codes, factors = check_pair(codes, factors)
    classes = factor_classes(factors, discrete, num_bins)
    h = entropy(classes)
    mi = mutual_info(histogram_discretize(codes, num_bins), classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        nmi = np.where(h[None, :] > 0, mi / np.where(h > 0, h, 1.0)[None, :], np.nan)
    return nmi, h


def _top_gap(values: np.ndarray, axis: int) -> np.ndarray:
    """Gap between the largest and second-largest entry along `axis` (second = 0 if there is one)."""
    s = -np.sort(-values, axis=axis)
    first = np.take(s, 0, axis=axis)
    second = np.take(s, 1, axis=axis) if s.shape[axis] > 1 else np.zeros_like(first)
    return first - second


def mig(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    num_bins: int = NUM_BINS,
    discrete: np.ndarray | list[bool] | None = None,
) -> dict[str, Any]:
    """MIG of codes (N, d) w.r.t. factors (N, K) (class indices, or values for continuous factors).

    `discrete` (K,) bool marks discrete factors (None: integer-valued columns are discrete); continuous
    ones are discretised with the same 20-bin rule as the codes. disentanglement_lib uses N = 10,000.
    Returns {"mig": float | None, "mig_per_factor": list[float | None] (K,)}.
    """
    nmi, h = normalized_mutual_info(codes, factors, num_bins=num_bins, discrete=discrete)
    per_factor = _top_gap(np.nan_to_num(nmi, nan=0.0), axis=0)
    valid = h > 0
    return {
        "mig": float(per_factor[valid].mean()) if valid.any() else None,
        "mig_per_factor": [float(v) if ok else None for v, ok in zip(per_factor, valid, strict=True)],
    }


def mig_sup(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    num_bins: int = NUM_BINS,
    discrete: np.ndarray | list[bool] | None = None,
    active: np.ndarray | None = None,
) -> dict[str, Any]:
    """MIG-sup of codes (N, d): mean over latents (the `active` (d,) mask if given) of the gap between
    the two largest I(z_j; v_k)/H(v_k) over factors k. Constant factors are left out.
    Returns {"mig_sup": float | None} (None when no latent is active or every factor is constant)."""
    nmi, h = normalized_mutual_info(codes, factors, num_bins=num_bins, discrete=discrete)
    nmi = nmi[:, h > 0]
    mask = np.ones(nmi.shape[0], dtype=bool) if active is None else np.asarray(active, dtype=bool)
    if nmi.shape[1] == 0 or not mask.any():
        return {"mig_sup": None}
    return {"mig_sup": float(_top_gap(nmi[mask], axis=1).mean())}
