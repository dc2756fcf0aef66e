"""FactorVAE score (Kim & Mnih 2018; disentanglement_lib `factor_vae.py`).

1. Global variances of each latent over `num_variance_estimate` random observations (ddof = 1); latents
   with std < `prune_threshold` (0.05, the library's study setting) are pruned.
2. A training point: pick a factor uniformly, draw a batch of `batch_size` factor vectors sharing its value,
   encode, divide each active latent's variance within the batch by its global variance, and vote
   (factor, argmin latent). `num_train` points for the votes, `num_eval` fresh points to evaluate.
3. The classifier maps each latent to the factor it voted for most; accuracy = share of votes it gets right.

`factorvae_active_dims` is the number of unpruned latents. disentanglement_lib reports `len(active_dims)`
of a boolean mask, i.e. always d: that bug is fixed here. Votes are recorded on the full latent index
(the library indexes the pruned array; the accuracy is the same). With no active latent the scores are
0, as in the library.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.metrics.sampling import Encode, encode_factors, encode_sample, fixed_factor_chunks


def _votes(
    encode: Encode, dataset, num_points: int, batch_size: int, rng: np.random.Generator,
    global_var: np.ndarray, active: np.ndarray,
) -> np.ndarray:
    """(K, d) int votes: rows factors, columns the latent with the smallest normalised variance."""
    d = global_var.shape[0]
    votes = np.zeros((dataset.num_factors, d), dtype=np.int64)
    active_idx = np.flatnonzero(active)
    for index, factors in fixed_factor_chunks(dataset, num_points, batch_size, rng):
        m = factors.shape[0]
        codes = encode_factors(encode, dataset, factors.reshape(m * batch_size, -1)).reshape(m, batch_size, d)
        local = codes.var(axis=1, ddof=1)[:, active_idx] / global_var[active_idx]
        np.add.at(votes, (index, active_idx[local.argmin(axis=1)]), 1)
    return votes


def factorvae_score(
    encode: Encode,
    dataset,
    *,
    seed: int,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
) -> dict[str, Any]:
    """FactorVAE score of `encode` (observations (n, *obs) -> codes (n, d)) on a ground-truth `dataset`
    (`sample_factors(n, rng)`, `observations(factors)`, `num_factors`). Defaults are disentanglement_lib's.

    Returns {"factorvae_train", "factorvae_eval" (accuracies in [0, 1]), "factorvae_active_dims" (int)}.
    """
    rng = np.random.default_rng(seed)
    codes, _ = encode_sample(encode, dataset, num_variance_estimate, rng)
    global_var = codes.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
    if not active.any():
        return {"factorvae_train": 0.0, "factorvae_eval": 0.0, "factorvae_active_dims": 0}
    train_votes = _votes(encode, dataset, num_train, batch_size, rng, global_var, active)
    classifier = train_votes.argmax(axis=0)  # latent -> factor
    eval_votes = _votes(encode, dataset, num_eval, batch_size, rng, global_var, active)
    cols = np.arange(train_votes.shape[1])
    return {
        "factorvae_train": float(train_votes[classifier, cols].sum() / train_votes.sum()),
        "factorvae_eval": float(eval_votes[classifier, cols].sum() / eval_votes.sum()),
        "factorvae_active_dims": int(active.sum()),
    }
