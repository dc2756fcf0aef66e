"""The loss terms the objectives (`workers.models.objectives`) are built from, as pure functions on
seed-batched tensors.

Shapes: S seeds, B examples, d latents. `mu`, `logvar`, `z` are (S, B, d); `scale_tril` is (S, B, d, d).
Per-example terms (recon, KL) are summed over pixels / latents; an objective's loss averages over the batch
and returns one loss per seed, shape (S,). Units: nats (Bernoulli) or squared error (Gaussian, unit
variance up to constants), as in the papers: loss = recon + beta * KL (+ the objective's extra term).

References: disentanglement_lib (vae.py) for beta-TCVAE, FactorVAE, DIP-VAE and AnnealedVAE; the thesis
eq. 3.30 for the full-covariance KL; Chen et al. 2018 for minibatch-weighted sampling. The paired objectives
(SlowVAE, Ada-GVAE, PCL) are at the end of the file with their references.
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


# ---- paired objectives ---------------------------------------------------------------------------------
# Each takes the posteriors of a pair (first observation: mu1/logvar1, partner: mu2/logvar2), (S, B, d) each.


def normal_entropy(logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise entropy of N(mu, exp(logvar)): ½(logvar + log 2πe)."""
    return 0.5 * (logvar + LOG_2PI + 1.0)


def laplace_log_density(z: torch.Tensor, loc: torch.Tensor, rate: float) -> torch.Tensor:
    """Elementwise log Laplace(z; loc, scale 1/rate) = log(rate/2) − rate·|z − loc|: SlowVAE's transition
    prior p(z_t | z_{t−1}) per latent (Klindt et al. 2021, eq. 4)."""
    return math.log(rate / 2.0) - rate * (z - loc).abs()


def laplace_cross_entropy(mean: torch.Tensor, logvar: torch.Tensor, rate: float) -> torch.Tensor:
    """Elementwise cross-entropy −E_{z~N(mean, σ²)}[log Laplace(z; 0, 1/rate)] in closed form:

        −log(rate/2) + rate·E|z|,   E|z| = σ·√(2/π)·exp(−mean²/2σ²) − mean·(1 − 2Φ(mean/σ))

    (the folded normal's mean; bethgelab/slow_disentanglement `compute_cross_ent_laplace`). SlowVAE calls it
    with mean = mu_t − mu_{t−1}: the partner's code enters at its posterior mean, as in the reference.
    """
    sigma = torch.exp(0.5 * logvar)
    folded = sigma * math.sqrt(2.0 / math.pi) * torch.exp(-mean.square() / (2.0 * sigma.square())) \
        - mean * (1.0 - 2.0 * _normal_cdf(mean / sigma))
    return -math.log(rate / 2.0) + rate * folded


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def slowvae_loss(recon: torch.Tensor, mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor,
                 logvar2: torch.Tensor, *, beta: float, gamma: float, rate: float) -> torch.Tensor:
    """SlowVAE (Klindt et al., ICLR 2021) per seed, (S,), as in bethgelab/slow_disentanglement solver.py:

        loss = E_pairs[rec(x1) + rec(x2)] + β·KL_N + γ·KL_L
        KL_N = mean over the 2B observations of Σ_j KL(q(z_j|x) || N(0, 1))
        KL_L = E_pairs Σ_j [CE(q(z_2j|x2); Laplace(mu_1j, 1/λ)) + CE(q(z_1j|x1); Laplace(mu_2j, 1/λ))] − H̄
        H̄   = mean over the 2B observations of Σ_j H(q(z_j|x))

    The Laplace transition prior is applied both ways (the reference's "train both ways"; H̄ subtracted once,
    as there). recon: (S, 2B) per-observation reconstruction losses, first observations first.
    """
    logvar = torch.cat([logvar1, logvar2], 1)
    mu = torch.cat([mu1, mu2], 1)
    h = normal_entropy(logvar).sum(-1).mean(1)
    kl_normal = kl_diag(mu, logvar).sum(-1).mean(1)
    ce_laplace = (laplace_cross_entropy(mu1 - mu2, logvar1, rate)
                  + laplace_cross_entropy(mu2 - mu1, logvar2, rate)).sum(-1).mean(1)
    return 2.0 * recon.mean(1) + beta * kl_normal + gamma * (ce_laplace - h)


