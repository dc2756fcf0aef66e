"""The objective registry: every training objective, declared once in its own file of this package
(hyperparameters with defaults and ranges, posterior, loss, pairing, CUDA-graph eligibility).

The study spec, the paper defaults, the model and the trainer read `OBJECTIVES`; adding an objective is one
new file here, listed below, and its tests. Torch-free to import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from workers.models.objectives import (
    ada_gvae,
    ae,
    annealed_vae,
    beta_tcvae,
    beta_vae,
    beta_vae_sigma,
    dip_vae_i,
    dip_vae_ii,
    factorvae,
    pcl,
    slowvae,
    vae,
)
from workers.models.objectives.base import DefaultContext, HParam, LossInputs, Objective, PairLaw

if TYPE_CHECKING:
    import torch

__all__ = ["OBJECTIVES", "PAIRED", "DefaultContext", "HParam", "LossInputs", "Objective", "PairLaw",
           "objective_loss", "steps_eagerly"]

OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    ae.OBJECTIVE, vae.OBJECTIVE, beta_vae.OBJECTIVE, beta_vae_sigma.OBJECTIVE, beta_tcvae.OBJECTIVE,
    factorvae.OBJECTIVE, dip_vae_i.OBJECTIVE, dip_vae_ii.OBJECTIVE, annealed_vae.OBJECTIVE,
    slowvae.OBJECTIVE, ada_gvae.OBJECTIVE, pcl.OBJECTIVE,
)}

PAIRED = frozenset(name for name, o in OBJECTIVES.items() if o.paired)


def get(model: str) -> Objective:
    """The objective named `model`; ValueError naming the known ones otherwise."""
    try:
        return OBJECTIVES[model]
    except KeyError:
        raise ValueError(f"model: unknown objective {model!r}; known: {', '.join(OBJECTIVES)}") from None


def objective_loss(model: str, hparams: Mapping[str, float], *, recon: torch.Tensor, kl: torch.Tensor,
                   mu: torch.Tensor, logvar: torch.Tensor | None, z: torch.Tensor, step: int, dataset_size: int,
                   tc_logits: torch.Tensor | None = None, regularizer_scale: float = 1.0) -> torch.Tensor:
    """The single-observation training loss per seed, (S,), of `model` (see `LossInputs` for the shapes)."""
    return get(model).loss(hparams, LossInputs(recon=recon, kl=kl, mu=mu, z=z, step=step, dataset_size=dataset_size,
                                               logvar=logvar, tc_logits=tc_logits,
                                               regularizer_scale=regularizer_scale))


def steps_eagerly(model: str) -> str | None:
    """Why the training step of `model` cannot be replayed from a CUDA graph (`train.cuda_graphs`), or None."""
    return get(model).steps_eagerly()
