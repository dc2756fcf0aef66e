"""OD-Score against answers known by construction (orthonormal, scaled and rotated decoders)."""

import numpy as np
import pytest
import torch

from workers.metrics.od_score import (
    od_distances_from_gram,
    od_distances_from_jacobians,
    od_score,
    od_score_from_gram,
)

torch.set_num_threads(1)


def _hadamard_columns(d: int) -> np.ndarray:
    """(16, d) orthonormal columns with entries ±1/4 (a Sylvester Hadamard matrix of order 16, scaled): JᵀJ = I
    exactly in floating point, so the eigenvectors are exactly the axes (no rounding picks a basis)."""
    H = np.array([[1.0]])
    for _ in range(4):
        H = np.block([[H, H], [H, -H]])
    return H[:, :d] / 4.0


def _rotation(theta: float) -> np.ndarray:
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def test_orthonormal_columns_score_zero():
    J = np.repeat(_hadamard_columns(4)[None], 6, axis=0)
    assert np.array_equal(np.swapaxes(J, 1, 2) @ J, np.repeat(np.eye(4)[None], 6, axis=0))
    out = od_score_from_gram(np.swapaxes(J, 1, 2) @ J)
    assert out == {"od_u": 0.0, "od_sigma": 0.0, "od_v": 0.0, "od_score": 0.0}


@pytest.mark.parametrize("c", [0.5, 2.0, 3.0])
def test_uniformly_scaled_decoder_scores_d_times_c_minus_one_squared(c):
    # M = c·H: Σ = c·I, V = I → d_Σ = d (c − 1)², d_U = d_V = 0, OD = d (c − 1)² / 3
    d = 3
    J = c * _hadamard_columns(d)[None]
    out = od_score_from_gram(np.swapaxes(J, 1, 2) @ J)
    assert out["od_sigma"] == pytest.approx(d * (c - 1) ** 2, abs=1e-12)
    assert out["od_u"] == pytest.approx(0.0, abs=1e-12) and out["od_v"] == pytest.approx(0.0, abs=1e-12)
    assert out["od_score"] == pytest.approx(d * (c - 1) ** 2 / 3, abs=1e-12)


def test_orthogonal_columns_with_distinct_norms_in_any_order_have_zero_u_and_v():
    # columns orthogonal, norms 0.5, 3, 2 (not sorted, one sign flipped): V is a signed permutation → d_V = 0
    norms = np.array([0.5, -3.0, 2.0])
    J = (_hadamard_columns(3) * norms)[None]
    d_u, d_sigma, d_v = od_distances_from_jacobians(J)
    assert d_u[0] == pytest.approx(0.0, abs=1e-12) and d_v[0] == pytest.approx(0.0, abs=1e-12)
    assert d_sigma[0] == pytest.approx(0.25 + 4.0 + 1.0, abs=1e-12)


@pytest.mark.parametrize("theta_deg", [10.0, 30.0, 44.0])
def test_rotated_latents_score_the_closed_form(theta_deg):
    # M = H diag(2, 0.5) R(θ)ᵀ: V = R(θ), nearest signed permutation I (θ < 45°) →
    # d_V = d_U = ‖R − I‖_F² = 4(1 − cos θ), d_Σ = (2 − 1)² + (0.5 − 1)² = 1.25
    t = np.deg2rad(theta_deg)
    J = (_hadamard_columns(2) * [2.0, 0.5] @ _rotation(t).T)[None]
    want_v = 4 * (1 - np.cos(t))
    for d_u, d_sigma, d_v in (od_distances_from_jacobians(J), od_distances_from_gram(np.swapaxes(J, 1, 2) @ J)):
        assert d_v[0] == pytest.approx(want_v, abs=1e-10)
        assert d_u[0] == pytest.approx(want_v, abs=1e-10)
        assert d_sigma[0] == pytest.approx(1.25, abs=1e-10)
    out = od_score_from_gram(np.swapaxes(J, 1, 2) @ J)
    assert out["od_score"] == pytest.approx((2 * want_v + 1.25) / 3, abs=1e-10)


def test_data_space_rotation_changes_nothing():
    # an orthogonal map of the data space (U ← R U) leaves every distance unchanged
    rng = np.random.default_rng(0)
    J = rng.normal(size=(5, 8, 3))
    R = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    for a, b in zip(od_distances_from_jacobians(J), od_distances_from_jacobians(R @ J), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_gram_path_equals_the_definition_on_random_jacobians():
    rng = np.random.default_rng(1)
    J = rng.normal(size=(50, 20, 5)) * rng.uniform(0.2, 3.0, size=(50, 1, 5))
    for a, b in zip(od_distances_from_gram(np.swapaxes(J, 1, 2) @ J), od_distances_from_jacobians(J), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_a_linear_torch_decoder_scores_its_weight():
    # Dec(z) = W z + b with W = 2·H R(20°)ᵀ... at any point: the Jacobian is W, the scores are W's
    t = np.deg2rad(20.0)
    W = _hadamard_columns(2) * [2.0, 0.5] @ _rotation(t).T
    Wt = torch.tensor(W, dtype=torch.float32)

    def decoder(z: torch.Tensor) -> torch.Tensor:
        return z @ Wt.T + 0.3

    out = od_score(decoder, torch.randn(7, 2))
    want_v = 4 * (1 - np.cos(t))
    assert out["od_v"] == pytest.approx(want_v, abs=1e-5)
    assert out["od_u"] == pytest.approx(want_v, abs=1e-5)
    assert out["od_sigma"] == pytest.approx(1.25, abs=1e-5)


def test_nan_jacobians_are_an_error():
    with pytest.raises(ValueError, match="NaN"):
        od_score_from_gram(np.full((2, 2, 2), np.nan))
