"""The single-seed view of a trained model that metrics and analysis consume.

The trainer keeps S seeds as one batched model; `workers.train` hands each seed to the metrics as a
`SeedModel`, so metric code never sees the seed dimension.
"""

from __future__ import annotations

from typing import Protocol

import torch


class SeedModel(Protocol):
    latent_dim: int
    posterior: str  # "none" (AE), "diag" (logvar), "full" (scale_tril)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x: (N, *observation_shape) float32 -> (mu (N, d), posterior parameters).

        Posterior parameters: {} for "none", {"logvar": (N, d)} for "diag", {"scale_tril": (N, d, d)}
        (lower-triangular Cholesky factor of the covariance) for "full".
        """
        ...

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (N, d) -> likelihood mean in data space (N, *observation_shape): sigmoid(logits) for
        Bernoulli, the output itself for Gaussian. Differentiable (DtO takes its Jacobian)."""
        ...
