"""AnnealedVAE (Burgess et al. 2018), disentanglement_lib's form: reconstruction + γ·|KL − C|, the capacity
C rising linearly from 0 to c_max over iteration_threshold steps. The step count enters the loss, so its
step is not replayed from a CUDA graph (a graph would freeze C)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from workers.models.objectives.base import HParam, LossInputs, Objective, with_regularizer

if TYPE_CHECKING:
    import torch


def annealed_loss(h: Mapping[str, float], t: LossInputs) -> torch.Tensor:
    from workers.models.loss_terms import annealed_capacity

    c = annealed_capacity(h["c_max"], t.step, h["iteration_threshold"])
    return with_regularizer(t.recon.mean(1), [h["gamma"] * (t.kl.mean(1) - c).abs()], t.regularizer_scale)


OBJECTIVE = Objective(
    "annealed_vae", "AnnealedVAE (capacity schedule)", posterior="diag", loss=annealed_loss,
    hparams={"c_max": HParam(25.0), "gamma": HParam(1000.0), "iteration_threshold": HParam(100_000.0)},
    scaled_regularizer=True,
    eager_reason="annealed_vae's capacity follows the step count, which a graph would freeze",
)
