"""UDR (Duan et al. 2020, disentanglement_lib `udr.py`) against answers known by construction."""

import itertools

import numpy as np
import pytest
from scipy.stats import ortho_group, spearmanr

from workers.metrics.udr import (
    active_dims_from_kl,
    mean_gaussian_kl,
    relative_strength,
    udr,
    udr_pairwise,
    udr_scores,
)

ALPHA = 0.1


def _grid(levels: int, d: int) -> np.ndarray:
    """Full factorial design: columns independent in the sample, so every off-diagonal (rank) correlation is 0."""
    return np.array(list(itertools.product(range(levels), repeat=d)), dtype=np.float64)


def _whitened(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Gaussian codes made exactly zero-mean with identity sample covariance (population variance)."""
    x = rng.normal(size=(n, d))
    q, _ = np.linalg.qr(x - x.mean(axis=0))
    return q * np.sqrt(n)


def _all(*dims: int) -> list[np.ndarray]:
    return [np.ones(d, dtype=bool) for d in dims]


def _expected_relative_strength(R: np.ndarray) -> float:
    """The reference formula written out per column and per row, independently of the module."""
    cols = [R[:, l].max() ** 2 / R[:, l].sum() if R[:, l].sum() > 0 else 0.0 for l in range(R.shape[1])]
    rows = [R[k].max() ** 2 / R[k].sum() if R[k].sum() > 0 else 0.0 for k in range(R.shape[0])]
    return 0.5 * (np.mean(cols) + np.mean(rows))


def _gaussian_spearman(rho: np.ndarray) -> np.ndarray:
    """Population Spearman correlation of a bivariate normal with Pearson correlation rho."""
    return 6 / np.pi * np.arcsin(rho / 2)


def test_identical_restarts_on_a_grid_are_exact():
    z = _grid(4, 5)  # N = 1024, d = 5
    s = udr([z, z.copy()], _all(5, 5))
    # Spearman: identity similarity matrix -> every row and column scores 1² / 1.
    np.testing.assert_allclose(s["udr_spearman"], 1.0, atol=1e-12)
    # Lasso on orthogonal standardised predictors: each target gets weight soft(1, alpha) = 1 - alpha, the
    # others soft(0, alpha) = 0, so every row and column scores (1 - alpha)² / (1 - alpha).
    np.testing.assert_allclose(s["udr_lasso"], 1 - ALPHA, atol=1e-6)
    np.testing.assert_allclose(udr_scores([z, z], _all(5, 5), method="lasso", lasso_alpha=0.3), 0.7, atol=1e-6)


def test_identical_gaussian_restarts():
    rng = np.random.default_rng(0)
    n, d = 2000, 5
    z = rng.normal(size=(n, d))
    s = udr([z, z, z], _all(d, d, d))
    # Diagonal 1, off-diagonal |null Spearman| with mean sqrt(2 / (pi (N - 1))): a column scores about
    # 1 / (1 + (d - 1) * 0.018) = 0.93, not 1; the sum over 4 entries has sd ≈ 0.027 per column.
    expected = 1 / (1 + (d - 1) * np.sqrt(2 / (np.pi * (n - 1))))
    np.testing.assert_allclose(s["udr_spearman"], expected, atol=0.03)
    # Lasso: w = (1 - alpha) e_l satisfies the KKT conditions whenever every |sample correlation| < alpha.
    np.testing.assert_allclose(s["udr_lasso"], 1 - ALPHA, atol=1e-4)


def test_signed_permutations_scalings_and_shifts_do_not_change_the_score():
    rng = np.random.default_rng(1)
    n, d = 2000, 5
    z = rng.normal(size=(n, d))
    base = udr([z, z, z], _all(d, d, d))
    restarts = [z]
    for _ in range(2):
        perm, signs = rng.permutation(d), rng.choice([-1.0, 1.0], size=d)
        scale, shift = rng.uniform(0.5, 3.0, size=d), rng.normal(size=d)
        restarts.append(z[:, perm] * signs * scale + shift + 1e-9 * rng.normal(size=(n, d)))
    moved = udr(restarts, _all(d, d, d))
    np.testing.assert_allclose(moved["udr_spearman"], base["udr_spearman"], atol=1e-3)
    np.testing.assert_allclose(moved["udr_lasso"], 1 - ALPHA, atol=1e-4)
    g = _grid(4, 4)
    flipped = -g[:, [2, 0, 3, 1]] * 5.0
    np.testing.assert_allclose(udr([g, flipped], _all(4, 4))["udr_spearman"], 1.0, atol=1e-12)


def test_hadamard_rotation_scores_its_analytic_value():
    rng = np.random.default_rng(2)
    z = _whitened(rng, 4000, 4)
    H = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2.0
    s = udr([z, z @ H], _all(4, 4))
    # Every new latent mixes every old one with weight ±1/2 and the codes stay white: Lasso weights are all
    # soft(1/2, alpha) = 0.4, so a column scores 0.4² / (4 * 0.4) = 0.1.
    np.testing.assert_allclose(s["udr_lasso"], (0.5 - ALPHA) / 4, atol=1e-6)
    # All |Spearman| equal (6/pi) asin(1/4) = 0.483 up to sampling noise: a column scores 0.483 / 4.
    np.testing.assert_allclose(s["udr_spearman"], _gaussian_spearman(0.5) / 4, atol=0.01)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_rotations_score_low(seed):
    rng = np.random.default_rng(10 + seed)
    d = 8
    R = ortho_group.rvs(d, random_state=seed)
    z = _whitened(rng, 3000, d)
    s = udr([z, z @ R], _all(d, d))
    # White codes: the Lasso weights are exactly soft(R, alpha), so the score is known in closed form.
    lasso_expected = _expected_relative_strength(np.maximum(np.abs(R) - ALPHA, 0.0))
    np.testing.assert_allclose(s["udr_lasso"], lasso_expected, atol=1e-5)
    # Spearman: entries f(|R|) with f(r) = (6/pi) asin(r/2), and (3/pi) r <= f(r) <= r. A unit column with
    # largest entry m has sum |c| >= 1/m, so each column (and row) scores at most (pi/3) m³.
    largest = np.concatenate([np.abs(R).max(axis=0), np.abs(R).max(axis=1)])
    bound = np.pi / 3 * np.mean(largest**3)
    assert bound < 0.45  # this rotation mixes: no row or column is close to a single axis
    assert np.all(s["udr_spearman"] < bound + 0.03)  # 0.03: sampling noise of N = 3000 rank correlations
    spearman_expected = _expected_relative_strength(_gaussian_spearman(np.abs(R)))
    np.testing.assert_allclose(s["udr_spearman"], spearman_expected, atol=0.03)
    assert np.all(s["udr_spearman"] < 0.5) and np.all(s["udr_lasso"] < 0.5)


def test_inactive_dims_do_not_change_the_score():
    rng = np.random.default_rng(3)
    n, d = 2000, 5
    z = rng.normal(size=(n, d))
    perm = rng.permutation(d)
    clean = [z, z[:, perm], -z]
    base_sp = udr_pairwise(clean, _all(d, d, d), method="spearman")
    base_la = udr_pairwise(clean, _all(d, d, d), method="lasso")
    # Restart 0 gains a constant latent, restart 1 a noisy latent whose KL is below the threshold, restart 2
    # nothing: the restarts now have different d_m.
    kl_low = np.r_[np.full(d, 1.5), 0.004]
    padded = [np.c_[z, np.full(n, 0.3)], np.c_[z[:, perm], rng.normal(size=n)], -z]
    active = [np.r_[np.ones(d, bool), False], active_dims_from_kl(kl_low), np.ones(d, bool)]
    np.testing.assert_array_equal(active[1], np.r_[np.ones(d, bool), False])
    np.testing.assert_allclose(udr_pairwise(padded, active, method="spearman"), base_sp, atol=1e-12)
    np.testing.assert_allclose(udr_pairwise(padded, active, method="lasso"), base_la, atol=1e-9)
    # Marking the noisy latent active instead does change the score (the filter is what protects it).
    on = [active[0], np.ones(d + 1, bool), active[2]]
    assert udr_scores(padded, on, method="spearman")[1] < udr_scores(clean, _all(d, d, d), method="spearman")[1]


def test_active_constant_latent_scores_zero_similarity_not_nan():
    z = _grid(4, 5)
    with_const = np.c_[z, np.full(len(z), 2.0)]
    active = [np.ones(6, bool), np.ones(5, bool)]
    pairs = {m: udr_pairwise([with_const, z], active, method=m) for m in ("spearman", "lasso")}
    # The constant latent is a zero row (or column): its half scores (5 * top + 0) / 6, the other half top.
    for m, top in (("spearman", 1.0), ("lasso", 1 - ALPHA)):
        assert np.all(np.isfinite(pairs[m][~np.eye(2, dtype=bool)]))
        np.testing.assert_allclose(pairs[m][0, 1], 0.5 * (top + top * 5 / 6), atol=1e-6)
        np.testing.assert_allclose(pairs[m][1, 0], 0.5 * (top + top * 5 / 6), atol=1e-6)


def test_restart_without_active_dims_scores_zero():
    z = _grid(4, 4)
    codes = [z, z, z, z[:, ::-1]]
    active = _all(4, 4, 4) + [np.zeros(4, bool)]
    for method in ("spearman", "lasso"):
        P = udr_pairwise(codes, active, method=method)
        np.testing.assert_array_equal(P[3, :3], 0.0)
        np.testing.assert_array_equal(P[:3, 3], 0.0)
        top = 1.0 if method == "spearman" else 1 - ALPHA
        # The three intact restarts: median of (top, top, 0) = top; the collapsed one: median of zeros.
        np.testing.assert_allclose(udr_scores(codes, active, method=method), [top, top, top, 0.0], atol=1e-6)


def test_mixed_set_ranks_the_rotated_restart_last():
    rng = np.random.default_rng(4)
    n, d = 2000, 5
    z = rng.normal(size=(n, d))
    restarts = [z + 0.01 * rng.normal(size=(n, d))]
    for _ in range(2):
        perm, signs = rng.permutation(d), rng.choice([-1.0, 1.0], size=d)
        restarts.append(z[:, perm] * signs + 0.01 * rng.normal(size=(n, d)))
    restarts.append(z @ ortho_group.rvs(d, random_state=4))
    s = udr(restarts, _all(d, d, d, d))
    for key in ("udr_spearman", "udr_lasso"):
        assert np.argmin(s[key]) == 3
        # Each permuted restart has two near-perfect partners out of three, so its median is near-perfect;
        # the rotated one has none.
        assert s[key][:3].min() > 0.85
        assert s[key][3] < s[key][:3].min() - 0.3


def test_fewer_than_two_restarts_is_nan():
    z = np.random.default_rng(5).normal(size=(100, 3))
    s = udr([z], _all(3))
    assert s["udr_spearman"].shape == (1,) and np.isnan(s["udr_spearman"]).all()
    assert np.isnan(s["udr_lasso"]).all()
    assert np.isnan(udr_pairwise([z], _all(3), method="spearman")).all()
    assert udr_scores([], [], method="spearman").shape == (0,)


def test_pairwise_diagonal_and_symmetry():
    rng = np.random.default_rng(6)
    z = rng.normal(size=(500, 4))
    codes = [z, z @ ortho_group.rvs(4, random_state=1), rng.normal(size=(500, 3))]
    P = udr_pairwise(codes, _all(4, 4, 3), method="spearman")
    assert np.isnan(np.diag(P)).all()
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(P[off], P.T[off], atol=1e-12)  # |Spearman| of (j, i) is the transpose
    assert np.all((P[off] >= 0) & (P[off] <= 1))


def _reference_loop(reps, kl, method):
    """A direct loop transcription of the reference's compute_udr_sklearn on precomputed codes and KLs."""
    from sklearn.linear_model import Lasso
    from sklearn.preprocessing import StandardScaler

    M = len(reps)
    reps = [StandardScaler().fit_transform(r) * (k > 0.01) for r, k in zip(reps, kl, strict=True)]
    masks = [k > 0.01 for k in kl]
    P = np.zeros((M, M))
    for i, j in itertools.permutations(range(M), 2):
        if method == "lasso":
            R = np.abs(Lasso(alpha=ALPHA, random_state=0).fit(reps[i], reps[j]).coef_).T
        else:
            R = np.array(
                [
                    [abs(spearmanr(reps[i][:, a], reps[j][:, b])[0]) for b in range(reps[j].shape[1])]
                    for a in range(reps[i].shape[1])
                ]
            )
        P[i, j] = _expected_relative_strength(R[masks[i]][:, masks[j]])
    return P, np.array([np.median(np.delete(P[:, i], i)) for i in range(M)])


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # the reference's zeroed inactive dims
@pytest.mark.parametrize("method", ["spearman", "lasso"])
def test_matches_a_loop_transcription_of_the_reference(method):
    rng = np.random.default_rng(7)
    n, d = 400, 4
    base = rng.normal(size=(n, d))
    reps = [base @ (np.eye(d) + 0.4 * rng.normal(size=(d, d))) + 0.3 * rng.normal(size=(n, d)) for _ in range(4)]
    kl = [
        np.array([2.0, 0.5, 0.005, 1.0]),
        np.array([1.0, 1.0, 1.0, 1.0]),
        np.array([0.02, 0.3, 0.8, 0.001]),
        np.array([0.9, 0.0, 0.7, 0.4]),
    ]
    P_ref, s_ref = _reference_loop(reps, kl, method)
    active = [active_dims_from_kl(k) for k in kl]
    P = udr_pairwise(reps, active, method=method)
    off = ~np.eye(4, dtype=bool)
    np.testing.assert_allclose(P[off], P_ref[off], atol=1e-6)
    np.testing.assert_allclose(udr_scores(reps, active, method=method), s_ref, atol=1e-6)


def test_kl_helpers():
    mean = np.zeros((50, 3))
    mean[:, 1] = np.linspace(-2, 2, 50)
    logvar = np.zeros((50, 3))
    logvar[:, 2] = np.log(0.01)
    kl = mean_gaussian_kl(mean, logvar)
    # KL(N(mu, s²) || N(0, 1)) = (mu² + s² - log s² - 1) / 2 nats.
    np.testing.assert_allclose(kl, [0.0, 0.5 * np.mean(mean[:, 1] ** 2), 0.5 * (0.01 - np.log(0.01) - 1)])
    np.testing.assert_array_equal(active_dims_from_kl(kl), [False, True, True])
    np.testing.assert_array_equal(active_dims_from_kl(np.array([0.01, 0.0100001])), [False, True])  # strict
    with pytest.raises(ValueError, match="kl_per_dim"):
        active_dims_from_kl(np.ones((2, 3)))


def test_bad_inputs_raise():
    z = np.random.default_rng(8).normal(size=(100, 3))
    with pytest.raises(ValueError, match="NaN"):
        udr([z, np.full((100, 3), np.nan)], _all(3, 3))
    with pytest.raises(ValueError, match="same inputs"):
        udr([z, z[:50]], _all(3, 3))
    with pytest.raises(ValueError, match="mask"):
        udr([z, z], [np.ones(3, bool), np.ones(2, bool)])
    with pytest.raises(ValueError, match="method"):
        udr_pairwise([z, z], _all(3, 3), method="pearson")  # type: ignore[arg-type]
    assert relative_strength(np.zeros((0, 3))) == 0.0
