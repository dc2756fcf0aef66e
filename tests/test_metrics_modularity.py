"""Modularity and explicitness against answers known by construction (hand-written MI matrices, codes
that copy, mix or ignore independent discrete factors)."""

import numpy as np
import pytest

from workers.metrics.modularity import explicitness_per_factor, modularity, modularity_explicitness


def _factors(n, sizes, seed):
    return np.random.default_rng(seed).integers(0, sizes, size=(n, len(sizes)))


def test_modularity_of_hand_written_mutual_information():
    one_per_row = np.array([[0.0, 2.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.0, 1e-3]])
    assert modularity(one_per_row) == 1.0
    # uniform row: (K m² − m²) / (m² (K − 1)) = 1 -> 0
    assert modularity(np.full((1, 4), 0.7)) == pytest.approx(0.0, abs=1e-15)
    # rows: template (1), uniform over K (0), no information (0 by definition)
    assert modularity(np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])) == pytest.approx(1 / 3)
    # (2, 1, 0): squares 4, 1, 0 -> 1 − 1 / (4 · 2) = 7/8
    assert modularity(np.array([[2.0, 1.0, 0.0]])) == pytest.approx(7 / 8)
    # one factor: an informative latent is trivially modular, an uninformative one scores 0
    assert modularity(np.array([[0.4], [0.0]])) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        modularity(np.zeros((0, 3)))


def test_noisy_copies_of_single_factors_are_modular():
    f = _factors(6000, (4, 6, 10), seed=0)
    rng = np.random.default_rng(1)
    # each latent copies one factor (factor 2 twice, in a different scale), plus small noise
    codes = np.c_[f[:, 2], f[:, 0], 3.0 * f[:, 2] + 1.0, f[:, 1]] + 0.05 * rng.normal(size=(6000, 4))
    out = modularity_explicitness(codes[:5000], f[:5000], codes[5000:], f[5000:])
    # only the finite-sample MI with the other factors (≈ 1e-2 nats, squared) separates it from 1
    assert out["modularity"] == pytest.approx(1.0, abs=1e-3)


def test_rotated_factors_are_less_modular():
    f = _factors(10_000, (10, 10, 6), seed=2)
    c = f.astype(float)
    rot = c.copy()
    rot[:, 0], rot[:, 1] = (c[:, 0] + c[:, 1]) / np.sqrt(2), (c[:, 0] - c[:, 1]) / np.sqrt(2)
    base = modularity_explicitness(c, f, c, f)["modularity"]
    rotated = modularity_explicitness(rot, f, rot, f)["modularity"]
    assert base == pytest.approx(1.0, abs=1e-3)
    # latents 0, 1 carry equal MI about factors 0, 1 (equal sizes) and none about factor 2: each row is
    # (m, m, 0) -> 1 − m² / (2 m²) = 1/2; latent 2 stays 1 -> (1/2 + 1/2 + 1) / 3
    assert rotated == pytest.approx(2 / 3, abs=0.03)
    two = f[:, :2]
    # with only the two mixed factors each row is (m, m) -> 0
    assert modularity_explicitness(rot[:, :2], two, rot[:, :2], two)["modularity"] < 0.1


def test_codes_holding_the_factors_are_explicit_and_noise_is_chance():
    sizes = (3, 4, 5)
    f_train, f_test = _factors(2000, sizes, seed=3), _factors(1000, sizes, seed=4)
    exact = modularity_explicitness(f_train.astype(float), f_train, f_test.astype(float), f_test)
    # a middle class is an interval of its latent, which a linear one-vs-rest model ranks only through the
    # normalisation across classes: near 1, not exactly
    assert exact["explicitness_train"] == pytest.approx(1.0, abs=0.005)
    assert exact["explicitness_test"] == pytest.approx(1.0, abs=0.005)

    def one_hot(f):
        return np.concatenate([np.eye(size)[f[:, k]] for k, size in enumerate(sizes)], axis=1)

    # one indicator latent per class: every class is linearly separable -> AUC 1
    hot = modularity_explicitness(one_hot(f_train), f_train, one_hot(f_test), f_test)
    assert hot["explicitness_train"] == pytest.approx(1.0, abs=1e-9)
    assert hot["explicitness_test"] == pytest.approx(1.0, abs=1e-9)
    rng = np.random.default_rng(5)
    noise = modularity_explicitness(rng.normal(size=(2000, 4)), f_train, rng.normal(size=(1000, 4)), f_test)
    # AUC of a score independent of the labels is 0.5; 12 classes × ~1000 points -> sd ≈ 0.01
    assert noise["explicitness_test"] == pytest.approx(0.5, abs=0.04)
    assert noise["explicitness_train"] == pytest.approx(0.5, abs=0.06)


def test_explicitness_per_factor_binary_and_degenerate():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, size=500)
    z = np.c_[y + 0.01 * rng.normal(size=500), rng.normal(size=500)]
    assert explicitness_per_factor(z[:400], y[:400], z[400:], y[400:]) == pytest.approx((1.0, 1.0))
    # one class in training: no classifier, undefined
    assert np.isnan(explicitness_per_factor(z, np.zeros(500), z, y)).all()


def test_constant_latents_and_factors():
    f = _factors(3000, (3, 5), seed=7)
    codes = np.c_[f.astype(float), np.zeros(3000)]
    out = modularity_explicitness(codes[:2000], f[:2000], codes[2000:], f[2000:])
    # the constant latent has no information: its row scores 0 -> (1 + 1 + 0) / 3
    assert out["modularity"] == pytest.approx(2 / 3, abs=1e-3)
    assert out["explicitness_test"] == pytest.approx(1.0, abs=1e-6)
    # a constant factor has no classifier and is left out of the explicitness means
    g = np.c_[f, np.zeros(3000)]
    out = modularity_explicitness(codes[:2000], g[:2000], codes[2000:], g[2000:])
    assert out["explicitness_test"] == pytest.approx(1.0, abs=1e-6)
    none = modularity_explicitness(codes, np.zeros((3000, 1)), codes, np.zeros((3000, 1)))
    assert none == {"modularity": 0.0, "explicitness_train": None, "explicitness_test": None}


def test_test_set_missing_a_class_is_scored_on_the_classes_it_holds():
    f = _factors(3000, (4,), seed=8)
    codes = f.astype(float)
    keep = f[:, 0] != 2  # test points of class 2 are gone
    out = modularity_explicitness(codes[:2000], f[:2000], codes[2000:][keep[2000:]], f[2000:][keep[2000:]])
    assert out["explicitness_test"] == pytest.approx(1.0, abs=1e-6)


def test_continuous_factors_are_binned():
    rng = np.random.default_rng(9)
    f = rng.uniform(size=(4000, 2))
    out = modularity_explicitness(f[:3000], f[:3000], f[3000:], f[3000:], discrete=[False, False])
    assert out["modularity"] == pytest.approx(1.0, abs=1e-2)
    # 20 classes of one latent, each an interval: the linear one-vs-rest model ranks them well, not perfectly
    assert out["explicitness_test"] > 0.9


def test_rejects_mismatched_shapes():
    f = _factors(100, (3, 3), seed=10).astype(float)
    with pytest.raises(ValueError):
        modularity_explicitness(f, f, f[:, :1], f)
    with pytest.raises(ValueError):
        modularity_explicitness(f, f[:50], f, f)