def gaussian_kl_between(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor,
                        logvar2: torch.Tensor) -> torch.Tensor:
    """disentanglement_lib weak_vae.compute_kl: σ1²/σ2² + (mu2 − mu1)²/σ2² − 1 + log σ2² − log σ1²,
    elementwise (= 2·KL(N(mu1, σ1²) || N(mu2, σ2²)), the per-latent distance Ada-GVAE thresholds)."""
    return torch.exp(logvar1 - logvar2) + (mu2 - mu1).square() * torch.exp(-logvar2) - 1.0 + logvar2 - logvar1


def ada_gvae_shared(delta: torch.Tensor) -> torch.Tensor:
    """Ada-GVAE's adaptive estimate of the shared latents (disentanglement_lib aggregate_argmax): per
    example, the latents whose δ falls in the lower of two equal-width bins over [min δ, max δ], i.e.
    δ_j < τ = ½(max δ + min δ) (Locatello et al. 2020, eq. 5). (…, d) -> (…, d) bool; all latents count as
    shared when every δ_j is equal (the torch reference's NaN bin is never bin 1)."""
    lo = delta.amin(-1, keepdim=True)
    hi = delta.amax(-1, keepdim=True)
    return (delta < 0.5 * (lo + hi)) | (hi == lo)


def ada_gvae_aggregate(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor, logvar2: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ada-GVAE posteriors of a pair (group_vae_argmax): on the shared latents both observations take the
    average posterior, mu = ½(mu1 + mu2), σ² = ½(σ1² + σ2²) (GVAE averaging, Hosoya 2019); elsewhere each
    keeps its own. Returns (mu1', logvar1', mu2', logvar2', shared)."""
    shared = ada_gvae_shared(gaussian_kl_between(mu1, logvar1, mu2, logvar2))
    avg_mu = 0.5 * mu1 + 0.5 * mu2
    avg_logvar = torch.log(0.5 * logvar1.exp() + 0.5 * logvar2.exp())
    return (torch.where(shared, avg_mu, mu1), torch.where(shared, avg_logvar, logvar1),
            torch.where(shared, avg_mu, mu2), torch.where(shared, avg_logvar, logvar2), shared)


def ada_gvae_loss(recon: torch.Tensor, kl: torch.Tensor, *, beta: float) -> torch.Tensor:
    """Ada-GVAE per seed: ½(rec(x1) + rec(x2)) + β·½(KL(q̃1) + KL(q̃2)), batch means (group_vae model_fn);
    recon, kl: (S, 2B) per-observation terms of the aggregated posteriors."""
    return recon.mean(1) + beta * kl.mean(1)


def pcl_logits(params: dict[str, torch.Tensor], h_t: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
    """PCL's classifier r(h_t, h_{t−1}) = −Σ_j |a_j h_t,j + b_j h_{t−1},j + c_j| + Σ_j h_t,j² + d: a sum of
    scalar functions of each feature pair (Hyvärinen & Morioka 2017, eq. 6; the parametrisation of
    bethgelab/slow_disentanglement `r_func`). (S, B, d) each -> (S, B) logits; params "pcl.a/b/c" (S, d),
    "pcl.d" (S, 1)."""
    a, b, c, d0 = (params[f"pcl.{k}"] for k in ("a", "b", "c", "d"))
    q = (a.unsqueeze(1) * h_t + b.unsqueeze(1) * h_prev + c.unsqueeze(1)).abs().sum(-1)
    return -q + h_t.square().sum(-1) + d0


def pcl_loss(logits_pos: torch.Tensor, logits_neg: torch.Tensor) -> torch.Tensor:
    """Logistic regression of true pairs (label 1) against pairs with a shuffled past (label 0), mean over
    the 2B pairs, per seed: (S, B) each -> (S,)."""
    return 0.5 * (F.softplus(-logits_pos).mean(1) + F.softplus(logits_neg).mean(1))
