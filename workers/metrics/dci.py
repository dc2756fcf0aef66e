"""DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018; disentanglement_lib).

Per factor, a scikit-learn `GradientBoostingClassifier` with default settings predicts the factor class
from the whole code; its `feature_importances_` give column k of the (d, K) importance matrix R, and its
accuracies on the train and test codes the informativeness (mean over factors). The classifier is
`gbt.fit_gbt_classifier`, an exact numba reimplementation of sklearn's (same trees, importances and
predictions; see gbt.py for the one rounding-level exception); `importance_matrix_sklearn` runs sklearn
itself as the reference. Then, as in disentanglement_lib,

    D = Σ_j ρ_j (1 − H_K(R_j·)),   ρ_j = Σ_k R_jk / Σ R         (entropy of each code's row, base K)
    C = Σ_k ρ_k (1 − H_d(R_·k)),   ρ_k = Σ_j R_jk / Σ R         (entropy of each factor's column, base d)

with 1e-11 added to R inside the entropies and uniform weights when R is all zero. Continuous factors
(synthetic datasets) are discretised with the 20-bin equal-width rule of `discrete.py` before being
classified. Degenerate sizes the library leaves undefined (NaN from a base-1 logarithm) are defined
here: with a single factor every code is trivially disentangled (D = 1), with a single code every factor
is trivially complete (C = 1).

Speed: sklearn's GBT sorts each node's samples again for every feature; gbt.py sorts each feature once
(details there) and gives the same trees, so D, C and both informativeness scores equal those of
`importance_matrix_sklearn`, the reference it is tested and benchmarked against (bench/metrics.py). The
GBTs already use `gbt.default_threads()` threads, so `n_jobs` (factors in parallel processes, each with a
share of those threads, the ones with the most classes first) defaults to 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.ensemble import GradientBoostingClassifier

from workers.metrics.discrete import NUM_BINS, factor_classes
from workers.metrics.gbt import default_threads, fit_gbt_classifier
from workers.metrics.validate import check_pair


def fit_factor(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    n_threads: int | None = None,
) -> tuple[np.ndarray, float, float]:
    """One factor's GBT (sklearn's defaults, `gbt.py`): (importances (d,), train accuracy, test accuracy).

    x_train (N, d), y_train (N,), x_test (M, d), y_test (M,); n_threads caps the GBT's threads."""
    if np.unique(y_train).size < 2:  # a constant factor: nothing to learn, every code is irrelevant
        return np.zeros(x_train.shape[1]), 1.0, float(np.mean(y_test == y_train[0]))
    importances, (pred_train, pred_test) = fit_gbt_classifier(
        x_train, y_train, [x_train, x_test], seed=seed, n_threads=n_threads
    )
    return (
        np.abs(importances),
        float(np.mean(pred_train == y_train)),
        float(np.mean(pred_test == y_test)),
    )


