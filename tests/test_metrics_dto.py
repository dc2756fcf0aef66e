"""DtO, nearest signed permutations and c_ima against answers known by construction."""

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from workers.metrics.dto import (
    c_ima_from_gram,
    decoder_gram,
    distance_to_signed_permutation,
    dto,
    dto_from_jacobians,
    jacobian_metrics,
    largest_per_point,
    nearest_signed_permutation,
    nearest_signed_permutation_milp,
)

torch.set_num_threads(1)


def _signed_permutation(rng, d):
    P = np.zeros((d, d))
    P[np.arange(d), rng.permutation(d)] = rng.choice([-1.0, 1.0], size=d)
    return P


def _jacobians(rng, V, D=12, sv=None):
    """J = Q diag(sv) Vᵀ with Q (D, d) orthonormal: right singular vectors are exactly V's columns."""
    n, d, _ = V.shape
    sv = np.linspace(3.0, 1.0, d) if sv is None else np.asarray(sv)
    Q = np.linalg.qr(rng.normal(size=(n, D, d)))[0]
    return Q * sv[None, None, :] @ np.swapaxes(V, 1, 2)


def test_signed_permutation_has_zero_dto():
    rng = np.random.default_rng(0)
    for d in (1, 2, 3, 5, 8):
        V = np.stack([_signed_permutation(rng, d) for _ in range(20)])
        assert np.array_equal(nearest_signed_permutation(V), V)
        assert dto_from_jacobians(_jacobians(rng, V)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("theta_deg", [0.0, 10.0, 30.0, 45.0])
def test_rotation_in_2d_has_closed_form(theta_deg):
    # V = R(θ), θ ≤ 45°: nearest signed permutation is the identity, ‖V − I‖_F² = 2(1−cos θ)² + 2 sin² θ
    t = np.deg2rad(theta_deg)
    R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])[None]
    J = _jacobians(np.random.default_rng(1), np.repeat(R, 5, axis=0), sv=[2.0, 0.5])
    assert dto_from_jacobians(J) == pytest.approx(np.sqrt(4 * (1 - np.cos(t))), abs=1e-10)


def test_45_degree_value():
    V = np.array([[1.0, -1.0], [1.0, 1.0]]) / np.sqrt(2)
    assert distance_to_signed_permutation(V) == pytest.approx(np.sqrt(4 - 2 * np.sqrt(2)), abs=1e-12)


@pytest.mark.slow
def test_assignment_equals_milp_on_random_orthogonal_matrices():
    n_per_d = 120  # 9 sizes × 120 = 1,080 matrices
    for d in range(2, 11):
        V = ortho_group.rvs(d, size=n_per_d, random_state=d)
        fast = nearest_signed_permutation(V)
        for i in range(n_per_d):
            ref = nearest_signed_permutation_milp(V[i])
            assert np.array_equal(fast[i], ref), (d, i)


def test_invariant_to_column_signs_and_permutations():
    rng = np.random.default_rng(2)
    for d in (2, 4, 7):
        V = ortho_group.rvs(d, size=50, random_state=d)
        S = np.stack([_signed_permutation(rng, d) for _ in range(50)])
        W = V @ S  # flip and permute the columns of V (the SVD's arbitrary choices)
        assert np.allclose(nearest_signed_permutation(W), nearest_signed_permutation(V) @ S)
        assert np.allclose(distance_to_signed_permutation(W), distance_to_signed_permutation(V))


def test_batched_over_leading_dims():
    V = ortho_group.rvs(4, size=12, random_state=0).reshape(3, 4, 4, 4)
    P = nearest_signed_permutation(V)
    assert P.shape == V.shape
    assert np.array_equal(P[1, 2], nearest_signed_permutation(V[1, 2]))


def test_gram_route_matches_full_svd():
    # how the Gram-matrix shortcut was checked: V from eigh(JᵀJ) vs V from an SVD of J itself
    rng = np.random.default_rng(3)
    for d in (2, 5, 10):
        J = rng.normal(size=(200, 40, d)) * np.logspace(0, -3, d)[None, None, :]  # condition ~1e3
        Vt = np.linalg.svd(J)[2]
        ref = distance_to_signed_permutation(np.swapaxes(Vt, 1, 2)).mean()
        assert dto_from_jacobians(J) == pytest.approx(ref, abs=1e-9)


