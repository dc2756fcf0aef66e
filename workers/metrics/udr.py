"""Unsupervised Disentanglement Ranking, UDR (Duan et al., ICLR 2020; disentanglement_lib `udr/metrics/udr.py`).

UDR scores each of M restarts by how consistently its *active* latents line up, one to one and axis by
axis, with the latents of the other restarts. It needs no ground-truth factors: only the posterior means
of every restart on the same N inputs and each restart's active-latent mask.

Inputs
    codes[m]:  (N, d_m) posterior means of restart m on the same N inputs (row n = same input for all m);
               d_m may differ between restarts.
    active[m]: (d_m,) bool, latent k of restart m is active. disentanglement_lib marks a latent active
               when its KL(q(z_k|x) || N(0, 1)), averaged over the inputs, exceeds 0.01 nats
               (`active_dims_from_kl`, `mean_gaussian_kl`).

Pairwise similarity R_ij, shape (a_i, a_j) with a_m = number of active latents of restart m; rows are
restart i's active latents, columns restart j's; unitless, ≥ 0:
    "spearman": R[k, l] = |Spearman rank correlation(z_i,k, z_j,l)|, in [0, 1].
    "lasso":    every code standardised (zero mean, unit population variance); one
                `sklearn.linear_model.Lasso(alpha)` predicts restart j's active latents from restart i's,
                and R[k, l] = |weight of z_i,k in the prediction of z_j,l| (disentanglement_lib transposes
                `coef_` the same way). The weights are shrunk by the L1 penalty: an exact one-to-one match
                of standardised latents gives weight 1 - alpha (0.9 for the reference's alpha = 0.1), so
                the lasso score of identical restarts is 1 - alpha, not 1. With correlated predictors a
                weight may exceed 1, so this variant has no fixed upper bound.

Pairwise score, disentanglement_lib's `relative_strength_disentanglement` on R_ij (already restricted to
the active latents of both restarts):
    S_ij = 1/2 * (1/a_j) Σ_l  max_k R[k, l]² / Σ_k R[k, l]      (columns: restart j's active latents)
         + 1/2 * (1/a_i) Σ_k  max_l R[k, l]² / Σ_l R[k, l]      (rows: restart i's active latents)
with 0/0 := 0 (an all-zero row or column scores 0 and still counts in its 1/a). Each half is normalised by
its own restart's number of active latents and the halves get equal weight. The paper writes the
normalisation as 1/(a_i + a_j) over the two sums together, which differs when a_i ≠ a_j; this module, like
the reference code, uses the per-half means. S_ij = 1 when R is a (scaled) permutation matrix between the
active latents of both restarts; for "spearman" S_ij = S_ji, for "lasso" not in general.

Per-restart score: UDR_i = median over j ≠ i of S_ji, i.e. the column of the pairwise matrix in which
restart i is the *target* of the regression (disentanglement_lib: `np.median(np.delete(scores[:, i], i))`).

Edge cases (where this module deviates from the reference, and why):
    * A constant latent (all N values equal), active or not, has similarity 0 with every latent. The
      reference feeds it to `scipy.stats.spearmanr`, whose NaN then turns the max of every row and column
      that touches it into NaN, zeroing a whole half of S_ij; the lasso variant already gives it weight 0
      in the reference, so only "spearman" differs, and only for active constant latents.
    * A restart with no active latent scores S = 0 against every other restart (both as i and as j); the
      reference raises (a max over an empty axis). Such a restart shares no axis-aligned structure.
    * Restarts may have different d_m (the reference asserts equal shapes). Inactive latents are dropped
      before the similarity is computed; the reference zeroes them and drops their rows and columns
      afterwards, which gives the same R (a zero predictor gets Lasso weight 0 and leaves the others as
      they are).
    * M < 2: no pairs; `udr_pairwise` returns an all-NaN (M, M) matrix and `udr_scores` an all-NaN (M,).
    * NaN or inf in the codes raises ValueError (a diverged restart has no meaningful ranking).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.stats import rankdata

from workers.metrics.validate import check_finite, check_matrix

KL_THRESHOLD = 0.01  # nats, disentanglement_lib's `kl_filter_threshold`
LASSO_ALPHA = 0.1  # disentanglement_lib's `lasso_correlation_matrix`

Method = Literal["spearman", "lasso"]


def active_dims_from_kl(kl_per_dim: np.ndarray, threshold: float = KL_THRESHOLD) -> np.ndarray:
    """(d,) bool mask of active latents: mean KL per latent (nats, (d,)) strictly above `threshold` (nats)."""
    kl = np.asarray(kl_per_dim, dtype=np.float64)
    if kl.ndim != 1:
        raise ValueError(f"kl_per_dim must be a (d,) array of mean KL per latent, got shape {kl.shape}")
    check_finite(kl, "kl_per_dim")
    return kl > threshold


def mean_gaussian_kl(mean: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """(d,) KL(N(mean, exp(logvar)) || N(0, 1)) in nats per latent, averaged over the N inputs.

    mean, logvar: (N, d) diagonal Gaussian posterior parameters (logvar = log variance)."""
    mu = check_matrix(mean, "mean")
    lv = check_matrix(logvar, "logvar")
    if lv.shape != mu.shape:
        raise ValueError(f"logvar has shape {lv.shape}, expected mean's {mu.shape}")
    return np.mean(0.5 * (mu**2 + np.exp(lv) - lv - 1.0), axis=0)


def relative_strength(similarity: np.ndarray) -> float:
    """S of an (a_i, a_j) non-negative similarity matrix (formula in the module docstring); 0 if empty."""
    R = np.asarray(similarity, dtype=np.float64)
    if R.size == 0:
        return 0.0

    def half(axis: int) -> float:
        total = R.sum(axis=axis)
        peak = R.max(axis=axis)
        ratio = np.divide(peak**2, total, out=np.zeros_like(total), where=total > 0)
        return float(np.mean(ratio))

    return 0.5 * (half(0) + half(1))


def _validated(codes: Sequence[np.ndarray], active: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each restart's active columns as float64 (N, a_m), after checking shapes, masks and finiteness."""
    if len(codes) != len(active):
        raise ValueError(f"got {len(codes)} code arrays but {len(active)} active masks")
    out: list[np.ndarray] = []
    n_rows: int | None = None
    for m, (z, mask) in enumerate(zip(codes, active, strict=True)):
        z = check_matrix(z, f"codes[{m}]")
        mask = np.asarray(mask)
        if mask.shape != (z.shape[1],) or (mask.dtype != bool and not np.isin(mask, (0, 1)).all()):
            raise ValueError(f"active[{m}] must be a ({z.shape[1]},) bool mask, got {mask.dtype} {mask.shape}")
        if n_rows is None:
            n_rows = z.shape[0]
        elif z.shape[0] != n_rows:
            raise ValueError(f"codes[{m}] has {z.shape[0]} rows, codes[0] {n_rows}: UDR needs the same inputs")
        out.append(z[:, mask.astype(bool)])
    return out


