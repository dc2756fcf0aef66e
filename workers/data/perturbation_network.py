"""The manipulation network m(w) of thesis §4.2.4 / §4.3.1.

Images (64×64, 1 or 3 channels): the disentanglement_lib deconv decoder (dense 256 ReLU, dense 1024 ReLU,
64-32-32-C 4×4/2 transposed convs) whose input MLP gets one more hidden layer of a single neuron, so the K
ground-truth factors are compressed to one scalar from which the manipulation is rendered. Vectors (the
synthetic sets): an MLP of the same idea, K → 1 → 64 → 64 → D with tanh hidden layers. The output goes through
tanh, so ‖m(w)‖∞ ≤ 1.

The single hidden neuron is linear (no nonlinearity): with one neuron a ReLU that is off for every input
would leave m constant, and the following dense layer is nonlinear anyway (the thesis does not say which
activation it used).

Input encoding of the factors w: a discrete factor's class index divided by (classes − 1), so every factor
lies in [0, 1]; a continuous factor (synth_lin, synth_nonlin: uniform on [0, 1]) as it is.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

VECTOR_HIDDEN = 64


def encode_factors(factors: np.ndarray, factor_sizes: list[int | None]) -> np.ndarray:
    """float64 (n, K) network input of factors (n, K): classes / (size − 1), continuous values unchanged."""
    f = np.asarray(factors, dtype=np.float64)
    scale = np.array([1.0 / max(s - 1, 1) if s is not None else 1.0 for s in factor_sizes])
    return f * scale


def architecture(obs_shape: tuple[int, ...], num_factors: int) -> dict[str, Any]:
    """The architecture record of perturbation.yaml (enough to rebuild the module)."""
    if len(obs_shape) == 3:
        return {"kind": "conv", "num_factors": num_factors, "observation_shape": list(obs_shape),
                "layers": f"dense {num_factors}->1 (linear bottleneck), dense 256 relu, dense 1024 relu, deconv "
                          f"64-64 relu, 64-32 relu, 32-32 relu, 32-{obs_shape[0]} (4x4/2), tanh",
                "factor_encoding": "class/(size-1); continuous values as they are"}
    return {"kind": "mlp", "num_factors": num_factors, "observation_shape": list(obs_shape),
            "layers": f"dense {num_factors}->1 (linear bottleneck), dense {VECTOR_HIDDEN} tanh, dense "
                      f"{VECTOR_HIDDEN} tanh, dense {math.prod(obs_shape)}, tanh",
            "factor_encoding": "class/(size-1); continuous values as they are"}


def manipulation(obs_shape: tuple[int, ...], num_factors: int) -> torch.nn.Module:
    """A fresh m: encoded factors (n, K) float -> (n, *obs_shape) in [−1, 1] (state dict keys `bottleneck.*`,
    `body.*`, as manipulation.pt stores them)."""
    return _manipulation_class()(tuple(obs_shape), int(num_factors))


@functools.cache
def _manipulation_class() -> type:
    """The module class, defined on first use: torch is imported only by the processes that run m."""
    import torch
    from torch import nn

    class Manipulation(nn.Module):
        def __init__(self, obs_shape: tuple[int, ...], num_factors: int):
            super().__init__()
            self.obs_shape = obs_shape
            self.bottleneck = nn.Linear(num_factors, 1)
            if len(obs_shape) == 3:
                if obs_shape[1:] != (64, 64):
                    raise ValueError(f"the conv manipulation network renders 64x64 images, got {obs_shape}")
                self.body = nn.Sequential(
                    nn.Linear(1, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
                    nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                    nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, obs_shape[0], 4, 2, 1))
            else:
                d = math.prod(obs_shape)
                self.body = nn.Sequential(nn.Linear(1, VECTOR_HIDDEN), nn.Tanh(),
                                          nn.Linear(VECTOR_HIDDEN, VECTOR_HIDDEN), nn.Tanh(),
                                          nn.Linear(VECTOR_HIDDEN, d))

        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.body(self.bottleneck(w))).reshape(w.shape[0], *self.obs_shape)

    return Manipulation


def normalise(x_prime: torch.Tensor) -> torch.Tensor:
    """Thesis §4.3.1 for images in [0, 1]: x' − 2 ReLU(x' − 1) + 2 ReLU(−x') (reflects back into [0, 1])."""
    import torch

    return x_prime - 2.0 * torch.relu(x_prime - 1.0) + 2.0 * torch.relu(-x_prime)
