"""Disentanglement Score (thesis eqs. 3.32–3.37) against answers known by construction."""

import numpy as np
import pytest

from workers.metrics.ds import ds


def _discrete(n=3000, sizes=(3, 4, 5), seed=0):
    rng = np.random.default_rng(seed)
    f = rng.integers(0, sizes, size=(n, len(sizes)))
    return f, f + rng.normal(0, 0.05, size=f.shape)  # perfect codes, jittered so 5-NN has no ties


# the runner-up latent is irrelevant, but a 5-NN fit on 600 test points beats the constant predictor by
# chance by a few percent: a perfect code scores 1 minus that (≈ 0.04)
NEAR_ONE = 0.08


def test_perfect_discrete_code_scores_one():
    f, codes = _discrete()
    out = ds(codes, f, discrete=[True] * 3, seed=0)
    assert out["ds"] == pytest.approx(1.0, abs=NEAR_ONE)
    assert out["ds_per_factor"] == pytest.approx([1.0, 1.0, 1.0], abs=NEAR_ONE)


def test_perfect_continuous_code_scores_near_one_and_noise_zero():
    rng = np.random.default_rng(1)
    f = rng.uniform(size=(3000, 2))
    out = ds(f.copy(), f, discrete=[False, False], seed=0)
    # 5-NN regression on 2,400 uniform points: rmse ≈ spacing ≈ 1e-3 of std 0.29
    assert out["ds"] == pytest.approx(1.0, abs=0.02)
    noise = ds(rng.normal(size=(3000, 2)), f, discrete=[False, False], seed=0)
    assert noise["ds"] == pytest.approx(0.0, abs=0.05)


def test_permuted_rescaled_codes_score_like_the_identity():
    f, codes = _discrete()
    moved = codes[:, [2, 0, 1]] * np.array([10.0, -0.3, 2.0]) - 7.0
    a, b = ds(codes, f, discrete=[True] * 3, seed=3), ds(moved, f, discrete=[True] * 3, seed=3)
    assert b["ds_per_factor"] == pytest.approx(a["ds_per_factor"], abs=1e-12)


def test_rotated_pair_lowers_ds():
    f, codes = _discrete(sizes=(5, 5, 5))
    rot = codes.copy()
    rot[:, 0], rot[:, 1] = codes[:, 0] + codes[:, 1], codes[:, 0] - codes[:, 1]
    base, rotated = ds(codes, f, discrete=[True] * 3, seed=0), ds(rot, f, discrete=[True] * 3, seed=0)
    assert rotated["ds_per_factor"][0] < base["ds_per_factor"][0] - 0.3
    assert rotated["ds_per_factor"][2] == pytest.approx(base["ds_per_factor"][2], abs=NEAR_ONE)


def test_bounded_and_degenerate_inputs():
    f, codes = _discrete(n=500)
    f[:, 1] = 2  # constant factor: undefined, left out
    out = ds(codes, f, discrete=[True] * 3, seed=0)
    assert out["ds_per_factor"][1] is None and 0.0 <= out["ds"] <= 1.0
    one = ds(codes[:, :1], f, discrete=[True] * 3, seed=0)  # single latent: the gap is its skill
    assert one["ds_per_factor"][0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="discrete"):
        ds(codes, f, discrete=[True], seed=0)
    with pytest.raises(ValueError, match="too few"):
        ds(codes[:4], f[:4], discrete=[True] * 3, seed=0)
