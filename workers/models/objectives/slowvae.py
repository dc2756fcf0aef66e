"""SlowVAE (Klindt et al., ICLR 2021): a sparse Laplace transition prior on natural-transition pairs, as in
bethgelab/slow_disentanglement; β weighs the KL to N(0, I), γ the KL to the Laplace prior of rate `rate`;
pairs move with Laplace rate `rate_data` (workers.data.pairs).

Defaults are the reference's UDR-selected setting (β 1, γ 10, rate 6) on dSprites and Shapes3D (thesis
Table 4.1); elsewhere β is the dataset's paper β (β-VAE's, its comparison baseline) and γ = 10·β, so the
two keep their ratio where β is a likelihood scale (synth_lin: γ 1e-3). Its β is on β-VAE's scale already,
so the regulariser is not rescaled. On single observations (held-out losses) it is a β-VAE.
"""

from __future__ import annotations

from typing import Any

from workers.models.objectives.base import DefaultContext, HParam, Objective, PairLaw, paper_beta
from workers.models.objectives.beta_vae import beta_elbo
from workers.models.objectives.pair_passes import encode_pair, sample_and_score

GAMMA_PER_BETA = 10.0


def gamma_default(ctx: DefaultContext) -> float:
    return GAMMA_PER_BETA * ctx.given["beta"]


def slowvae_terms(vae: Any, params: dict[str, Any], x: Any, x_pair: Any, eps: Any, pair_perm: Any
                  ) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """Both observations encoded as one (S, 2B) batch; eps (S, 2B, d)."""
    from workers.models.loss_terms import slowvae_loss

    B = x.shape[1]
    xx, mu, post = encode_pair(vae, params, x, x_pair)
    logvar = post["logvar"]
    recon, kl = sample_and_score(vae, params, xx, mu, logvar, eps)
    mu1, mu2, lv1, lv2 = mu[:, :B], mu[:, B:], logvar[:, :B], logvar[:, B:]
    h = vae.hparams
    loss = slowvae_loss(recon, mu1, lv1, mu2, lv2, beta=h["beta"], gamma=h["gamma"], rate=h["rate"])
    return loss, recon.mean(1), kl.mean(1), mu1.detach(), {"logvar": lv1.detach()}

OBJECTIVE = Objective(
    "slowvae",
    "SlowVAE (Klindt et al. 2021): Laplace transition prior on natural-transition pairs; beta: KL to "
    "N(0, I), gamma: KL to the Laplace transition prior of rate `rate`, pairs: Laplace rate `rate_data`",
    posterior="diag", loss=beta_elbo,
    hparams={"beta": HParam(paper_beta, per_dataset={"dsprites": 1.0, "shapes3d": 1.0}),
             "gamma": HParam(gamma_default, minimum=0.0, exclusive_minimum=False),
             "rate": HParam(6.0), "rate_data": HParam(1.0)},
    pairs=PairLaw("laplace"), paired_terms=slowvae_terms,
)
