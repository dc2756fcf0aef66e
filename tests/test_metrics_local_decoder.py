"""The local-decoder experiment on decoders whose local form is known by construction."""

import numpy as np
import pytest
import torch

from workers.metrics.local_decoder import (
    COLUMNS,
    fit_linear,
    fit_tanh,
    local_decoder,
    local_decoder_sums,
    posterior_scale,
    predict_tanh,
    scores_from_sums,
)

torch.set_num_threads(1)


def _draws(rng, n, s, d, sd=1.0):
    return sd * rng.standard_normal((n, s, d))


def test_linear_fit_recovers_an_affine_map_exactly():
    rng = np.random.default_rng(0)
    eps = _draws(rng, 3, 20, 2)
    W, b = rng.normal(size=(3, 2, 5)), rng.normal(size=(3, 1, 5))
    theta = fit_linear(eps, eps @ W + b)
    np.testing.assert_allclose(theta[:, :2], W, atol=1e-8)
    np.testing.assert_allclose(theta[:, 2:], b, atol=1e-8)


def test_tanh_fit_recovers_a_tanh_layer():
    rng = np.random.default_rng(1)
    eps = _draws(rng, 2, 64, 3)
    theta = np.concatenate([rng.normal(scale=1.5, size=(2, 3, 6)), rng.normal(scale=0.3, size=(2, 1, 6))], axis=1)
    y = predict_tanh(eps, theta)
    fitted = fit_tanh(eps, y, iterations=30)
    assert np.abs(predict_tanh(eps, fitted) - y).max() < 1e-6
    np.testing.assert_allclose(fitted, theta, atol=1e-4)


def test_tanh_fit_never_ends_worse_than_its_start():
    rng = np.random.default_rng(2)
    eps = _draws(rng, 2, 40, 2)
    y = np.sin(3 * eps[..., :1]) * rng.normal(size=(2, 1, 4))  # neither linear nor a tanh layer
    lin = fit_linear(eps, y)
    err = lambda th: ((y - predict_tanh(eps, th)) ** 2).sum(axis=1)  # noqa: E731
    assert np.all(err(fit_tanh(eps, y, theta0=lin)) <= err(lin) + 1e-12)


def test_affine_decoder_linear_error_and_jacobian_estimate_are_zero():
    # Dec(z) = A z + c: y = A ε exactly, so the linear local decoder and ‖Jε‖² (J = A) are exact
    rng = np.random.default_rng(3)
    A = rng.normal(scale=0.2, size=(4, 8, 2))  # (n, D, d)
    eps_f, eps_t = _draws(rng, 4, 32, 2, 0.5), _draws(rng, 4, 32, 2, 0.5)
    y_f, y_t = eps_f @ np.swapaxes(A, 1, 2), eps_t @ np.swapaxes(A, 1, 2)
    out = scores_from_sums(local_decoder_sums(eps_f, y_f, eps_t, y_t, np.swapaxes(A, 1, 2) @ A))
    assert out["local_decoder_linear"] == pytest.approx(0.0, abs=1e-12)
    assert out["local_decoder_stoch_jacobian"] == pytest.approx(0.0, abs=1e-12)
    assert 0.0 < out["local_decoder_nonlinear"] < 0.05  # tanh bends where y is linear, a little at this scale


def test_tanh_decoder_is_fitted_by_the_nonlinear_local_decoder_and_not_by_the_linear_one():
    # Dec(z) = tanh(A (z − μ0)) at μ = μ0: y = tanh(A ε) exactly, J = A
    A = torch.tensor([[2.0, 0.0], [1.0, 1.5], [0.0, -2.5], [0.5, 0.5], [-1.0, 2.0]])
    mu0 = torch.tensor([0.3, -0.2])

    def decoder(z: torch.Tensor) -> torch.Tensor:
        return torch.tanh((z - mu0) @ A.T)

    codes = np.repeat(mu0.numpy()[None].astype(np.float64), 10, axis=0)
    out = local_decoder(decoder, codes, {"logvar": np.zeros((10, 2))}, seed=0, n_points=4, n_fit=64, n_test=64,
                        iterations=30)
    assert out["local_decoder_nonlinear"] < 1e-6
    assert out["local_decoder_linear"] > 0.05
    assert out["local_decoder_stoch_nonlinear"] < 1e-4
    # E‖Aε‖² overstates E‖tanh(Aε)‖² by far at σ = 1: the linearisation's error is large
    assert out["local_decoder_stoch_jacobian"] > 0.5


def test_no_posterior_gives_nulls_and_scales_follow_the_posterior():
    out = local_decoder(lambda z: z, np.zeros((3, 2)), {}, seed=0)
    assert out == dict.fromkeys(COLUMNS)
    L = posterior_scale({"logvar": np.log(np.array([[4.0, 0.25]]))})
    np.testing.assert_allclose(L[0], np.diag([2.0, 0.5]))
    cov = np.array([[[2.0, 0.5], [0.5, 1.0]]])
    np.testing.assert_allclose(posterior_scale({"cov": cov})[0] @ posterior_scale({"cov": cov})[0].T, cov[0])
