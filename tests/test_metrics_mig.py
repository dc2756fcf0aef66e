"""MIG and MIG-sup against answers known by construction (and sklearn's MI as an independent check)."""

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from workers.metrics.discrete import histogram_discretize, mutual_info
from workers.metrics.mig import mig, mig_sup


def _factors(n=10_000, sizes=(3, 6, 10, 8), seed=0):
    return np.random.default_rng(seed).integers(0, sizes, size=(n, len(sizes)))


# a perfect code scores 1 minus the finite-sample MI of the runner-up code (≈ (bins−1)(K−1)/(2N H))
NEAR_ONE = 0.01


def test_perfect_code_scores_one_and_noise_zero():
    f = _factors()
    assert mig(f.astype(float), f)["mig"] == pytest.approx(1.0, abs=NEAR_ONE)
    assert mig_sup(f.astype(float), f)["mig_sup"] == pytest.approx(1.0, abs=NEAR_ONE)
    noise = np.random.default_rng(1).normal(size=(10_000, 6))
    assert mig(noise, f)["mig"] < 0.01
    assert mig_sup(noise, f)["mig_sup"] < 0.01


def test_permuted_rescaled_codes_score_like_the_identity():
    f = _factors()
    codes = f[:, [2, 0, 3, 1]] * np.array([0.1, -3.0, 7.0, -0.5]) + 4.0
    out, identity = mig(codes, f), mig(f.astype(float), f)
    assert out["mig_per_factor"] == pytest.approx(identity["mig_per_factor"], abs=1e-12)
    assert out["mig"] == pytest.approx(identity["mig"])


def test_rotated_pair_lowers_mig_and_mig_sup():
    f = _factors(sizes=(10, 10, 10))
    c = f.astype(float)
    rot = c.copy()
    rot[:, 0], rot[:, 1] = (c[:, 0] + c[:, 1]) / np.sqrt(2), (c[:, 0] - c[:, 1]) / np.sqrt(2)
    base, rotated = mig(c, f), mig(rot, f)
    assert rotated["mig_per_factor"][0] < base["mig_per_factor"][0] - 0.3
    assert rotated["mig_per_factor"][2] == pytest.approx(base["mig_per_factor"][2], abs=NEAR_ONE)
    assert mig_sup(rot, f)["mig_sup"] < mig_sup(c, f)["mig_sup"] - 0.2


def test_mutual_information_matches_sklearn():
    rng = np.random.default_rng(2)
    f = _factors(n=3000)
    codes = f @ rng.normal(size=(4, 3)) + rng.normal(size=(3000, 3))
    a = histogram_discretize(codes)
    mi = mutual_info(a, f)
    for j in range(3):
        for k in range(4):
            assert mi[j, k] == pytest.approx(mutual_info_score(f[:, k], a[:, j]), abs=1e-12)


def test_continuous_factors_use_the_same_binning():
    f = np.random.default_rng(3).uniform(size=(5000, 2))
    explicit = mig(f[:, ::-1] * 3.0, f, discrete=[False, False])["mig_per_factor"]
    inferred = mig(f, f)["mig_per_factor"]  # non-integer columns are inferred to be continuous
    assert explicit == pytest.approx(inferred, abs=1e-12)
    assert inferred == pytest.approx([1.0, 1.0], abs=0.02)  # 20×20 bins on 5,000 points: bias ≈ 0.012


def test_degenerate_inputs():
    f = _factors(n=2000)
    f[:, 1] = 4  # a constant factor has no entropy: its gap is undefined (None), not NaN
    out = mig(f.astype(float), f)
    assert out["mig_per_factor"][1] is None and out["mig"] == pytest.approx(1.0, abs=NEAR_ONE)
    single = mig(f[:, :1].astype(float), f)  # one code: the gap is the normalised MI itself
    assert single["mig_per_factor"][0] == pytest.approx(1.0, abs=1e-12)
    assert mig(np.ones((2000, 3)), f)["mig"] == 0.0  # constant codes carry no information
    assert mig_sup(f.astype(float), f, active=np.zeros(4, bool))["mig_sup"] is None
    with pytest.raises(ValueError, match="codes contains NaN"):
        mig(np.full((2000, 3), np.nan), f)
    with pytest.raises(ValueError, match="rows"):
        mig(np.ones((10, 3)), f)
