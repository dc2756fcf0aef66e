"""Ada-GVAE (Locatello et al. 2020): pairs sharing all but k resampled factors (k = −1: k random), the
posteriors averaged on the adaptively estimated shared latents (disentanglement_lib's group_vae_argmax).
β defaults to the dataset's paper β (β-VAE's scale; disentanglement_lib's weak study sweeps it over 1, 2,
4, 6, 8, 16 on images). On single observations (held-out losses) it is a β-VAE."""

from __future__ import annotations

from typing import Any

from workers.models.objectives.base import HParam, Objective, PairLaw, paper_beta
from workers.models.objectives.beta_vae import beta_elbo
from workers.models.objectives.pair_passes import encode_pair, sample_and_score


def ada_gvae_terms(vae: Any, params: dict[str, Any], x: Any, x_pair: Any, eps: Any, pair_perm: Any
                   ) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """Both observations encoded as one (S, 2B) batch, posteriors aggregated; eps (S, 2B, d)."""
    import torch

    from workers.models.loss_terms import ada_gvae_aggregate, ada_gvae_loss

    B = x.shape[1]
    xx, mu, post = encode_pair(vae, params, x, x_pair)
    logvar = post["logvar"]
    m1, l1, m2, l2, _ = ada_gvae_aggregate(mu[:, :B], logvar[:, :B], mu[:, B:], logvar[:, B:])
    recon, kl = sample_and_score(vae, params, xx, torch.cat([m1, m2], 1), torch.cat([l1, l2], 1), eps)
    loss = ada_gvae_loss(recon, kl, beta=vae.hparams["beta"])
    return loss, recon.mean(1), kl.mean(1), mu[:, :B].detach(), {"logvar": logvar[:, :B].detach()}

OBJECTIVE = Objective(
    "ada_gvae",
    "Ada-GVAE (Locatello et al. 2020): pairs sharing all but k resampled factors (k = -1: random), "
    "posteriors averaged on the adaptively estimated shared latents",
    posterior="diag", loss=beta_elbo,
    hparams={"beta": HParam(paper_beta), "k": HParam(-1.0, minimum=-1.0, exclusive_minimum=False, integer=True,
                                                              counts_factors=True)},
    pairs=PairLaw("resample"), paired_terms=ada_gvae_terms,
)
