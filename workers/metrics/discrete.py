"""Discretisation and discrete information measures shared by MIG, MIG-sup, DCI and SAP.

disentanglement_lib's rule (`utils._histogram_discretize`): each column is cut into `num_bins` equal-width
bins between its min and max (`np.digitize(x, np.histogram(x, num_bins)[1][:-1])`). Codes always go
through it; continuous factors (synthetic datasets) go through the same rule, discrete factors are
mapped to their class index. Mutual information and entropies are in nats, from empirical counts
(identical to `sklearn.metrics.mutual_info_score`, which disentanglement_lib calls).
"""

from __future__ import annotations

import numpy as np

from workers.metrics.validate import check_matrix

NUM_BINS = 20


def histogram_discretize(x: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """(N, k) real -> (N, k) int64 bin indices in [0, num_bins): equal-width bins per column.

    A constant column lands in one bin (its MI with anything is then 0)."""
    x = check_matrix(x, "codes")
    out = np.empty(x.shape, dtype=np.int64)
    for j in range(x.shape[1]):
        edges = np.histogram(x[:, j], num_bins)[1][:-1]
        out[:, j] = np.digitize(x[:, j], edges) - 1
    return out


def infer_discrete(factors: np.ndarray) -> np.ndarray:
    """(K,) bool: a factor column is discrete iff all its values are integers."""
    factors = np.asarray(factors, dtype=np.float64)
    return np.all(factors == np.round(factors), axis=0)


def factor_classes(
    factors: np.ndarray, discrete: np.ndarray | list[bool] | None = None, num_bins: int = NUM_BINS
) -> np.ndarray:
    """(N, K) factors -> (N, K) int64 classes: discrete factors by value, continuous ones by the 20-bin rule.

    `discrete` is a (K,) bool mask; None infers it (integer-valued columns are discrete)."""
    factors = check_matrix(factors, "factors")
    mask = infer_discrete(factors) if discrete is None else np.asarray(discrete, dtype=bool).reshape(-1)
    if mask.shape != (factors.shape[1],):
        raise ValueError(f"discrete must have one entry per factor ({factors.shape[1]}), got {mask.shape}")
    out = np.empty(factors.shape, dtype=np.int64)
    for k in range(factors.shape[1]):
        if mask[k]:
            out[:, k] = np.unique(factors[:, k], return_inverse=True)[1]
        else:
            out[:, k] = histogram_discretize(factors[:, k : k + 1], num_bins)[:, 0]
    return out


def entropy(classes: np.ndarray) -> np.ndarray:
    """(N, K) int classes -> (K,) empirical entropies in nats."""
    classes = np.asarray(classes)
    out = np.empty(classes.shape[1])
    for k in range(classes.shape[1]):
        p = np.bincount(classes[:, k]) / classes.shape[0]
        p = p[p > 0]
        out[k] = -(p * np.log(p)).sum()
    return out


def mutual_info(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, m) and (N, K) int classes (values ≥ 0) -> (m, K) empirical mutual information in nats."""
    a, b = np.asarray(a), np.asarray(b)
    n = a.shape[0]
    out = np.empty((a.shape[1], b.shape[1]))
    for j in range(a.shape[1]):
        ca = int(a[:, j].max()) + 1
        pa = np.bincount(a[:, j], minlength=ca) / n
        for k in range(b.shape[1]):
            cb = int(b[:, k].max()) + 1
            pb = np.bincount(b[:, k], minlength=cb) / n
            joint = np.bincount(a[:, j] * cb + b[:, k], minlength=ca * cb).reshape(ca, cb) / n
            nz = joint > 0
            outer = np.outer(pa, pb)
            out[j, k] = max(0.0, float((joint[nz] * np.log(joint[nz] / outer[nz])).sum()))
    return out
