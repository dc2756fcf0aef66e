"""The passes the paired objectives share: both observations of a pair encoded as one (S, 2B) batch, and
a diagonal posterior sampled, decoded and scored. torch is imported when they run."""

from __future__ import annotations

from typing import Any


def encode_pair(vae: Any, params: dict[str, Any], x: Any, x_pair: Any) -> tuple[Any, Any, dict[str, Any]]:
    """x, x_pair (S, B, *obs) -> (xx (S, 2B, *obs), mu (S, 2B, d), posterior), first observations first."""
    import torch

    xx = torch.cat([x, x_pair], 1)
    mu, post = vae.encode(params, xx)
    return xx, mu, post


def sample_and_score(vae: Any, params: dict[str, Any], xx: Any, mu: Any, logvar: Any, eps: Any) -> tuple[Any, Any]:
    """z = mu + σ·eps for the 2B observations (eps (S, 2B, d)) -> per-observation (recon, kl), (S, 2B) each."""
    import torch

    from workers.models import loss_terms as T

    assert eps is not None and eps.shape[1] == xx.shape[1], "paired models take noise for 2B observations"
    z = mu + torch.exp(0.5 * logvar) * eps
    recon = T.recon_loss(xx, vae.decode(params, z), vae.likelihood)
    return recon, T.kl_diag(mu, logvar).sum(-1)
