"""DIP-VAE-I (Kumar et al. 2018), disentanglement_lib's form: reconstruction + KL + λ_od Σ_{i≠j} C_ij² +
λ_d Σ_i (C_ii − 1)², C the batch covariance of the posterior means; λ_d defaults to 10·λ_od."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from workers.models.objectives.base import DefaultContext, HParam, Loss, LossInputs, Objective, with_regularizer

if TYPE_CHECKING:
    import torch


def dip_loss(kind: str) -> Loss:
    """The loss of DIP-VAE-`kind` (i or ii)."""
    def loss(h: Mapping[str, float], t: LossInputs) -> torch.Tensor:
        from workers.models.loss_terms import dip_regularizer

        assert t.logvar is not None
        reg = dip_regularizer(t.mu, t.logvar, h["lambda_od"], h["lambda_d"], kind)
        return with_regularizer(t.recon.mean(1), [t.kl.mean(1), reg], t.regularizer_scale)

    return loss


def lambda_d_times(factor: float) -> Callable[[DefaultContext], float]:
    """A default of lambda_d: factor · lambda_od."""
    def default(ctx: DefaultContext) -> float:
        return factor * ctx.given["lambda_od"]

    return default


OBJECTIVE = Objective(
    "dip_vae_i", "DIP-VAE-I", posterior="diag", loss=dip_loss("i"),
    hparams={"lambda_od": HParam(1.0), "lambda_d": HParam(lambda_d_times(10.0))},
    scaled_regularizer=True,
)
