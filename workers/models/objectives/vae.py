"""VAE (Kingma & Welling 2014): reconstruction + KL to N(0, I), diagonal Gaussian posterior (β = 1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from workers.models.objectives.base import LossInputs, Objective

if TYPE_CHECKING:
    import torch


def elbo(h: Mapping[str, float], t: LossInputs) -> torch.Tensor:
    return t.recon.mean(1) + t.kl.mean(1)


OBJECTIVE = Objective("vae", "VAE, beta = 1", posterior="diag", loss=elbo)
