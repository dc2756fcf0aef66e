"""Grid datasets read from official files: rows of a cached memmap plus each row's factor classes.

The official dSprites and 3dshapes files hold the full grid in grid order; then stored index = grid
index and no labels are kept in memory. A file holding a subset (or another order) still works: its
labels are kept and `observations(factors)` looks the rows up, refusing combinations the file lacks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import DataError, GridDataset, as_indices


def check_classes(labels: np.ndarray, factor_names: list[str], factor_sizes: list[int], source: str) -> None:
    """DataError naming the file and factor if some class index of labels (N, K) is outside [0, size)."""
    if labels.ndim != 2 or labels.shape[1] != len(factor_sizes):
        raise DataError(f"{source}: labels have shape {labels.shape}; expected (N, {len(factor_sizes)})")
    for k, (name, size) in enumerate(zip(factor_names, factor_sizes, strict=True)):
        col = labels[:, k]
        if col.size and (col.min() < 0 or col.max() >= size):
            raise DataError(f"{source}: factor {name!r}: class indices must lie in [0, {size}), "
                            f"got min {col.min()} max {col.max()}")


class StoredGridDataset(GridDataset):
    """Rows `images[i]` (any stored encoding, turned into float32 observations by `decode`) with classes."""

    def __init__(self, name: str, factor_names: list[str], factor_sizes: list[int],
                 factor_values: list[np.ndarray], observation_shape: tuple[int, ...], images: np.ndarray,
                 decode: Callable[[np.ndarray], np.ndarray], labels: np.ndarray | None, data_seed: int,
                 source: str) -> None:
        """`labels`: int64 (N, K) classes of the rows; None when the rows are the full grid in grid order."""
        self.name, self.factor_names, self.factor_sizes = name, factor_names, factor_sizes
        self.factor_values, self.observation_shape = factor_values, observation_shape
        self.data_seed, self.source = int(data_seed), source
        self._images, self._decode = images, decode
        grid = int(np.prod(factor_sizes))
        if labels is None:
            if images.shape[0] != grid:
                raise DataError(f"{source}: {images.shape[0]} rows; expected the full grid of {grid}")
            self._labels, self._row_of_index = None, None
            return
        check_classes(labels, factor_names, factor_sizes, source)
        index = super().factors_to_index(labels)
        if labels.shape[0] == grid and np.array_equal(index, np.arange(grid)):
            self._labels, self._row_of_index = None, None  # the full grid in order: index = row
        else:
            if np.unique(index).size != index.size:
                raise DataError(f"{source}: the labels list some factor combination twice; each row must "
                                "hold a distinct combination")
            self._labels = labels.astype(np.int64)
            self._row_of_index = np.full(grid, -1, dtype=np.int64)
            self._row_of_index[index] = np.arange(index.size)

    def __len__(self) -> int:
        return int(self._images.shape[0])

    @property
    def is_full_grid(self) -> bool:
        return self._labels is None

    def factors_at(self, indices: np.ndarray) -> np.ndarray:
        idx = as_indices(indices, len(self))
        return self.index_to_factors(idx) if self._labels is None else self._labels[idx]

    def observations_at(self, indices: np.ndarray) -> np.ndarray:
        return self._decode(self._images[as_indices(indices, len(self))])

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self._labels is None:
            return super().sample_factors(n, rng)
        return self._labels[rng.integers(0, len(self), size=int(n))]  # combinations the file holds

    def observations(self, factors: np.ndarray) -> np.ndarray:
        index = self.factors_to_index(factors)
        if self._row_of_index is None:
            return self.observations_at(index)
        rows = self._row_of_index[index]
        if (rows < 0).any():
            missing = np.asarray(factors)[np.flatnonzero(rows < 0)[0]]
            raise DataError(f"{self.source} holds no image for factors {missing.tolist()} "
                            f"({', '.join(self.factor_names)}); the file is not the full grid")
        return self.observations_at(rows)
