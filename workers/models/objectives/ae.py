"""Plain autoencoder: a deterministic code (z = mu), reconstruction only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from workers.models.objectives.base import LossInputs, Objective

if TYPE_CHECKING:
    import torch


def reconstruction_only(h: Mapping[str, float], t: LossInputs) -> torch.Tensor:
    return t.recon.mean(1)


OBJECTIVE = Objective("ae", "plain autoencoder (deterministic code)", posterior="none", loss=reconstruction_only)
