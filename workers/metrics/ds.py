"""Disentanglement Score DS (thesis §3.3.1, eqs. 3.32–3.37; Rolínek et al. 2019 §5).

For each factor w_i and each single latent z_j, a k-NN predictor (scikit-learn defaults, k = 5) is trained
on a random 80 % of the points and evaluated on the other 20 %: a regressor for continuous factors, a
classifier for discrete ones. Its performance is normalised by the best constant predictor,

    regression:     A_ij / M_i = (sqrt(var w_i) − sqrt(mse_{z_j→w_i})) / sqrt(var w_i)   (eq. 3.37),
    classification: A_ij / M_i = (acc_{z_j→w_i} − acc_const) / (1 − acc_const),

each clipped to [0, 1], and DS = mean_i (best_j − second-best_j) (eq. 3.32). The classification line
deviates from the literal text of eq. 3.37 (M_i = acc_const), which is not bounded by 1 (3 balanced
classes give values up to 2); the form above is the same "skill over the constant predictor" as the
regression line and is bounded in [0, 1] as the thesis states DS must be. The constant predictors are
fit on the 80 % part (mean / majority class) and scored on the 20 % part; var w_i is the variance of the
20 % part, so a perfect predictor scores 1 and the constant one 0.

Degenerate inputs: a constant factor has no defined score (None per factor, left out of the mean); with a
single latent the second best is 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from workers.metrics.validate import check_pair


def ds(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    discrete: np.ndarray | list[bool],
    k: int = 5,
    seed: int,
    test_fraction: float = 0.2,
) -> dict[str, Any]:
    """DS of codes (N, d) w.r.t. factors (N, K) (class indices / continuous values per `discrete` (K,)).

    Returns {"ds": float | None, "ds_per_factor": list[float | None] (K,)}; `seed` fixes the 80/20 split.
    """
    codes, factors = check_pair(codes, factors)
    n, d = codes.shape
    mask = np.asarray(discrete, dtype=bool).reshape(-1)
    if mask.shape != (factors.shape[1],):
        raise ValueError(f"ds: discrete must have one entry per factor ({factors.shape[1]}), got {mask.shape}")
    n_test = int(round(test_fraction * n))
    if n_test < 1 or n - n_test < k:
        raise ValueError(f"ds: {n} points are too few for a {k}-NN fit on an 80/20 split")
    perm = np.random.default_rng(seed).permutation(n)
    tr, te = perm[n_test:], perm[:n_test]
    skills = np.zeros((factors.shape[1], d))
    valid = np.zeros(factors.shape[1], dtype=bool)
    for i in range(factors.shape[1]):
        y = factors[:, i]
        if np.ptp(y) == 0:
            continue
        valid[i] = True
        for j in range(d):
            skills[i, j] = _skill(codes[tr, j : j + 1], y[tr], codes[te, j : j + 1], y[te], mask[i], k)
    ordered = -np.sort(-skills, axis=1)
    second = ordered[:, 1] if d > 1 else np.zeros(factors.shape[1])
    gaps = ordered[:, 0] - second
    return {
        "ds": float(gaps[valid].mean()) if valid.any() else None,
        "ds_per_factor": [float(g) if ok else None for g, ok in zip(gaps, valid, strict=True)],
    }


def _skill(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, discrete: bool, k: int) -> float:
    """Performance of a k-NN predictor of y from one latent, as a skill over the constant predictor in [0, 1]."""
    if discrete:
        y_tr, y_te = y_tr.astype(np.int64), y_te.astype(np.int64)
        acc = float((KNeighborsClassifier(n_neighbors=k).fit(x_tr, y_tr).predict(x_te) == y_te).mean())
        const = float((y_te == np.bincount(y_tr - y_tr.min()).argmax() + y_tr.min()).mean())
        skill = (acc - const) / (1.0 - const) if const < 1.0 else 0.0
    else:
        pred = KNeighborsRegressor(n_neighbors=k).fit(x_tr, y_tr).predict(x_te)
        std = float(y_te.std())
        skill = (std - float(np.sqrt(np.mean((pred - y_te) ** 2)))) / std if std > 0 else 0.0
    return float(np.clip(skill, 0.0, 1.0))
