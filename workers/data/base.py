"""The dataset interface every trial and metric sees (design.md §4).

A dataset is a fixed, indexed set of stored points (`len(ds)` of them) plus the generative model behind
them: factor names and sizes, `sample_factors` and `observations(factors)` for arbitrary factor values.
Observations are float32, shaped (n, *observation_shape): images (C, H, W) in [0, 1], synthetic vectors
(D,) real-valued. Factors are one (n, K) array per call: int64 class indices when every factor is
discrete, float64 values when every factor is continuous.

The 80/10/10 train/eval/test split (thesis §3.3.1) depends on `data_seed` only, never on training seeds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np

from .errors import DataError

SPLIT_FRACTIONS = {"train": 0.8, "eval": 0.1, "test": 0.1}
_SPLIT_STREAM = 0x5B117  # separates the split's random stream from the generator's, both from data_seed


def as_indices(indices: np.ndarray | Sequence[int], n: int, what: str = "indices") -> np.ndarray:
    """Validate stored-point indices: a 1-D int64 array with every value in [0, n)."""
    idx = np.asarray(indices)
    if idx.ndim != 1:
        raise DataError(f"{what}: expected a 1-D array of point indices, got shape {idx.shape}")
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise DataError(f"{what}: expected integer point indices, got dtype {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DataError(f"{what}: values must lie in [0, {n}), got min {idx.min()} max {idx.max()}")
    return idx


class Dataset(ABC):
    """A ground-truth dataset: stored points, their factors and the map from factors to observations.

    Subclasses set `name`, `factor_names`, `factor_sizes` (None = continuous), `observation_shape`,
    `data_seed` and implement `__len__`, `factors_at`, `observations_at`, `sample_factors`,
    `observations`.
    """

    name: str
    factor_names: list[str]
    factor_sizes: list[int | None]
    observation_shape: tuple[int, ...]
    data_seed: int = 0

    @property
    def discrete(self) -> list[bool]:
        """Per factor: True for a discrete factor (class indices), False for a continuous one (values)."""
        return [s is not None for s in self.factor_sizes]

    @property
    def num_factors(self) -> int:
        return len(self.factor_names)

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def factors_at(self, indices: np.ndarray) -> np.ndarray:
        """(n, K) factors of the stored points `indices` (int64 classes or float64 values)."""

    @abstractmethod
    def observations_at(self, indices: np.ndarray) -> np.ndarray:
        """float32 (n, *observation_shape) observations of the stored points `indices`."""

    @abstractmethod
    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, K) factors drawn from the dataset's factor distribution with `rng`."""

    @abstractmethod
    def observations(self, factors: np.ndarray) -> np.ndarray:
        """float32 (n, *observation_shape) observations of arbitrary factors (n, K), computed exactly."""

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}={s if s is not None else 'cont'}" for n, s in zip(self.factor_names,
                                                                                  self.factor_sizes,
                                                                                  strict=True))
        return f"<{type(self).__name__} {self.name}: {len(self)} points, obs {self.observation_shape}, {sizes}>"

    # ---- split and training view -------------------------------------------------------------

    def split_indices(self, part: str) -> np.ndarray:
        """Sorted int64 indices of one part of the fixed 80/10/10 random split: "train", "eval" or "test".

        Determined by `data_seed` and the dataset size only; the parts are disjoint and cover every point.
        """
        if part not in SPLIT_FRACTIONS:
            raise DataError(f"split part {part!r}: expected one of {', '.join(SPLIT_FRACTIONS)}")
        n = len(self)
        cached = getattr(self, "_split_perm", None)
        if cached is None or cached.size != n:
            cached = self._split_perm = np.random.default_rng([self.data_seed, _SPLIT_STREAM]).permutation(n)
        perm = cached
        n_train = int(round(SPLIT_FRACTIONS["train"] * n))
        n_eval = int(round(SPLIT_FRACTIONS["eval"] * n))
        bounds = {"train": (0, n_train), "eval": (n_train, n_train + n_eval), "test": (n_train + n_eval, n)}
        lo, hi = bounds[part]
        return np.sort(perm[lo:hi]).astype(np.int64)

    def shuffled_batches(self, indices: np.ndarray, batch_size: int,
                         rng: np.random.Generator) -> Iterator[np.ndarray]:
        """One epoch of the per-seed training view: batches of `indices` in a fresh permutation.

        Yields int64 arrays of exactly `batch_size` point indices (the last incomplete batch is dropped).
        Call once per epoch with the seed's own generator: each call draws a new permutation from `rng`,
        so a seed's data order depends only on its generator.
        """
        if batch_size < 1:
            raise DataError(f"batch_size: expected a positive integer, got {batch_size}")
        idx = as_indices(indices, len(self))
        order = idx[rng.permutation(idx.size)]
        for start in range(0, idx.size - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


class GridDataset(Dataset):
    """A dataset whose stored points are the full factor grid in C order (last factor fastest).

    Stored index i holds the factor combination `index_to_factors(i)`; all factors are discrete.
    Subclasses provide `factor_values` (the value of each class, per factor) and `observations_at`.
    """

    factor_values: list[np.ndarray]

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes))

    def index_to_factors(self, indices: np.ndarray) -> np.ndarray:
        """int64 (n, K) class indices of grid indices (n,), last factor fastest."""
        idx = as_indices(indices, len(self))
        return np.stack(np.unravel_index(idx, self.factor_sizes), axis=1).astype(np.int64)

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        """int64 (n,) grid indices of class indices (n, K); raises DataError naming a class out of range."""
        f = np.asarray(factors)
        if f.ndim != 2 or f.shape[1] != self.num_factors:
            raise DataError(f"{self.name} factors: expected shape (n, {self.num_factors}) "
                            f"({', '.join(self.factor_names)}), got {f.shape}")
        if f.size and not np.issubdtype(f.dtype, np.integer):
            if not np.all(f == np.round(f)):
                raise DataError(f"{self.name} factors: expected integer class indices, got dtype {f.dtype}")
        f = f.astype(np.int64)
        for k, (name, size) in enumerate(zip(self.factor_names, self.factor_sizes, strict=True)):
            col = f[:, k]
            if col.size and (col.min() < 0 or col.max() >= size):
                raise DataError(f"{self.name} factor {name!r}: class indices must lie in [0, {size}), "
                                f"got min {col.min()} max {col.max()}")
        return np.ravel_multi_index(tuple(f.T), self.factor_sizes).astype(np.int64)

    def factors_at(self, indices: np.ndarray) -> np.ndarray:
        return self.index_to_factors(indices)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """int64 (n, K): each factor's class drawn uniformly and independently (the grid's distribution)."""
        return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1).astype(np.int64)

    def observations(self, factors: np.ndarray) -> np.ndarray:
        return self.observations_at(self.factors_to_index(factors))