def importance_matrix(
    codes_train: np.ndarray,
    classes_train: np.ndarray,
    codes_test: np.ndarray,
    classes_test: np.ndarray,
    *,
    seed: int,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, float, float]:
    """(R (d, K), mean train accuracy, mean test accuracy) from one GBT per factor.

    codes (N, d) / (M, d), classes (N, K) / (M, K). Each GBT already uses `gbt.default_threads()` threads;
    n_jobs > 1 fits factors in that many processes instead, each with an equal share of those threads."""
    K = classes_train.shape[1]
    n_jobs = min(K, n_jobs or 1)
    order = np.argsort([-np.unique(classes_train[:, k]).size for k in range(K)], kind="stable")
    threads = None if n_jobs == 1 else max(1, default_threads() // n_jobs)
    jobs = [
        delayed(fit_factor)(codes_train, classes_train[:, k], codes_test, classes_test[:, k], seed, threads)
        for k in order
    ]
    results = Parallel(n_jobs=n_jobs)(jobs) if n_jobs > 1 else [job[0](*job[1], **job[2]) for job in jobs]
    R = np.zeros((codes_train.shape[1], K))
    train_acc, test_acc = np.zeros(K), np.zeros(K)
    for k, (imp, a_tr, a_te) in zip(order, results, strict=True):
        R[:, k], train_acc[k], test_acc[k] = imp, a_tr, a_te
    return R, float(train_acc.mean()), float(test_acc.mean())


def importance_matrix_sklearn(
    codes_train: np.ndarray,
    classes_train: np.ndarray,
    codes_test: np.ndarray,
    classes_test: np.ndarray,
    *,
    seed: int,
) -> tuple[np.ndarray, float, float]:
    """`importance_matrix` with scikit-learn's `GradientBoostingClassifier` itself, one factor after the
    other in this process: the reference that `gbt.py` reproduces (the tests compare the two) and the
    straightforward implementation to time against. Same shapes and return value as importance_matrix."""
    K = classes_train.shape[1]
    R = np.zeros((codes_train.shape[1], K))
    train_acc, test_acc = np.zeros(K), np.zeros(K)
    for k in range(K):
        y_train, y_test = classes_train[:, k], classes_test[:, k]
        if np.unique(y_train).size < 2:  # sklearn refuses a single class; same convention as fit_factor
            train_acc[k], test_acc[k] = 1.0, float(np.mean(y_test == y_train[0]))
            continue
        model = GradientBoostingClassifier(random_state=seed).fit(codes_train, y_train)
        R[:, k] = np.abs(model.feature_importances_)
        train_acc[k] = np.mean(model.predict(codes_train) == y_train)
        test_acc[k] = np.mean(model.predict(codes_test) == y_test)
    return R, float(train_acc.mean()), float(test_acc.mean())


def _one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """1 − H(rows of p normalised, base `base`) with disentanglement_lib's 1e-11; 1 for base 1."""
    if base == 1:
        return np.ones(p.shape[0])
    q = p + 1e-11
    q = q / q.sum(axis=1, keepdims=True)
    return 1.0 - (-(q * np.log(q)).sum(axis=1) / np.log(base))


def disentanglement(R: np.ndarray) -> float:
    """D from an importance matrix R (d codes, K factors)."""
    per_code = _one_minus_entropy(R, R.shape[1])
    weights = R if R.sum() > 0 else np.ones_like(R)
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def completeness(R: np.ndarray) -> float:
    """C from an importance matrix R (d codes, K factors)."""
    per_factor = _one_minus_entropy(R.T, R.shape[0])
    weights = R if R.sum() > 0 else np.ones_like(R)
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    seed: int,
    discrete: np.ndarray | list[bool] | None = None,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """DCI from train codes/factors (N, d)/(N, K) and test codes/factors (M, d)/(M, K).

    disentanglement_lib uses N = 10,000 and M = 5,000. `discrete` (K,) marks discrete factors (None:
    integer-valued columns); continuous ones are binned (20 equal-width bins over train ∪ test).
    Returns {"dci_disentanglement", "dci_completeness", "dci_informativeness_train",
    "dci_informativeness_test", "importance_matrix" (list of d lists of K floats)}.
    """
    codes_train, factors_train = check_pair(codes_train, factors_train)
    codes_test, factors_test = check_pair(codes_test, factors_test)
    if codes_train.shape[1] != codes_test.shape[1] or factors_train.shape[1] != factors_test.shape[1]:
        raise ValueError("dci: train and test codes/factors must have the same number of columns")
    n = codes_train.shape[0]
    classes = factor_classes(np.concatenate([factors_train, factors_test]), discrete, NUM_BINS)
    R, acc_train, acc_test = importance_matrix(
        codes_train, classes[:n], codes_test, classes[n:], seed=seed, n_jobs=n_jobs
    )
    return {
        "dci_disentanglement": disentanglement(R),
        "dci_completeness": completeness(R),
        "dci_informativeness_train": acc_train,
        "dci_informativeness_test": acc_test,
        "importance_matrix": R.tolist(),
    }
