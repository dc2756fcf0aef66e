"""Unsupervised scores against closed forms (Gaussian covariances) and constructed codes (binned MI)."""

import numpy as np
import pytest

from workers.metrics.unsupervised import (
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    unsupervised_scores,
)


def _cov2(rho, s1=1.0, s2=1.0):
    return np.array([[s1 * s1, rho * s1 * s2], [rho * s1 * s2, s2 * s2]])


def test_diagonal_covariance_has_no_correlation():
    cov = np.diag([0.5, 2.0, 3.0, 1e-3, 7.7])
    assert gaussian_total_correlation(cov) == 0.0
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("rho", [-0.9, -0.3, 0.2, 0.75])
@pytest.mark.parametrize("scales", [(1.0, 1.0), (0.1, 5.0)])
def test_total_correlation_of_bivariate_gaussian(rho, scales):
    # KL(N(0, Σ) ‖ N(0, diag Σ)) = −½ log(1 − ρ²), whatever the scales
    assert gaussian_total_correlation(_cov2(rho, *scales)) == pytest.approx(-0.5 * np.log(1 - rho**2), rel=1e-12)


@pytest.mark.parametrize("rho", [-0.8, 0.1, 0.6])
def test_wasserstein_correlation_of_unit_bivariate_gaussian(rho):
    # D = I: W₂² = 2 tr Σ − 2 tr Σ^½ and Σ has eigenvalues 1 ± ρ
    expected = 4.0 - 2.0 * (np.sqrt(1 + rho) + np.sqrt(1 - rho))
    assert gaussian_wasserstein_correlation(_cov2(rho)) == pytest.approx(expected, rel=1e-9)


def test_scores_of_sampled_gaussian_codes():
    rho = 0.6
    codes = np.random.default_rng(0).multivariate_normal([0.0, 3.0], _cov2(rho, 2.0, 0.5), size=20000)
    s = unsupervised_scores(codes)
    assert set(s) == {
        "gaussian_total_correlation",
        "gaussian_wasserstein_correlation",
        "gaussian_wasserstein_correlation_norm",
        "mutual_info_score",
    }
    assert s["gaussian_total_correlation"] == pytest.approx(-0.5 * np.log(1 - rho**2), abs=0.02)
    # the norm variant divides by tr Σ (≈ 4.25 here)
    cov = np.cov(codes, rowvar=False)
    assert s["gaussian_wasserstein_correlation_norm"] * np.trace(cov) == pytest.approx(
        s["gaussian_wasserstein_correlation"], rel=1e-12
    )
    assert s["gaussian_wasserstein_correlation"] > 0


def test_mutual_info_of_independent_and_duplicated_latents():
    rng = np.random.default_rng(1)
    u = rng.uniform(size=(20000, 4))
    independent = unsupervised_scores(u)["mutual_info_score"]
    assert 0.0 <= independent < 0.03  # plug-in bias ≈ 19² / (2 N) ≈ 0.009 nats per pair
    duplicated = unsupervised_scores(np.column_stack([u[:, :3], u[:, 0]]))["mutual_info_score"]
    assert duplicated > 0.3  # the copied pair carries H(20 bins) ≈ log 20 in 2 of the 12 ordered pairs
    # two copies of one uniform latent: every off-diagonal entry is the entropy of 20 equal bins
    pair = unsupervised_scores(np.column_stack([u[:, 0], 2.0 * u[:, 0] - 1.0]))["mutual_info_score"]
    assert pair == pytest.approx(np.log(20), abs=0.01)


def test_single_latent_and_num_bins():
    x = np.random.default_rng(2).normal(size=(500, 1))
    s = unsupervised_scores(x)
    assert s["gaussian_total_correlation"] == 0.0 and s["mutual_info_score"] == 0.0
    assert s["gaussian_wasserstein_correlation"] == pytest.approx(0.0, abs=1e-12)
    u = np.random.default_rng(3).uniform(size=(20000, 1))
    assert unsupervised_scores(np.column_stack([u, u]), num_bins=5)["mutual_info_score"] == pytest.approx(
        np.log(5), abs=0.01
    )


def test_invalid_codes_are_rejected():
    with pytest.raises(ValueError):
        unsupervised_scores(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError):
        unsupervised_scores(np.zeros((1, 3)))
