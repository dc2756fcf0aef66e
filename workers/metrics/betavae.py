"""BetaVAE score (Higgins et al. 2017; disentanglement_lib `beta_vae.py`).

A training point: pick a factor uniformly, draw two batches of `batch_size` factor vectors that share that
factor's value row by row, encode both, and take the mean over the batch of |z1 − z2| (a (d,) feature).
A `LogisticRegression` (scikit-learn defaults, as the library) predicts the fixed factor from the feature;
scores are its train accuracy on `num_train` points and its accuracy on `num_eval` fresh points.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from workers.metrics.sampling import CHUNK_OBSERVATIONS, Encode, chunk_sizes, encode_factors


def _features(
    encode: Encode, dataset, num_points: int, batch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(features (num_points, d), labels (num_points,)) of pairs of batches sharing one factor."""
    if dataset.num_factors < 1:
        raise ValueError("betavae_score needs a dataset with generative factors (num_factors >= 1)")
    feats, labels = [], []
    for m in chunk_sizes(num_points, CHUNK_OBSERVATIONS // (2 * batch_size)):
        index = rng.integers(dataset.num_factors, size=m)
        f1 = np.asarray(dataset.sample_factors(m * batch_size, rng)).reshape(m, batch_size, -1)
        f2 = np.asarray(dataset.sample_factors(m * batch_size, rng)).reshape(m, batch_size, -1)
        rows = np.arange(m)
        f2[rows, :, index] = f1[rows, :, index]
        both = np.concatenate([f1, f2]).reshape(2 * m * batch_size, -1)
        codes = encode_factors(encode, dataset, both).reshape(2, m, batch_size, -1)
        feats.append(np.abs(codes[0] - codes[1]).mean(axis=1))
        labels.append(index)
    return np.concatenate(feats), np.concatenate(labels)


def betavae_score(
    encode: Encode,
    dataset,
    *,
    seed: int,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
) -> dict[str, Any]:
    """BetaVAE score of `encode` (observations -> codes (n, d)) on a ground-truth `dataset`.

    Returns {"betavae_train", "betavae_eval"} (accuracies in [0, 1]); defaults are disentanglement_lib's."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _features(encode, dataset, num_train, batch_size, rng)
    if np.unique(y_train).size < 2:  # one factor (or too few points): the label is always right
        return {"betavae_train": 1.0, "betavae_eval": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(random_state=seed).fit(x_train, y_train)
    x_eval, y_eval = _features(encode, dataset, num_eval, batch_size, rng)
    return {
        "betavae_train": float(np.mean(model.predict(x_train) == y_train)),
        "betavae_eval": float(model.score(x_eval, y_eval)),
    }
