"""IRS against answers known by construction (codes that are functions of one factor, of two, of none)."""

import numpy as np
import pytest

from workers.metrics.irs import irs


def _factors(n=10_000, sizes=(10, 10, 6), seed=0):
    return np.random.default_rng(seed).integers(0, sizes, size=(n, len(sizes)))


def test_functions_of_single_factors_score_one():
    f = _factors()
    # fixing factor k pins each latent that is a function of it: every within-class deviation is 0
    codes = np.c_[np.exp(f[:, 2]), -3.0 * f[:, 0] + 1.0, f[:, 1] ** 2]
    out = irs(codes, f)
    # exact up to the rounding of the class means
    assert out["irs"] == pytest.approx(1.0, abs=1e-12)
    assert out["irs_per_factor"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    assert out["irs_active_dims"] == 3
    assert irs(codes, f, diff_quantile=1.0)["irs"] == pytest.approx(1.0, abs=1e-12)


def test_latent_mixing_two_factors_is_less_robust():
    f = _factors()
    # latent 0 = f0 + f1: fixing f0, intervening on f1 moves it over f1's range (9), half of its own
    # spread (max |z0 − mean| ≈ 9) -> IRS_00 ≈ 1 − 4.5/9 = 1/2. Latents 1, 2 copy f1, f2 (score 1).
    # Weights are the spreads, 9 : 4.5 : 2.5 -> irs ≈ (9/2 + 4.5 + 2.5) / 16
    codes = np.c_[f[:, 0] + f[:, 1], f[:, 1], f[:, 2]].astype(float)
    out = irs(codes, f)
    assert out["irs"] == pytest.approx((4.5 + 4.5 + 2.5) / 16, abs=0.02)
    assert out["irs_per_factor"][0] == pytest.approx(0.5, abs=0.02)
    assert out["irs_per_factor"][1:] == pytest.approx([1.0, 1.0], abs=1e-12)
    assert out["irs"] < irs(f.astype(float), f)["irs"] - 0.2


def test_constant_latents_are_dropped_and_counted():
    f = _factors()
    codes = np.c_[np.zeros(10_000), f[:, 0], np.full(10_000, 3.5), f[:, 1], f[:, 2]].astype(float)
    out = irs(codes, f)
    assert out["irs_active_dims"] == 3
    assert out["irs"] == pytest.approx(1.0, abs=1e-12)  # the constant latents neither count nor dilute
    none = irs(np.ones((500, 4)), f[:500])
    assert none == {"irs": 0.0, "irs_per_factor": [0.0, 0.0, 0.0], "irs_active_dims": 0}


def test_factor_no_latent_isolates_scores_low():
    f = _factors()
    out = irs(f[:, :2].astype(float), f)
    assert out["irs"] == pytest.approx(1.0, abs=1e-12)
    # fixing f2 leaves f0 / f1 spread over their whole range: deviation ≈ the maximal one
    assert out["irs_per_factor"][2] == pytest.approx(0.0, abs=0.05)


def test_noise_scores_low():
    f = _factors()
    rng = np.random.default_rng(1)
    uniform = rng.uniform(-1.0, 1.0, size=(10_000, 4))
    # independent of the factors: each class's 99 % quantile of |z| is ≈ 0.99 of the maximum |z| ≈ 1
    assert irs(uniform, f)["irs"] == pytest.approx(0.01, abs=0.01)
    gauss = rng.normal(size=(10_000, 4))
    dev = np.abs(gauss - gauss.mean(axis=0))
    # same for Gaussian noise: 1 − q_0.99(|z|) / max |z| per latent, weighted by max |z|
    expected = np.average(1.0 - np.quantile(dev, 0.99, axis=0) / dev.max(axis=0), weights=dev.max(axis=0))
    out = irs(gauss, f)
    assert out["irs"] == pytest.approx(expected, abs=0.03)
    assert out["irs"] < 0.45
    assert max(out["irs_per_factor"]) < 0.45


def test_factors_with_more_classes_than_bins_are_binned():
    f = _factors(sizes=(40, 5), seed=2)
    codes = f.astype(float)
    # 40 classes in 20 bins: pairs of classes share a bin, so fixing the bin leaves ±0.5 of 19.5
    assert 0.95 < irs(codes, f)["irs_per_factor"][0] < 1.0
    assert irs(codes, f, num_bins=40)["irs_per_factor"][0] == pytest.approx(1.0, abs=1e-12)


def test_rejects_bad_input():
    f = _factors(n=100)
    with pytest.raises(ValueError):
        irs(f[:50].astype(float), f)
    with pytest.raises(ValueError):
        irs(f.astype(float), f, diff_quantile=1.5)
    with pytest.raises(ValueError):
        irs(np.full((100, 2), np.nan), f)
