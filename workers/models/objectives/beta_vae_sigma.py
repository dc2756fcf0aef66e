"""β-VAE with a full-covariance Gaussian posterior (thesis eq. 3.30): the encoder gives mu and a Cholesky
factor L; KL = ½(‖mu‖² + tr Σ − log det Σ − d). The control for the diagonal posterior's role in DtO."""

from __future__ import annotations

from workers.models.objectives.base import HParam, Objective, paper_beta
from workers.models.objectives.beta_vae import beta_elbo

OBJECTIVE = Objective("beta_vae_sigma", "beta-VAE with full-covariance posterior (Cholesky)", posterior="full",
                      loss=beta_elbo, hparams={"beta": HParam(paper_beta)})
