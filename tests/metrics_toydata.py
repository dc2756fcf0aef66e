"""A tiny ground-truth dataset and exact encoders for the metric tests (the `workers.data` interface).

Observations are the factors themselves, mixed by a fixed orthogonal matrix and rescaled, so an encoder
can recover them exactly, or a rotated/noisy version of them, with answers known by construction.
"""

from __future__ import annotations

import numpy as np
import torch


class ToyGrid:
    """K independent discrete factors (class indices, uniform); observations x = (f / size) Q, float32."""

    name = "toy"

    def __init__(self, sizes=(3, 4, 5), n=2000, data_seed=0):
        self.factor_sizes = list(sizes)
        self.factor_names = [f"f{k}" for k in range(len(sizes))]
        self.observation_shape = (len(sizes),)
        rng = np.random.default_rng(data_seed)
        self.Q = np.linalg.qr(rng.normal(size=(len(sizes), len(sizes))))[0]
        self._factors = self.sample_factors(n, rng)

    discrete = property(lambda self: [True] * len(self.factor_sizes))
    num_factors = property(lambda self: len(self.factor_sizes))

    def __len__(self):
        return len(self._factors)

    def split_indices(self, part):
        n = len(self)
        return {"train": np.arange(0, int(0.8 * n)), "eval": np.arange(int(0.8 * n), int(0.9 * n)),
                "test": np.arange(int(0.9 * n), n)}[part]

    def sample_factors(self, n, rng):
        return rng.integers(0, self.factor_sizes, size=(n, len(self.factor_sizes)))

    def factors_at(self, indices):
        return self._factors[indices]

    def observations(self, factors):
        return ((np.asarray(factors) / np.array(self.factor_sizes)) @ self.Q).astype(np.float32)

    def observations_at(self, indices):
        return self.observations(self.factors_at(indices))

    def unmix(self, x: np.ndarray) -> np.ndarray:
        """Exact factors (as floats) of observations x."""
        return (np.asarray(x, dtype=np.float64) @ self.Q.T) * np.array(self.factor_sizes)


def rotation(d: int, i: int, j: int, degrees: float) -> np.ndarray:
    """d × d rotation by `degrees` in the (i, j) plane."""
    t = np.deg2rad(degrees)
    R = np.eye(d)
    R[i, i] = R[j, j] = np.cos(t)
    R[i, j], R[j, i] = -np.sin(t), np.sin(t)
    return R


def numpy_encoder(data: ToyGrid, mix: np.ndarray | None = None, extra_constant: int = 0):
    """encode(x) = unmixed factors @ mix (identity: perfect), plus `extra_constant` constant latents."""
    K = data.num_factors
    mix = np.eye(K) if mix is None else mix

    def encode(x):
        codes = data.unmix(x) @ mix
        return np.concatenate([codes, np.zeros((len(codes), extra_constant))], axis=1)

    return encode


class ToySeedModel:
    """A `SeedModel` over ToyGrid: linear encoder/decoder, diagonal posterior with fixed variances."""

    def __init__(self, data: ToyGrid, mix: np.ndarray | None = None, posterior: str = "diag"):
        K = data.num_factors
        mix = np.eye(K) if mix is None else mix
        # x = (f/size) Q; mu = f @ mix = x Qᵀ diag(size) mix
        self.W_enc = torch.tensor(data.Q.T @ np.diag(data.factor_sizes) @ mix, dtype=torch.float32)
        self.W_dec = torch.linalg.pinv(self.W_enc)
        self.latent_dim = K
        self.posterior = posterior

    def encode(self, x):
        mu = x @ self.W_enc
        if self.posterior == "none":
            return mu, {}
        if self.posterior == "full":
            return mu, {"scale_tril": 0.1 * torch.eye(self.latent_dim).expand(len(x), -1, -1).clone()}
        return mu, {"logvar": torch.full_like(mu, np.log(0.01))}

    def decode(self, z):
        return z @ self.W_dec
