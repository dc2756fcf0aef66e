"""Procedural grid datasets that render on demand and switch to the node cache when it pays off.

Measured (bench/datasets.py, 2 shared cores): reading a batch of 1024 from the memory-mapped cache is
2–10× faster than rendering it (dsprites 2–12 ms vs 19–24 ms; shapes3d 35–45 ms vs 94–350 ms), but
building the cache costs about as much as rendering the whole grid once. So each
process follows the ski-rental rule, which is never worse than twice the better choice:

- if the node's cache entry already exists (another trial built it), use it at once;
- otherwise render on demand until this process has rendered as many images as the grid holds (one
  epoch's worth), then build the cache and use it; while another process is building it, keep
  rendering on demand and pick the entry up as soon as it is published.

Short jobs (tests, metrics on a few thousand points, contact sheets) never build anything; training
runs build once per node during their first epoch. `ORTHOSWEEP_DATA_CACHE=always|never|auto` overrides
the rule (default auto). Both paths give bit-identical observations.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from .base import DataError, GridDataset, as_indices
from .cache import cache_dir, cached_array, fill_in_chunks

if TYPE_CHECKING:
    import torch

MODES = ("auto", "always", "never")


def cache_mode() -> str:
    mode = os.environ.get("ORTHOSWEEP_DATA_CACHE", "auto")
    if mode not in MODES:
        raise DataError(f"env ORTHOSWEEP_DATA_CACHE={mode!r}: expected one of {', '.join(MODES)}")
    return mode


class RenderedGridDataset(GridDataset):
    """Subclasses define the cache encoding (`cache_key`, `row_shape`, `row_dtype`, `encode_rows`,
    `decode_rows`) and the on-demand path `render_observations(factors)`."""

    cache_key: str
    row_shape: tuple[int, ...]
    row_dtype: np.dtype | type = np.uint8
    build_chunk = 8192

    def __init__(self) -> None:
        self._rows: np.ndarray | None = None
        self.rendered = 0  # images this process rendered on demand so far

    def encode_rows(self, factors: np.ndarray) -> np.ndarray:
        """Cache rows (n, *row_shape) of class indices (n, K)."""
        raise NotImplementedError

    def decode_rows(self, rows: np.ndarray) -> np.ndarray:
        """float32 observations (n, *observation_shape) of cache rows."""
        raise NotImplementedError

    def decode_rows_torch(self, rows: torch.Tensor) -> torch.Tensor:
        """`decode_rows` on a torch tensor, on the tensor's device: the same float32 bits."""
        raise NotImplementedError

    def render_observations(self, factors: np.ndarray) -> np.ndarray:
        """float32 observations (n, *observation_shape) of class indices, rendered on demand."""
        raise NotImplementedError

    @property
    def uses_cache(self) -> bool:
        return self._rows is not None

    def build_cache(self, wait: bool = True) -> np.ndarray | None:
        """The full grid in the node cache (built once per node, shared), as a read-only memmap; None if
        `wait` is False and another process is building it."""
        n = len(self)

        def produce(a: int, b: int) -> np.ndarray:
            return self.encode_rows(self.index_to_factors(np.arange(a, b)))

        self._rows = cached_array(self.cache_key, (n, *self.row_shape), self.row_dtype,
                                  lambda out: fill_in_chunks(out, n, self.build_chunk, produce), wait=wait)
        return self._rows

    def _maybe_switch(self) -> None:
        mode = cache_mode()
        if mode == "never":
            return
        if mode == "always" or self.rendered >= len(self) or (cache_dir() / f"{self.cache_key}.npy").exists():
            self.build_cache(wait=mode == "always")

    def observations_at(self, indices: np.ndarray) -> np.ndarray:
        idx = as_indices(indices, len(self))
        if self._rows is None:
            self._maybe_switch()
        if self._rows is None:
            self.rendered += idx.size
            return self.render_observations(self.index_to_factors(idx))
        return self.decode_rows(self._rows[idx])

    def prepare_rows(self, n: int) -> None:
        """About to read `n` cache rows at once (a training set going to the device): when they are at least
        half the grid, rendering them costs about as much as building the node cache, which later processes
        then read for free, so build (or open, or wait for) the cache first; `ORTHOSWEEP_DATA_CACHE=never`
        keeps rendering."""
        if self._rows is None and cache_mode() != "never" and 2 * n >= len(self):
            self.build_cache(wait=True)
        elif self._rows is None:
            self._maybe_switch()

    def rows_at(self, indices: np.ndarray) -> np.ndarray:
        """Cache rows (n, *row_shape) of the stored points `indices`, `decode_rows` of which is
        `observations_at(indices)` bit for bit: read from the node cache when this process uses it, else
        encoded on demand (counted as rendered, as in `observations_at`)."""
        idx = as_indices(indices, len(self))
        if self._rows is None:
            self._maybe_switch()
        if self._rows is None:
            self.rendered += idx.size
            return self.encode_rows(self.index_to_factors(idx))
        return self._rows[idx]