def test_decoder_gram_matches_reverse_mode_jacobian():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 30))
    mu = torch.randn(17, 4)
    z = mu.clone().requires_grad_(True)
    out = net(z)  # rows are independent: the gradient of output k summed over rows is row-wise ∂out_k/∂z
    J = torch.stack([torch.autograd.grad(out[:, k].sum(), z, retain_graph=True)[0] for k in range(30)], dim=1)
    J = J.double().numpy()
    G = decoder_gram(net, mu, max_elements=4 * 30 * 5)  # force several chunks
    assert np.allclose(G, np.einsum("nki,nkj->nij", J, J), atol=1e-5)


def test_largest_per_point_counts_hidden_maps_not_weights():
    wide = torch.nn.Sequential(torch.nn.Linear(3, 200), torch.nn.Tanh(), torch.nn.Linear(200, 5))
    assert largest_per_point(wide, torch.randn(4, 3)) == 200  # the hidden layer: not the 5 outputs, 600 weights
    up = torch.nn.Sequential(torch.nn.Unflatten(1, (3, 1, 1)), torch.nn.ConvTranspose2d(3, 8, 4), torch.nn.ReLU(),
                             torch.nn.Conv2d(8, 1, 1), torch.nn.Flatten())
    assert largest_per_point(up, torch.randn(4, 3)) == 8 * 4 * 4  # the 8-channel 4x4 map; the output is 16
    # chunks sized by it give the same Gram matrices as one chunk of every point
    mu = torch.randn(9, 3)
    assert np.allclose(decoder_gram(up, mu, max_elements=3 * 128 * 2), decoder_gram(up, mu, max_elements=1 << 30),
                       atol=1e-6)


def test_dto_of_axis_aligned_decoder_and_active_mask():
    # an elementwise nonlinearity on disjoint output blocks: latent j only moves block j, so every
    # Jacobian has orthogonal columns and V is a signed permutation.
    torch.manual_seed(1)
    d, block = 3, 4
    W = torch.zeros(d, d * block)
    for j in range(d):
        W[j, j * block : (j + 1) * block] = torch.randn(block)
    W[2] = 0.0  # latent 2 ignored (passive)

    def decoder(z):
        return torch.tanh(z @ W)

    mu = torch.randn(64, d)
    out = jacobian_metrics(decoder, mu, active=np.array([True, True, False]))
    assert out["dto_active"] == pytest.approx(0.0, abs=1e-6)
    assert out["dto"] == pytest.approx(0.0, abs=1e-6)  # a zero column is still axis-aligned
    assert out["c_ima"] is None  # the ignored latent makes JᵀJ singular: the contrast is undefined
    W[2, 8:] = torch.randn(block)  # now latent 2 moves its own block: orthogonal columns, c_ima = 0
    assert jacobian_metrics(decoder, mu)["c_ima"] == pytest.approx(0.0, abs=1e-6)
    assert dto(decoder, mu, active=np.array([False] * 3)) == {"dto": out["dto"], "dto_active": None}


def test_rotated_linear_decoder():
    t = np.deg2rad(30)
    R = torch.tensor([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]], dtype=torch.float32)
    A = torch.diag(torch.tensor([3.0, 1.0])) @ R.T  # decoder z -> z Aᵀ has J = A = Σ Rᵀ, so V = R

    def decoder(z):
        return z @ A.T

    out = jacobian_metrics(decoder, torch.randn(10, 2))
    assert out["dto"] == pytest.approx(np.sqrt(4 * (1 - np.cos(t))), abs=1e-5)
    # c_ima closed form for J = Σ Rᵀ: columns have norms² (9c²+s², 9s²+c²), det JᵀJ = det(Σ)² = 9
    c, s = np.cos(t), np.sin(t)
    expect = 0.5 * (np.log(9 * c**2 + s**2) + np.log(9 * s**2 + c**2) - np.log(9.0))
    assert out["c_ima"] == pytest.approx(expect, abs=1e-5)


def test_c_ima_singular_is_none_and_nan_is_an_error():
    G = np.zeros((3, 2, 2))
    G[:, 0, 0] = 1.0
    assert c_ima_from_gram(G) is None
    with pytest.raises(ValueError, match="NaN"):
        jacobian_metrics(lambda z: z * float("nan"), torch.zeros(3, 2))
