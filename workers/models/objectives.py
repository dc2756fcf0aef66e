"""Loss terms of every objective, as pure functions on seed-batched tensors.

Shapes: S seeds, B examples, d latents. `mu`, `logvar`, `z` are (S, B, d); `scale_tril` is (S, B, d, d).
Per-example terms (recon, KL) are summed over pixels / latents; `objective_loss` averages over the batch
and returns one loss per seed, shape (S,). Units: nats (Bernoulli) or squared error (Gaussian, unit
variance up to constants), as in the papers: loss = recon + beta * KL (+ the objective's extra term).

References: disentanglement_lib (vae.py) for beta-TCVAE, FactorVAE, DIP-VAE and AnnealedVAE; the thesis
eq. 3.30 for the full-covariance KL; Chen et al. 2018 for minibatch-weighted sampling.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def recon_loss(x: torch.Tensor, out: torch.Tensor, likelihood: str) -> torch.Tensor:
    """(S, B, *obs) data and decoder output -> (S, B) negative log-likelihood summed over pixels.

    Bernoulli: `out` are logits, binary cross-entropy (x may be in [0, 1]). Gaussian: `out` are means,
    squared error sum((x - out)^2) (the papers' L2 reconstruction loss).
    """
    if likelihood == "bernoulli":
        per = F.binary_cross_entropy_with_logits(out, x, reduction="none")
    elif likelihood == "gaussian":
        per = (x - out).square()
    else:
        raise ValueError(f"likelihood: unknown {likelihood!r}; allowed: gaussian, bernoulli")
    return per.flatten(2).sum(-1)


def kl_diag(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-latent KL(N(mu, diag exp(logvar)) || N(0, I)) = ½(mu² + σ² − log σ² − 1); same shape as mu."""
    return 0.5 * (mu.square() + logvar.exp() - logvar - 1.0)


def kl_full(mu: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, L Lᵀ) || N(0, I)) = ½(‖mu‖² + tr Σ − log det Σ − d), thesis eq. 3.30; (..., d) -> (...).

    tr Σ = ‖L‖_F², log det Σ = 2 Σ_i log L_ii (L lower-triangular with positive diagonal).
    """
    d = mu.shape[-1]
    trace = scale_tril.square().sum((-2, -1))
    logdet = 2.0 * torch.diagonal(scale_tril, dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (mu.square().sum(-1) + trace - logdet - d)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; mu, exp(logvar)) (broadcasting)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).square() * torch.exp(-logvar))


def total_correlation_mws(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                          dataset_size: int) -> torch.Tensor:
    """Minibatch-weighted-sampling estimate of TC(q(z)) per seed (Chen et al. 2018): (S, B, d) -> (S,).

    log q(z_i) ≈ logsumexp_j log q(z_i | x_j) − log(N·B), and the same per latent for the product of
    marginals; TC = mean_i [log q(z_i) − Σ_k log q(z_ik)]. N = dataset_size, B = batch size.
    (disentanglement_lib drops the constant (d−1)·log(N·B); gradients are identical.)
    """
    B = z.shape[1]
    log_qz_cond = gaussian_log_density(z.unsqueeze(2), mu.unsqueeze(1), logvar.unsqueeze(1))  # (S, B, B, d)
    log_nb = math.log(dataset_size * B)
    log_qz = torch.logsumexp(log_qz_cond.sum(-1), dim=2) - log_nb  # (S, B)
    log_qz_product = (torch.logsumexp(log_qz_cond, dim=2) - log_nb).sum(-1)  # (S, B)
    return (log_qz - log_qz_product).mean(1)


def permute_dims(z: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """FactorVAE's shuffle: each latent k permuted across the batch independently.

    z (S, B, d), perm (S, B, d) integer: out[s, i, k] = z[s, perm[s, i, k], k].
    """
    return torch.gather(z, 1, perm)


def factorvae_tc(logits: torch.Tensor) -> torch.Tensor:
    """Discriminator density-ratio estimate of TC per seed: mean(logit_0 − logit_1); (S, B, 2) -> (S,)."""
    return (logits[..., 0] - logits[..., 1]).mean(1)


def factorvae_discriminator_loss(logits_z: torch.Tensor, logits_perm: torch.Tensor) -> torch.Tensor:
    """½(CE(D(z), class 0) + CE(D(z_perm), class 1)) per seed; (S, B, 2) each -> (S,)."""
    return -0.5 * (F.log_softmax(logits_z, -1)[..., 0].mean(1) + F.log_softmax(logits_perm, -1)[..., 1].mean(1))


def dip_regularizer(mu: torch.Tensor, logvar: torch.Tensor, lambda_od: float, lambda_d: float,
                    kind: str) -> torch.Tensor:
    """DIP-VAE moment-matching penalty per seed (disentanglement_lib): (S, B, d) -> (S,).

    Cov = Cov_batch[mu] (type i) or Cov_batch[mu] + diag(E_batch[σ²]) (type ii);
    penalty = λ_od Σ_{i≠j} Cov_ij² + λ_d Σ_i (Cov_ii − 1)².
    """
    mu_c = mu - mu.mean(1, keepdim=True)
    cov = mu_c.transpose(1, 2) @ mu_c / mu.shape[1]  # (S, d, d), biased like tf.reduce_mean
    if kind == "ii":
        cov = cov + torch.diag_embed(logvar.exp().mean(1))
    elif kind != "i":
        raise ValueError(f"DIP-VAE kind must be 'i' or 'ii', got {kind!r}")
    diag = torch.diagonal(cov, dim1=-2, dim2=-1)
    off = cov - torch.diag_embed(diag)
    return lambda_od * off.square().sum((-2, -1)) + lambda_d * (diag - 1.0).square().sum(-1)


def annealed_capacity(c_max: float, step: int, iteration_threshold: float) -> float:
    """AnnealedVAE capacity C at a global step: linear from 0 to c_max over iteration_threshold steps."""
    return min(c_max, c_max * step / iteration_threshold)


def objective_loss(model: str, hparams: dict[str, float], *, recon: torch.Tensor, kl: torch.Tensor,
                   mu: torch.Tensor, logvar: torch.Tensor | None, z: torch.Tensor, step: int,
                   dataset_size: int, tc_logits: torch.Tensor | None = None) -> torch.Tensor:
    """The training loss per seed (S,) of `model`.

    recon, kl: (S, B) per-example terms (kl summed over latents; zero for the AE); mu, logvar, z: (S, B, d);
    tc_logits: FactorVAE discriminator logits on z, (S, B, 2).
    """
    rec, klm = recon.mean(1), kl.mean(1)
    if model == "ae":
        return rec
    if model == "vae":
        return rec + klm
    if model in ("beta_vae", "beta_vae_sigma"):
        return rec + hparams["beta"] * klm
    if model == "beta_tcvae":
        assert logvar is not None
        tc = total_correlation_mws(z, mu, logvar, dataset_size)
        return rec + klm + (hparams["beta"] - 1.0) * tc
    if model == "factorvae":
        assert tc_logits is not None
        return rec + klm + hparams["gamma"] * factorvae_tc(tc_logits)
    if model in ("dip_vae_i", "dip_vae_ii"):
        assert logvar is not None
        kind = model.rsplit("_", 1)[1]
        return rec + klm + dip_regularizer(mu, logvar, hparams["lambda_od"], hparams["lambda_d"], kind)
    if model == "annealed_vae":
        c = annealed_capacity(hparams["c_max"], step, hparams["iteration_threshold"])
        return rec + hparams["gamma"] * (klm - c).abs()
    raise ValueError(f"model: unknown objective {model!r}")
