"""Unsupervised scores of a code: Gaussian total and Wasserstein correlation, mean pairwise mutual information.

disentanglement_lib's `unsupervised_metrics.py`, on the posterior means z (N, d) of N samples:

    Σ   = sample covariance of z (d, d), ddof = 1 (`np.cov`)
    TC  = KL(N(0, Σ) ‖ N(0, D)) = ½ (Σ_j log Σ_jj − log det Σ),          D = diag(Σ_11 … Σ_dd)   [nats]
    WC  = W₂²(N(0, Σ), N(0, D)) = 2 tr Σ − 2 tr (D Σ)^½                                        [code units²]
    WCn = WC / tr Σ                                                                            [dimensionless]
    MI  = Σ_{i≠j} I(b_i; b_j) / (d² − d)                                                       [nats]

where b_j is latent j cut into `num_bins` equal-width bins (`discrete.histogram_discretize`, the
library's `_histogram_discretize`) and I the empirical (plug-in) mutual information, as
`sklearn.metrics.mutual_info_score`. (D Σ)^½ is the principal square root (`scipy.linalg.sqrtm`, as the
library); D Σ is similar to D^½ Σ D^½, so its trace equals that of the symmetric form in the W₂ formula.

Degenerate inputs. Duplicated (collinear) latents make Σ singular: TC = +inf, as in the library (the
true TC of a deterministic copy is infinite). A latent with zero variance (an exactly constant mean)
makes log Σ_jj = −inf and TC NaN, and tr Σ = 0 makes WCn NaN, as in the library; they are returned as
such, not patched. With a single latent (d = 1) there are no pairs: the library divides 0 by 0 (NaN);
here mutual_info_score is 0, consistent with TC = WC = 0 for one variable.
"""

from __future__ import annotations

import numpy as np

from workers.metrics.discrete import NUM_BINS, histogram_discretize, mutual_info
from workers.metrics.validate import check_matrix


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """Total correlation in nats of N(0, cov): ½ (Σ_j log cov_jj − log det cov); cov (d, d) symmetric PSD.

    0 for a diagonal cov, +inf for a singular one with positive diagonal."""
    cov = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """Squared 2-Wasserstein distance between N(0, cov) and N(0, diag(cov)): 2 tr cov − 2 tr sqrtm(D cov).

    cov (d, d) symmetric PSD, D = diag(diag(cov)); in the squared units of the code (cov's units)."""
    import warnings

    import scipy.linalg

    cov = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    with warnings.catch_warnings():
        # scipy warns on any singular input; D cov is similar to the PSD D^½ cov D^½, whose principal root
        # exists when it is singular too (duplicated latents)
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        # the row scaling is D @ cov without forming D (the library's expression)
        root = scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])
    # D cov has real non-negative eigenvalues; sqrtm may still hand back rounding-level imaginary parts
    return float(2.0 * np.trace(cov) - 2.0 * np.real(np.trace(root)))


def unsupervised_scores(codes: np.ndarray, *, num_bins: int = NUM_BINS) -> dict[str, float]:
    """Unsupervised scores of codes (N, d) posterior means (disentanglement_lib: N = 10,000).

    Returns {"gaussian_total_correlation" (nats), "gaussian_wasserstein_correlation" (code units²),
    "gaussian_wasserstein_correlation_norm" (WC / tr Σ), "mutual_info_score" (nats, mean over ordered
    pairs of distinct latents of their binned mutual information)}; formulas in the module docstring."""
    codes = check_matrix(codes, "codes")
    if codes.shape[0] < 2:
        raise ValueError(f"unsupervised_scores needs at least 2 codes for a covariance, got {codes.shape[0]}")
    d = codes.shape[1]
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    tc = gaussian_total_correlation(cov)
    wc = gaussian_wasserstein_correlation(cov)
    total_var = float(np.trace(cov))
    wc_norm = wc / total_var if total_var > 0 else float("nan")

    binned = histogram_discretize(codes, num_bins)
    mi = mutual_info(binned, binned)
    np.fill_diagonal(mi, 0.0)
    mi_score = float(mi.sum() / (d * d - d)) if d > 1 else 0.0
    return {
        "gaussian_total_correlation": tc,
        "gaussian_wasserstein_correlation": wc,
        "gaussian_wasserstein_correlation_norm": wc_norm,
        "mutual_info_score": mi_score,
    }
