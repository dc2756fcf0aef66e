"""workers/metrics/gbt.py against the scikit-learn GradientBoostingClassifier it reimplements.

The reimplementation performs sklearn's floating-point operations in sklearn's order (module docstring), so
importances are compared at 1e-12 — they agreed bit for bit in every case below — and predictions exactly.
"""

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from workers.metrics.dci import completeness, disentanglement, importance_matrix, importance_matrix_sklearn
from workers.metrics.gbt import fit_gbt_classifier

ATOL = 1e-12


def _codes(n: int, d: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous codes (n, d) and classes (n,) that depend (noisily, non-linearly) on the first two codes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    score = x[:, 0] + 0.5 * x[:, 1] ** 2 + 0.3 * rng.normal(size=n)
    return x, np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))


def _assert_same_as_sklearn(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, seed: int = 0) -> np.ndarray:
    ours, (pred_train, pred_test) = fit_gbt_classifier(x, y, [x, x_test], seed=seed)
    model = GradientBoostingClassifier(random_state=seed).fit(x, y)
    np.testing.assert_allclose(ours, model.feature_importances_, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(pred_train, model.predict(x))
    np.testing.assert_array_equal(pred_test, model.predict(x_test))
    return ours


@pytest.mark.parametrize("n_classes, n, d", [(2, 1000, 6), (5, 800, 5), (12, 500, 4)])
def test_continuous_codes_match_sklearn(n_classes, n, d):
    x, y = _codes(n + 300, d, n_classes, seed=n_classes)
    imp = _assert_same_as_sklearn(x[:n], y[:n], x[n:])
    assert imp.sum() == pytest.approx(1.0) and imp[:2].sum() > 0.5  # the informative codes dominate


def test_string_labels_and_other_seed_match_sklearn():
    x, y = _codes(700, 3, 3, seed=1)
    _assert_same_as_sklearn(x[:500], np.array(["a", "b", "c"])[y[:500]], x[500:], seed=7)


def test_label_constant_but_one_sample_matches_sklearn():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(600, 4))
    y = np.zeros(600, dtype=int)
    y[123] = 1
    _assert_same_as_sklearn(x[:500], y[:500], x[500:])


def test_constant_feature_matches_sklearn():
    x, y = _codes(800, 5, 4, seed=3)
    x[:, 2] = 0.25  # never split on; sklearn still draws it in its feature order, so must we
    imp = _assert_same_as_sklearn(x[:600], y[:600], x[600:])
    assert imp[2] == 0.0


def test_rounded_codes_with_many_exact_ties_match_sklearn():
    x, y = _codes(1000, 5, 5, seed=4)
    x = np.round(x, 1)  # ~60 distinct values per code: every node sorts exactly tied values
    _assert_same_as_sklearn(x[:800], y[:800], x[800:])


def test_no_split_possible_gives_zero_importances_like_sklearn():
    x = np.ones((200, 3))
    y = np.r_[np.zeros(150, dtype=int), np.ones(50, dtype=int)]
    imp = _assert_same_as_sklearn(x, y, x[:10])
    assert np.array_equal(imp, np.zeros(3))


def test_threads_do_not_change_the_result():
    x, y = _codes(600, 4, 6, seed=5)
    one = fit_gbt_classifier(x, y, [x], seed=3, n_threads=1)
    two = fit_gbt_classifier(x, y, [x], seed=3, n_threads=2)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1][0], two[1][0])


def test_invalid_input_is_rejected():
    x, y = _codes(50, 2, 2, seed=6)
    with pytest.raises(ValueError, match="2 classes"):
        fit_gbt_classifier(x, np.zeros(50), seed=0)
    with pytest.raises(ValueError, match="NaN"):
        fit_gbt_classifier(np.where(x > 1, np.nan, x), y, seed=0)
    with pytest.raises(ValueError, match="columns"):
        fit_gbt_classifier(x, y, [x[:, :1]], seed=0)


def test_duplicated_code_shares_importance_in_dci():
    """Code 3 is an exact copy of code 0, which alone determines factor 0 (4 classes); code 1 alone
    determines factor 1 (3 classes); code 2 is noise. Every split on the copied code can use either copy
    (exactly tied candidates, chosen by sklearn's feature order), so factor 0's importance is shared
    about equally by codes 0 and 3: C ≈ (1/2)(1 − log 2 / log 4) + (1/2)·1 = 0.75 and D ≈ 1."""
    rng = np.random.default_rng(8)
    n = 1200
    c = rng.uniform(size=(n, 4))
    c[:, 3] = c[:, 0]
    classes = np.stack([np.floor(c[:, 0] * 4), np.floor(c[:, 1] * 3)], axis=1).astype(int)
    tr, te = slice(0, 900), slice(900, n)
    R, acc_train, acc_test = importance_matrix(c[tr], classes[tr], c[te], classes[te], seed=0)
    assert R[0, 0] > 0.3 and R[3, 0] > 0.3 and abs(R[0, 0] - R[3, 0]) < 0.3  # shared, not all on one copy
    assert R[1, 1] > 0.95 and R[2].sum() < 0.05  # the other factor's code and the noise code
    assert disentanglement(R) > 0.95
    assert completeness(R) == pytest.approx(0.75, abs=0.05)
    assert acc_train == 1.0 and acc_test > 0.98
    # and the tie-breaking itself is sklearn's: the same split goes to the same copy
    R_ref, acc_train_ref, acc_test_ref = importance_matrix_sklearn(c[tr], classes[tr], c[te], classes[te], seed=0)
    np.testing.assert_allclose(R, R_ref, rtol=0, atol=ATOL)
    assert (acc_train, acc_test) == (acc_train_ref, acc_test_ref)
