"""The two synthetic embeddings of the unit square (thesis §3.3.1, design.md §4).

Both datasets have two continuous factors v ∈ [0, 1]² (uniform) and are defined by an exact map f:
- synth_lin: stretch factor 0 by `ratio` (thesis: 2), embed trivially in R³, rotate 45° about the axis
  through (1, −1, 1) (Rodrigues' formula): x = R · (ratio·v0, v1, 0). f is linear, x ∈ R³.
- synth_nonlin: a fixed randomly initialised MLP 2 → 10 → 6 with biases and tanh on the hidden layer,
  x = W2 · tanh(W1 v + b1) + b2, weights drawn like PyTorch's default `nn.Linear` initialisation
  (U(−1/√fan_in, 1/√fan_in) for weights and biases) from `data_seed`, never from training seeds.

The stored points are `n` factor draws from `data_seed`; `observations(factors)` evaluates f exactly.
"""

from __future__ import annotations

import numpy as np

from .base import DataError, Dataset, as_indices

_POINTS_STREAM = 1  # data_seed streams: stored points, MLP weights (the split has its own, see base)
_WEIGHTS_STREAM = 2


def rotation_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """3×3 rotation by `angle` (radians) about `axis` (any length), by Rodrigues' formula."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * (kx @ kx)


def linear_map(ratio: float) -> np.ndarray:
    """The 3×2 matrix of synth_lin: rotation(45° about (1,−1,1)) · embedding · diag(ratio, 1)."""
    embed_stretch = np.array([[ratio, 0.0], [0.0, 1.0], [0.0, 0.0]])
    return rotation_matrix(np.array([1.0, -1.0, 1.0]), np.pi / 4) @ embed_stretch


def mlp_weights(data_seed: int, widths: tuple[int, ...] = (2, 10, 6)) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W (out, in), b (out,)), ...] of the synth_nonlin generator, PyTorch-default-like uniform init."""
    rng = np.random.default_rng([data_seed, _WEIGHTS_STREAM])
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        bound = 1.0 / np.sqrt(fan_in)
        layers.append((rng.uniform(-bound, bound, (fan_out, fan_in)), rng.uniform(-bound, bound, fan_out)))
    return layers


def mlp_forward(layers: list[tuple[np.ndarray, np.ndarray]], v: np.ndarray) -> np.ndarray:
    """Apply the MLP to v (n, in): tanh on every hidden layer, the output layer stays affine."""
    h = v
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = np.tanh(h)
    return h


class SyntheticDataset(Dataset):
    """Two continuous factors, uniform on [0, 1]², mapped to R^D by an exact function."""

    factor_names = ["v0", "v1"]
    factor_sizes: list[int | None] = [None, None]

    def __init__(self, n: int, data_seed: int) -> None:
        if int(n) < 1:
            raise DataError(f"{self.name} option 'n': expected a positive number of points, got {n}")
        self.data_seed = int(data_seed)
        self._factors = np.random.default_rng([self.data_seed, _POINTS_STREAM]).uniform(0.0, 1.0, (int(n), 2))
        self._x = self.observations(self._factors)

    def _map(self, v: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._factors.shape[0]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """float64 (n, 2) uniform on [0, 1]²."""
        return rng.uniform(0.0, 1.0, (int(n), 2))

    def observations(self, factors: np.ndarray) -> np.ndarray:
        v = np.asarray(factors, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2:
            raise DataError(f"{self.name} factors: expected shape (n, 2) (v0, v1), got {v.shape}")
        return self._map(v).astype(np.float32)

    def factors_at(self, indices: np.ndarray) -> np.ndarray:
        return self._factors[as_indices(indices, len(self))]

    def observations_at(self, indices: np.ndarray) -> np.ndarray:
        return self._x[as_indices(indices, len(self))]


class SynthLin(SyntheticDataset):
    name = "synth_lin"
    observation_shape = (3,)

    def __init__(self, ratio: float = 2.0, n: int = 50_000, data_seed: int = 0) -> None:
        if not float(ratio) > 0:
            raise DataError(f"synth_lin option 'ratio': expected a positive stretch factor, got {ratio}")
        self.ratio = float(ratio)
        self.matrix = linear_map(self.ratio)  # (3, 2)
        super().__init__(n, data_seed)

    def _map(self, v: np.ndarray) -> np.ndarray:
        return v @ self.matrix.T


class SynthNonlin(SyntheticDataset):
    name = "synth_nonlin"
    observation_shape = (6,)

    def __init__(self, n: int = 50_000, data_seed: int = 0) -> None:
        self.layers = mlp_weights(int(data_seed))
        super().__init__(n, data_seed)

    def _map(self, v: np.ndarray) -> np.ndarray:
        return mlp_forward(self.layers, v)
