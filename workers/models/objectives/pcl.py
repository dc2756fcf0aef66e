"""PCL (Hyvärinen & Morioka 2017, as bethgelab/slow_disentanglement's --pcl runs it): a deterministic
encoder trained by a contrastive classifier r(h_t, h_{t−1}) of true natural-transition pairs against pairs
with a shuffled past; no posterior (posterior metrics are null). Its decoder is a read-out trained on the
detached codes, so the decoder metrics (DtO) describe a decoder fitted to the PCL code; on single
observations its loss is that read-out's reconstruction."""

from __future__ import annotations

from typing import Any

from workers.models.objectives.ae import reconstruction_only
from workers.models.objectives.base import HParam, Objective, PairLaw
from workers.models.objectives.pair_passes import encode_pair


def classifier_parameters(d: int) -> list[tuple[str, tuple[int, ...], str]]:
    """r's parameters (loss_terms.pcl_logits), the reference's initialisation."""
    return [("pcl.a", (d,), "ones"), ("pcl.b", (d,), "minus_ones"), ("pcl.c", (d,), "zeros"),
            ("pcl.d", (1,), "zeros")]


def pcl_terms(vae: Any, params: dict[str, Any], x: Any, x_pair: Any, eps: Any, pair_perm: Any
              ) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """Both observations encoded as one (S, 2B) batch; pair_perm (S, B) the negatives' shuffle."""
    import torch

    from workers.models import loss_terms as T

    B = x.shape[1]
    xx, mu, _ = encode_pair(vae, params, x, x_pair)
    mu1, mu2 = mu[:, :B], mu[:, B:]
    assert pair_perm is not None
    neg = torch.gather(mu1, 1, pair_perm.unsqueeze(-1).expand_as(mu1))
    contrastive = T.pcl_loss(T.pcl_logits(params, mu2, mu1), T.pcl_logits(params, mu2, neg))
    recon = T.recon_loss(xx, vae.decode(params, mu.detach()), vae.likelihood)
    kl = mu.new_zeros(mu.shape[:-1])
    return contrastive + recon.mean(1), recon.mean(1), kl.mean(1), mu1.detach(), {}


OBJECTIVE = Objective(
    "pcl",
    "PCL (Hyvarinen & Morioka 2017): deterministic encoder + contrastive classifier of true vs shuffled "
    "natural-transition pairs; no posterior (posterior metrics null); decoder a read-out on detached codes",
    posterior="none", loss=reconstruction_only, hparams={"rate_data": HParam(1.0)},
    pairs=PairLaw("laplace", shuffled_negatives=True), paired_terms=pcl_terms,
    decoder_on_detached_code=True, extra_parameters=classifier_parameters,
)
