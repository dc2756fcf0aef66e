"""Sampling from a ground-truth dataset for the intervention-based scores (FactorVAE, BetaVAE).

Both scores draw many small batches of factors in which one factor is held fixed. Drawing them chunk by
chunk (many batches at once) renders and encodes thousands of observations per call instead of 64, which
is what makes disentanglement_lib's sample sizes affordable; every batch stays an independent draw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

Encode = Callable[[np.ndarray], np.ndarray]  # observations (n, *obs) float32 -> codes (n, d)

CHUNK_OBSERVATIONS = 8192  # observations rendered and encoded per call


def encode_factors(encode: Encode, dataset, factors: np.ndarray) -> np.ndarray:
    """Codes (n, d) float64 of the observations of `factors` (n, K); NaN/inf codes raise."""
    codes = np.asarray(encode(dataset.observations(factors)), dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"encode must return (n, d) codes for n = {factors.shape[0]}, got {codes.shape}")
    if not np.all(np.isfinite(codes)):
        raise ValueError("encode returned NaN or inf codes (a diverged model?); metrics are undefined")
    return codes


def encode_sample(encode: Encode, dataset, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, d), factors (n, K)) of n fresh draws from the dataset's generative model."""
    factors = np.asarray(dataset.sample_factors(n, rng))
    codes = [encode_factors(encode, dataset, factors[s : s + CHUNK_OBSERVATIONS])
             for s in range(0, n, CHUNK_OBSERVATIONS)]
    return np.concatenate(codes), factors


def chunk_sizes(num_points: int, per_chunk: int) -> Iterator[int]:
    """Sizes of consecutive chunks covering `num_points` items, at most `per_chunk` each."""
    for start in range(0, num_points, max(1, per_chunk)):
        yield min(max(1, per_chunk), num_points - start)


def fixed_factor_chunks(
    dataset, num_points: int, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks of (factor_index (m,), factors (m, batch_size, K)) with factor_index fixed within a batch.

    As disentanglement_lib: the fixed factor is uniform over factors, its value taken from the batch's
    first draw; `num_points` batches in all.
    """
    if dataset.num_factors < 1:
        raise ValueError("this score needs a dataset with generative factors (num_factors >= 1)")
    for m in chunk_sizes(num_points, CHUNK_OBSERVATIONS // batch_size):
        index = rng.integers(dataset.num_factors, size=m)
        factors = np.asarray(dataset.sample_factors(m * batch_size, rng)).reshape(m, batch_size, -1)
        rows = np.arange(m)
        factors[rows, :, index] = factors[rows, 0, index][:, None]
        yield index, factors
