"""DIP-VAE-II (Kumar et al. 2018): as DIP-VAE-I with C = Cov[mu] + diag(E σ²), the covariance of the
aggregate posterior; λ_d defaults to λ_od."""

from __future__ import annotations

from workers.models.objectives.base import HParam, Objective
from workers.models.objectives.dip_vae_i import dip_loss, lambda_d_times

OBJECTIVE = Objective(
    "dip_vae_ii", "DIP-VAE-II", posterior="diag", loss=dip_loss("ii"),
    hparams={"lambda_od": HParam(1.0), "lambda_d": HParam(lambda_d_times(1.0))},
    scaled_regularizer=True,
)
