"""Separated Attribute Predictability, SAP (Kumar et al. 2018; disentanglement_lib `sap_score.py`).

A (d, K) score matrix: for a discrete factor, the test accuracy of `LinearSVC(C=0.01,
class_weight="balanced")` predicting the factor class from one latent (fit on the train codes); for a
continuous factor, the squared correlation cov(z_j, v_k)² / (var z_j var v_k) on the train codes (0 for a
constant latent). SAP = mean over factors of the gap between the two best latents.

`continuous` may be a bool for all factors (disentanglement_lib's flag) or a (K,) mask (synthetic datasets
have continuous factors, which use the squared correlation and need no binning). A single latent has a
second best of 0; a constant factor scores 0 everywhere (gap 0) in the correlation form.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from workers.metrics.validate import check_pair


def score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous: np.ndarray,
) -> np.ndarray:
    """(d, K) SAP scores (accuracy or squared correlation per latent and factor)."""
    d, K = codes_train.shape[1], factors_train.shape[1]
    S = np.zeros((d, K))
    for k in range(K):
        y = factors_train[:, k]
        for j in range(d):
            z = codes_train[:, j]
            if continuous[k]:
                cov = np.cov(z, y, ddof=1)
                S[j, k] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 and cov[1, 1] > 0 else 0.0
            elif np.unique(y).size < 2:
                S[j, k] = 1.0  # one class: every predictor is right; the gap is 0
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    clf = LinearSVC(C=0.01, class_weight="balanced").fit(z[:, None], y.astype(np.int64))
                S[j, k] = float(np.mean(clf.predict(codes_test[:, j : j + 1]) == factors_test[:, k]))
    return S


def sap(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    continuous: bool | np.ndarray | list[bool] = False,
) -> dict[str, Any]:
    """SAP from train (N, d)/(N, K) and test (M, d)/(M, K) codes/factors (disentanglement_lib: 10,000/5,000).

    Returns {"sap": float}."""
    codes_train, factors_train = check_pair(codes_train, factors_train)
    codes_test, factors_test = check_pair(codes_test, factors_test)
    K = factors_train.shape[1]
    mask = np.broadcast_to(np.asarray(continuous, dtype=bool), (K,))
    S = score_matrix(codes_train, factors_train, codes_test, factors_test, mask)
    ordered = -np.sort(-S, axis=0)
    second = ordered[1] if S.shape[0] > 1 else np.zeros(K)
    return {"sap": float(np.mean(ordered[0] - second))}
