"""The polarised regime (Rolínek et al. 2019 §3.2/eq. 30; thesis §3.2.2 eq. 3.5, §3.3.2 eq. 3.38).

A VAE is in the polarised regime when its latents split into *active* ones (σ_j² ≪ 1) and *passive*
ones (μ_j ≈ 0, σ_j² ≈ 1, ignored by the decoder). There the KL term of the loss,

    L_KL(x)  = ½ Σ_j        (μ_j² + σ_j² − log σ_j² − 1)                    (thesis eq. 2.6)

is approximated by

    L_≈KL(x) = ½ Σ_{j ∈ V_a} (μ_j²        − log σ_j² − 1)                    (thesis eq. 3.5)

(passive latents cost nothing, and σ_j² ≪ −log σ_j² on active ones), and the relative error
Δ_KL = |L_KL − L_≈KL| / L_KL (eq. 3.38 / paper eq. 30) measures how polarised a model is. Both losses
are averaged over the points before the ratio is taken. Active latents are selected as in the paper:
sqrt(var_x μ_j(x)) > 0.5.

Everything here is in nats, on numpy arrays, with no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.metrics.validate import check_finite, check_matrix

ACTIVE_MU_STD = 0.5  # paper eq. 30: active ⇔ sqrt(var_x μ_j) > 0.5
ACTIVE_SIGMA2 = 0.8  # thesis: active ⇔ E_x σ_j² < 0.8
POLARIZED_THRESHOLD = 0.03  # thesis Table 3.2: Δ_KL < 3 %


def active_mask_mu(mu: np.ndarray, threshold: float = ACTIVE_MU_STD) -> np.ndarray:
    """(d,) bool: latent j is active iff the std over points of μ_j exceeds `threshold` (paper eq. 30)."""
    mu = check_matrix(mu, "mu")
    return mu.std(axis=0) > threshold


def polarized(
    mu: np.ndarray,
    logvar: np.ndarray | None = None,
    *,
    cov: np.ndarray | None = None,
) -> dict[str, Any]:
    """KL to N(0, I), per-latent posterior variances, active units and Δ_KL of one encoder on N points.

    Args:
        mu: (N, d) posterior means.
        logvar: (N, d) log posterior variances (diagonal Gaussian posterior), or None.
        cov: (N, d, d) full posterior covariances (β-VAE_Σ), or None. Exclusive with `logvar`.
            The KL is then the exact ½(‖μ‖² + tr Σ − log det Σ − d) (thesis eq. 3.30); σ_j² is the
            diagonal Σ_jj, and `kl_per_dim` holds the KL of the *marginal* N(μ_j, Σ_jj), whose sum is
            smaller than `kl` by the Gaussian total correlation ½(Σ_j log Σ_jj − log det Σ) ≥ 0.
            L_≈KL uses the marginal σ_j² = Σ_jj in eq. 3.5.
        With neither (a plain autoencoder has no posterior), only `active_units_mu` is defined and every
        posterior quantity is None (null in the store), never 0.

    Returns a flat dict:
        kl                  mean over points of the KL summed over latents (nats),
        kl_per_dim          list (d,), mean over points of each latent's KL (nats),
        sigma2_per_dim      list (d,), E_x σ_j²,
        active_units        #latents with E_x σ_j² < 0.8 (thesis),
        active_units_mu     #latents with sqrt(var_x μ_j) > 0.5 (paper eq. 30),
        kl_active           L_≈KL of eq. 3.5 over the μ-active latents, mean over points (nats),
        polarized_delta_kl  |L_KL − L_≈KL| / L_KL (None when L_KL == 0: the ratio is undefined).
    """
    mu = check_matrix(mu, "mu")
    n, d = mu.shape
    active = active_mask_mu(mu)
    out: dict[str, Any] = {
        "kl": None, "kl_per_dim": None, "sigma2_per_dim": None, "active_units": None,
        "active_units_mu": int(active.sum()), "kl_active": None, "polarized_delta_kl": None,
    }
    if logvar is not None and cov is not None:
        raise ValueError("polarized: pass either logvar (diagonal posterior) or cov (full), not both")
    if logvar is None and cov is None:
        return out
    if logvar is not None:
        logvar = np.asarray(logvar, dtype=np.float64)
        if logvar.shape != mu.shape:
            raise ValueError(f"polarized: logvar has shape {logvar.shape}, expected mu's {mu.shape}")
        check_finite(logvar, "logvar")
        sigma2 = np.exp(logvar)
        log_sigma2 = logvar
        kl_dims = 0.5 * (mu**2 + sigma2 - log_sigma2 - 1.0)  # (N, d)
        kl_points = kl_dims.sum(axis=1)
    else:
        cov = np.asarray(cov, dtype=np.float64)
        if cov.shape != (n, d, d):
            raise ValueError(f"polarized: cov has shape {cov.shape}, expected {(n, d, d)}")
        check_finite(cov, "cov")
        sigma2 = np.diagonal(cov, axis1=1, axis2=2).copy()  # (N, d)
        if np.any(sigma2 <= 0):
            raise ValueError("polarized: cov has a non-positive diagonal entry; it is not a covariance")
        log_sigma2 = np.log(sigma2)
        sign, logdet = np.linalg.slogdet(cov)
        if np.any(sign <= 0):
            raise ValueError("polarized: cov is not positive definite at some point (det <= 0)")
        kl_dims = 0.5 * (mu**2 + sigma2 - log_sigma2 - 1.0)  # marginal KLs
        kl_points = 0.5 * ((mu**2).sum(axis=1) + sigma2.sum(axis=1) - logdet - d)
    approx_points = 0.5 * (mu[:, active] ** 2 - log_sigma2[:, active] - 1.0).sum(axis=1)
    kl = float(kl_points.mean())
    kl_active = float(approx_points.mean())
    sigma2_mean = sigma2.mean(axis=0)
    out.update(
        kl=kl,
        kl_per_dim=kl_dims.mean(axis=0).tolist(),
        sigma2_per_dim=sigma2_mean.tolist(),
        active_units=int((sigma2_mean < ACTIVE_SIGMA2).sum()),
        kl_active=kl_active,
        polarized_delta_kl=abs(kl - kl_active) / kl if kl > 0 else None,
    )
    return out


def polarized_fraction(delta_kl: np.ndarray, threshold: float = POLARIZED_THRESHOLD) -> float:
    """Fraction of training time since which Δ_KL < `threshold` holds continuously until the end.

    Args:
        delta_kl: (T,) Δ_KL at equally spaced trace points in training order (the thesis evaluates every
            500 batches); None/NaN entries (undefined Δ_KL) count as "not below the threshold".
    Returns:
        k / T in [0, 1], where the last k trace points are all below `threshold` (thesis Table 3.2 reports
        it as a percentage). 0.0 if the last point is not below; 1.0 if every point is.
    """
    values = np.asarray([np.nan if v is None else v for v in np.ravel(delta_kl)], dtype=np.float64)
    if values.size == 0:
        raise ValueError("polarized_fraction: delta_kl is empty; record at least one trace point")
    below = values < threshold  # NaN compares False
    failing = np.flatnonzero(~below)
    tail = values.size if failing.size == 0 else values.size - 1 - failing[-1]
    return tail / values.size
