"""Interventional Robustness Score, IRS (Suter et al. 2019, "Robustly Disentangled Causal Mechanisms";
disentanglement_lib `irs.py`, `scalable_disentanglement_score`).

Inputs: codes (N, d) posterior means and factors (N, K). As in the reference, the factors are first cut
into `num_bins` (20) equal-width bins per column (`discrete.histogram_discretize`); on class indices
0..n−1 with n ≤ 20 this is the identity up to relabelling, beyond 20 classes neighbouring classes share
a bin (dSprites' 32 positions and 40 orientations, like the reference). Latents whose variance is exactly
0 are dropped (the reference's `_drop_constant_dims`); the remaining d_a are the active latents.

For an active latent j and a factor k with classes c = 1..C_k (q = diff_quantile, 0.99 by default):

    dev_j        = max_n |z_nj − mean(z_j)|                                  (normaliser, code units)
    D_jk         = (1/C_k) Σ_c  quantile_q { |z_nj − E[z_j | g_k = c]| : g_nk = c }
    IRS_jk       = 1 − D_jk / dev_j

IRS_jk is high when fixing factor k pins latent j, whatever the other factors do, i.e. when latent j is
robust to interventions on every factor but k. Per latent the score is max_k IRS_jk (its parent factor
is the argmax), and

    irs = Σ_j dev_j max_k IRS_jk / Σ_j dev_j          (weighted by each latent's spread)

Scores are dimensionless. IRS_jk ≤ 1, and can dip below 0 (down to −1) because a class mean may sit far
from the overall mean; a latent that is a function of one factor scores 1 for it. Gaussian noise scores
about 1 − q_0.99/max of |noise|, ≈ 0.3 at N = 10,000, not 0 (a property of the metric). diff_quantile
= 1 is the version of the paper; 0.99 (the reference's default) ignores the top 1 % of deviations.
disentanglement_lib uses N = 10,000.

Output: {"irs": float, "irs_per_factor": list[float] (K,), "irs_active_dims": int}.

Deviations from the reference:

* "irs_active_dims" is the number of active latents; the reference's "num_active_dims" is
  `np.sum(active_mus)`, the sum of the active latents' values, which is not a count.
* "irs_per_factor" is not in the reference: irs_per_factor[k] = max_j IRS_jk over the active latents,
  the robustness of the latent that best isolates factor k (the reference's IRS matrix, reduced per
  column). It is low for a factor no latent isolates.
* No active latent: the reference returns IRS 0.0; so does this module, with every per-factor value 0.0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.metrics.discrete import NUM_BINS, histogram_discretize
from workers.metrics.validate import check_pair


def irs_matrix(codes: np.ndarray, classes: np.ndarray, diff_quantile: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """(IRS_jk (d, K), dev_j (d,)) for non-constant codes (N, d) and integer factor classes (N, K)."""
    dev = np.abs(codes - codes.mean(axis=0)).max(axis=0)
    cum = np.zeros((codes.shape[1], classes.shape[1]))
    for k in range(classes.shape[1]):
        values = np.unique(classes[:, k])
        for value in values:
            group = codes[classes[:, k] == value]
            cum[:, k] += np.quantile(np.abs(group - group.mean(axis=0)), diff_quantile, axis=0)
        cum[:, k] /= values.size
    return 1.0 - cum / dev[:, None], dev


def irs(
    codes: np.ndarray, factors: np.ndarray, *, diff_quantile: float = 0.99, num_bins: int = NUM_BINS
) -> dict[str, Any]:
    """IRS of codes (N, d) w.r.t. factors (N, K) (class indices; binned into `num_bins` as the reference).

    Returns {"irs": float, "irs_per_factor": list[float] (K,), "irs_active_dims": int}."""
    if not 0.0 <= diff_quantile <= 1.0:
        raise ValueError(f"diff_quantile must be in [0, 1], got {diff_quantile}")
    codes, factors = check_pair(codes, factors)
    active = codes.var(axis=0) > 0
    K = factors.shape[1]
    if not active.any():
        return {"irs": 0.0, "irs_per_factor": [0.0] * K, "irs_active_dims": 0}
    m, dev = irs_matrix(codes[:, active], histogram_discretize(factors, num_bins), diff_quantile)
    return {
        "irs": float(np.average(m.max(axis=1), weights=dev)),
        "irs_per_factor": [float(v) for v in m.max(axis=0)],
        "irs_active_dims": int(active.sum()),
    }
