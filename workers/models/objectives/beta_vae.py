"""β-VAE (Higgins et al. 2017): reconstruction + β·KL to N(0, I), diagonal Gaussian posterior.

β defaults to the dataset's paper β (thesis Table 3.1): on the synthetic sets that β is itself the
likelihood scale, so β-VAE is the objective the others' regulariser scale is taken from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from workers.models.objectives.base import HParam, LossInputs, Objective, paper_beta

if TYPE_CHECKING:
    import torch


def beta_elbo(h: Mapping[str, float], t: LossInputs) -> torch.Tensor:
    return t.recon.mean(1) + h["beta"] * t.kl.mean(1)


OBJECTIVE = Objective("beta_vae", "beta-VAE, diagonal posterior", posterior="diag", loss=beta_elbo,
                      hparams={"beta": HParam(paper_beta)})