def _constant(z: np.ndarray) -> np.ndarray:
    """(a,) True where a column holds one value; an exact test, so tiny real variation still counts."""
    return np.ptp(z, axis=0) == 0


def _standardize(z: np.ndarray) -> np.ndarray:
    """Zero mean, unit population variance per column; constant columns become 0 (as sklearn's StandardScaler)."""
    const = _constant(z)
    centred = z - z.mean(axis=0)
    std = centred.std(axis=0)
    return np.where(const, 0.0, centred / np.where(const, 1.0, std))


def _spearman_similarity(ranks_i: np.ndarray, ranks_j: np.ndarray) -> np.ndarray:
    """(a_i, a_j) |Spearman| from standardised average-tie ranks (0 columns for constant latents)."""
    return np.abs(ranks_i.T @ ranks_j) / ranks_i.shape[0]


def _lasso_similarity(x: np.ndarray, y: np.ndarray, alpha: float, seed: int) -> np.ndarray:
    """(a_i, a_j) |Lasso weights| predicting standardised y (N, a_j) from standardised x (N, a_i)."""
    from sklearn.linear_model import Lasso

    # random_state only matters for selection="random"; the reference passes it with the default "cyclic".
    model = Lasso(alpha=alpha, random_state=seed)
    model.fit(x, y)
    return np.abs(np.asarray(model.coef_).reshape(y.shape[1], x.shape[1])).T


def udr_pairwise(
    codes: Sequence[np.ndarray],
    active: Sequence[np.ndarray],
    *,
    method: Method,
    lasso_alpha: float = LASSO_ALPHA,
    seed: int = 0,
) -> np.ndarray:
    """(M, M) pairwise scores S_ij (diagonal NaN) of M restarts' codes.

    codes: M arrays (N, d_m) of posterior means on the same N inputs; active: M (d_m,) bool masks.
    S[i, j] uses restart i's latents as rows (Lasso predictors) and restart j's as columns (targets);
    unitless, in [0, 1] for "spearman" (module docstring for the formula and for "lasso")."""
    if method not in ("spearman", "lasso"):
        raise ValueError(f"method must be 'spearman' or 'lasso', got {method!r}")
    kept = _validated(codes, active)
    M = len(kept)
    scores = np.full((M, M), np.nan)
    if method == "spearman":
        # Spearman = Pearson on ranks; ranking once per restart keeps the M² pairs to matrix products.
        prepared = [_standardize(rankdata(z, axis=0)) if z.shape[1] else z for z in kept]
    else:
        prepared = [_standardize(z) for z in kept]
    for i in range(M):
        for j in range(M):
            if i == j:
                continue
            x, y = prepared[i], prepared[j]
            if x.shape[1] == 0 or y.shape[1] == 0:
                scores[i, j] = 0.0
                continue
            if method == "spearman":
                R = _spearman_similarity(x, y)
            else:
                R = _lasso_similarity(x, y, lasso_alpha, seed)
            scores[i, j] = relative_strength(R)
    return scores


def udr_scores(
    codes: Sequence[np.ndarray],
    active: Sequence[np.ndarray],
    *,
    method: Method,
    lasso_alpha: float = LASSO_ALPHA,
    seed: int = 0,
) -> np.ndarray:
    """(M,) per-restart UDR: median over j ≠ i of S[j, i] (restart i as the target); unitless.

    Same inputs as `udr_pairwise`. With M < 2 there is no other restart to compare to: all NaN."""
    pairwise = udr_pairwise(codes, active, method=method, lasso_alpha=lasso_alpha, seed=seed)
    M = pairwise.shape[0]
    if M < 2:
        return np.full(M, np.nan)
    return np.array([np.median(np.delete(pairwise[:, i], i)) for i in range(M)])


def udr(codes: Sequence[np.ndarray], active: Sequence[np.ndarray], *, seed: int = 0) -> dict[str, np.ndarray]:
    """{"udr_spearman": (M,), "udr_lasso": (M,)} per-restart UDR with the reference settings (alpha 0.1).

    codes: M arrays (N, d_m) of posterior means on the same N inputs; active: M (d_m,) bool masks."""
    return {
        "udr_spearman": udr_scores(codes, active, method="spearman", seed=seed),
        "udr_lasso": udr_scores(codes, active, method="lasso", seed=seed),
    }
