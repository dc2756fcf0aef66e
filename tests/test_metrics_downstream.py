"""Downstream task scores on codes whose predictability is known by construction."""

import numpy as np
import pytest

from workers.metrics.downstream import downstream_scores, fit_predict

SIZES = (10, 100, 1000)
NUM_CLASSES = (4, 2)  # balanced factors: chance accuracy is 1/4 and 1/2


def _data(n, seed, noise):
    """Balanced class-index factors (n, 2) and codes = factors + Gaussian noise (n, 2) plus a noise latent."""
    rng = np.random.default_rng(seed)
    f = np.stack([rng.permutation(np.arange(n) % c) for c in NUM_CLASSES], axis=1)
    codes = np.column_stack([f + rng.normal(0, noise, size=f.shape), rng.normal(size=n)])
    return codes, f


@pytest.mark.parametrize("predictor", ["logreg", "gbt"])
def test_codes_equal_to_factors_are_perfectly_predictive(predictor):
    (c_tr, f_tr), (c_te, f_te) = _data(1200, 0, 0.01), _data(1000, 1, 0.01)
    s = downstream_scores(c_tr, f_tr, c_te, f_te, predictor=predictor, sizes=SIZES, seed=0)
    assert list(s) == [f"downstream_{predictor}_{n}_{part}" for n in SIZES for part in ("train", "test")]
    assert s[f"downstream_{predictor}_1000_test"] == pytest.approx(1.0, abs=0.01)
    assert s[f"downstream_{predictor}_1000_train"] == pytest.approx(1.0, abs=0.01)
    assert all(0.0 <= v <= 1.0 for v in s.values())


@pytest.mark.parametrize("predictor", ["logreg", "gbt"])
def test_noise_codes_score_chance(predictor):
    rng = np.random.default_rng(2)
    (_, f_tr), (_, f_te) = _data(1000, 3, 0.0), _data(4000, 4, 0.0)
    c_tr, c_te = rng.normal(size=(1000, 3)), rng.normal(size=(4000, 3))
    s = downstream_scores(c_tr, f_tr, c_te, f_te, predictor=predictor, sizes=(1000,), seed=0)
    chance = np.mean([1.0 / c for c in NUM_CLASSES])
    assert s[f"downstream_{predictor}_1000_test"] == pytest.approx(chance, abs=0.04)


@pytest.mark.parametrize("predictor", ["logreg", "gbt"])
def test_more_training_data_does_not_hurt_an_informative_code(predictor):
    (c_tr, f_tr), (c_te, f_te) = _data(1000, 5, 0.3), _data(2000, 6, 0.3)
    s = downstream_scores(c_tr, f_tr, c_te, f_te, predictor=predictor, sizes=SIZES, seed=1)
    chance = np.mean([1.0 / c for c in NUM_CLASSES])
    # noise sd 0.3 around integer classes: the Bayes accuracy is ≈ 0.9 (4 classes) and ≈ 0.95 (2 classes)
    assert s[f"downstream_{predictor}_1000_test"] >= s[f"downstream_{predictor}_10_test"]
    assert s[f"downstream_{predictor}_1000_test"] > chance + 0.3


def test_sizes_larger_than_the_pool_are_none_and_sizes_are_independent():
    (c_tr, f_tr), (c_te, f_te) = _data(150, 7, 0.1), _data(200, 8, 0.1)
    s = downstream_scores(c_tr, f_tr, c_te, f_te, predictor="logreg", sizes=(10, 100, 1000), seed=3)
    assert s["downstream_logreg_1000_train"] is None and s["downstream_logreg_1000_test"] is None
    alone = downstream_scores(c_tr, f_tr, c_te, f_te, predictor="logreg", sizes=(100,), seed=3)
    assert alone["downstream_logreg_100_test"] == s["downstream_logreg_100_test"]  # same rows drawn for n=100


@pytest.mark.parametrize("predictor", ["logreg", "gbt"])
def test_single_class_training_labels_predict_that_class(predictor):
    x = np.random.default_rng(9).normal(size=(10, 2))
    y_test = np.array([2, 2, 2, 0])
    assert fit_predict(predictor, x, np.full(10, 2), x[:4], y_test, seed=0) == (1.0, 0.75)


def test_invalid_inputs_are_rejected():
    (c, f) = _data(50, 10, 0.1)
    with pytest.raises(ValueError, match="class indices"):
        downstream_scores(c, f + 0.5, c, f, predictor="gbt", sizes=(10,))
    with pytest.raises(ValueError, match="predictor"):
        downstream_scores(c, f, c, f, predictor="svm", sizes=(10,))
    with pytest.raises(ValueError, match=">= 5"):
        downstream_scores(c, f, c, f, predictor="logreg", sizes=(4,))
