"""Polarised regime: KL, active units and Δ_KL against hand-computed values."""

import numpy as np
import pytest

from workers.metrics.polarized import polarized, polarized_fraction


def _two_active_two_passive(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    mu = np.zeros((n, 4))
    mu[:, 0] = rng.choice([-2.0, 2.0], size=n)  # std 2 > 0.5: active
    mu[:, 1] = rng.choice([-1.0, 1.0], size=n)  # std 1: active
    logvar = np.log(np.tile([0.01, 0.04, 1.0, 1.0], (n, 1)))  # passive latents: the prior exactly
    return mu, logvar


def test_kl_and_approximation_by_hand():
    mu, logvar = _two_active_two_passive()
    out = polarized(mu, logvar)
    kl0 = 0.5 * (4 + 0.01 - np.log(0.01) - 1)
    kl1 = 0.5 * (1 + 0.04 - np.log(0.04) - 1)
    assert out["kl_per_dim"] == pytest.approx([kl0, kl1, 0.0, 0.0])
    assert out["kl"] == pytest.approx(kl0 + kl1)
    assert out["sigma2_per_dim"] == pytest.approx([0.01, 0.04, 1.0, 1.0])
    assert out["active_units"] == 2 and out["active_units_mu"] == 2
    approx = 0.5 * (4 - np.log(0.01) - 1) + 0.5 * (1 - np.log(0.04) - 1)  # eq. 3.5: σ² dropped
    assert out["kl_active"] == pytest.approx(approx)
    assert out["polarized_delta_kl"] == pytest.approx(0.05 / 2 / (kl0 + kl1))


def test_full_covariance_uses_exact_kl_and_diagonal_variances():
    mu, logvar = _two_active_two_passive()
    n = mu.shape[0]
    cov = np.zeros((n, 4, 4))
    cov[:, np.arange(4), np.arange(4)] = np.exp(logvar)
    full, diag = polarized(mu, cov=cov), polarized(mu, logvar)
    for key, value in diag.items():
        assert full[key] == pytest.approx(value), key
    rho = 0.6  # correlate the two passive latents: the joint KL is −½ log(1−ρ²) more than the marginals
    cov[:, 2, 3] = cov[:, 3, 2] = rho
    out = polarized(mu, cov=cov)
    base = polarized(mu, logvar)
    assert out["kl"] == pytest.approx(base["kl"] - 0.5 * np.log(1 - rho**2))
    assert out["kl_per_dim"] == pytest.approx(base["kl_per_dim"])
    assert out["sigma2_per_dim"] == pytest.approx([0.01, 0.04, 1.0, 1.0])


def test_autoencoder_has_null_posterior_values():
    mu, _ = _two_active_two_passive()
    out = polarized(mu)
    assert out["active_units_mu"] == 2
    for key in ("kl", "kl_per_dim", "sigma2_per_dim", "active_units", "kl_active", "polarized_delta_kl"):
        assert out[key] is None


def test_prior_posterior_has_undefined_ratio_not_nan():
    out = polarized(np.zeros((10, 3)), np.zeros((10, 3)))
    assert out["kl"] == 0.0 and out["polarized_delta_kl"] is None and out["active_units"] == 0


def test_bad_inputs_raise_clear_errors():
    mu, logvar = _two_active_two_passive(n=10)
    with pytest.raises(ValueError, match="logvar contains NaN"):
        polarized(mu, np.full_like(logvar, np.nan))
    with pytest.raises(ValueError, match="not both"):
        polarized(mu, logvar, cov=np.zeros((10, 4, 4)))
    with pytest.raises(ValueError, match="cov has shape"):
        polarized(mu, cov=np.zeros((10, 3, 3)))


@pytest.mark.parametrize(
    ("trace", "expected"),
    [
        ([0.5, 0.1, 0.01, 0.2, 0.02, 0.01], 2 / 6),
        ([0.01, 0.02, 0.0], 1.0),
        ([0.01, 0.02, 0.5], 0.0),
        ([0.5, None, 0.01], 1 / 3),
        ([0.5, float("nan"), 0.01, 0.01], 2 / 4),
    ],
)
def test_polarized_fraction(trace, expected):
    assert polarized_fraction(np.array(trace, dtype=object)) == pytest.approx(expected)
