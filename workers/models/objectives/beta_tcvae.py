"""β-TCVAE (Chen et al. 2018), disentanglement_lib's form: reconstruction + KL + (β − 1)·TC, the total
correlation of q(z) estimated by minibatch-weighted sampling.

β ≥ 1: below 1 the objective would reward total correlation. Defaults: Zietlow et al. 2021 on dSprites (6)
and Shapes3D (32); on the synthetic sets the regulariser is rescaled (objectives.base) and β = 6 keeps the
dSprites meaning; elsewhere the dataset's paper β.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from workers.models.objectives.base import HParam, LossInputs, Objective, paper_beta, with_regularizer

if TYPE_CHECKING:
    import torch


def beta_tcvae_loss(h: Mapping[str, float], t: LossInputs) -> torch.Tensor:
    from workers.models.loss_terms import total_correlation_mws

    assert t.logvar is not None
    tc = total_correlation_mws(t.z, t.mu, t.logvar, t.dataset_size)
    return with_regularizer(t.recon.mean(1), [t.kl.mean(1), (h["beta"] - 1.0) * tc], t.regularizer_scale)


OBJECTIVE = Objective(
    "beta_tcvae", "beta-TCVAE, minibatch-weighted TC estimate", posterior="diag", loss=beta_tcvae_loss,
    hparams={"beta": HParam(paper_beta, minimum=1.0, exclusive_minimum=False,
                            per_dataset={"dsprites": 6.0, "shapes3d": 32.0}, on_scaled_datasets=6.0)},
    scaled_regularizer=True,
)
