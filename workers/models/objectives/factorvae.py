"""FactorVAE (Kim & Mnih 2018), disentanglement_lib's form: reconstruction + KL + γ·TC, the total
correlation estimated by a discriminator between z and its per-latent batch shuffle (the discriminator
trains beside the model on detached codes).

Defaults: Zietlow et al. 2021 on dSprites (35) and Shapes3D (7); on the synthetic sets the regulariser is
rescaled (objectives.base) and γ = 35 keeps the dSprites meaning; elsewhere 10.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from workers.models.objectives.base import HParam, LossInputs, Objective, with_regularizer

if TYPE_CHECKING:
    import torch


def factorvae_loss(h: Mapping[str, float], t: LossInputs) -> torch.Tensor:
    from workers.models.loss_terms import factorvae_tc

    assert t.tc_logits is not None
    return with_regularizer(t.recon.mean(1), [t.kl.mean(1), h["gamma"] * factorvae_tc(t.tc_logits)],
                            t.regularizer_scale)


OBJECTIVE = Objective(
    "factorvae", "FactorVAE, TC discriminator", posterior="diag", loss=factorvae_loss,
    hparams={"gamma": HParam(10.0, per_dataset={"dsprites": 35.0, "shapes3d": 7.0}, on_scaled_datasets=35.0)},
    scaled_regularizer=True, discriminator=True,
)
