"""The seed-batched VAE: S restarts of one configuration as one model, and the single-seed view of it.

`BatchedVAE` holds no tensors: it is the architecture (a `ParamLayout` plus encoder/decoder networks) and
the objective. Every call takes the named (S, *shape) parameters of S seeds (`FlatParams.leaves`, or
`params.views` of any (S, P) buffer), so the same object serves a block of 64 seeds, one seed, or one
seed's saved state dict (`SeedView`).

The objective (`workers.models.objectives`) decides the posterior ("none": z = mu; "diag": mu, logvar,
z = mu + σ ε; "full": mu and a Cholesky factor L with L_ii = exp(½ raw_i) and free strictly-lower entries,
z = mu + L ε), the loss, and for paired objectives the pass on pairs: `terms(..., x_pair=...)`. Without
`x_pair` (held-out losses, metrics) a paired objective is evaluated by its single-observation loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workers.models import loss_terms as O
from workers.models.networks import Network, build_decoder, build_discriminator, build_encoder
from workers.models.objectives import OBJECTIVES, LossInputs
from workers.models.params import ParamLayout, views
from workers.trial import RestartConfig


@dataclass
class StepTerms:
    """Per-seed results of one forward pass on a batch (all (S,) unless noted)."""

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    mu: torch.Tensor  # (S, B, d), detached
    posterior: dict[str, torch.Tensor]  # logvar (S, B, d) or scale_tril (S, B, d, d), detached
    disc_loss: torch.Tensor | None = None  # FactorVAE discriminator loss (S,), differentiable


class BatchedVAE:
    """Architecture + objective of one configuration (a `workers.trial.RestartConfig`), for any number of seeds."""

    def __init__(self, config: RestartConfig, obs_shape: tuple[int, ...]):
        self.config = config
        self.model: str = config.model
        self.objective = OBJECTIVES[config.model]
        self.regularizer_scale = float(config.regularizer_scale)
        self.hparams: dict[str, float] = dict(config.hparams)
        self.likelihood: str = config.likelihood
        self.latent_dim: int = int(config.latent_dim)
        self.obs_shape = tuple(obs_shape)
        self.posterior = self.objective.posterior
        d = self.latent_dim
        head = {"none": d, "diag": 2 * d, "full": d + d * (d + 1) // 2}[self.posterior]
        self.layout = ParamLayout()
        self.encoder: Network = build_encoder(config.arch, self.obs_shape, head, self.layout)
        self.decoder: Network = build_decoder(config.arch, d, self.obs_shape, self.layout)
        self.disc_layout: ParamLayout | None = None
        self.discriminator: Network | None = None
        if self.objective.discriminator:
            self.disc_layout = ParamLayout()
            self.discriminator = build_discriminator(d, self.disc_layout)
        self.paired = self.objective.paired
        if self.objective.extra_parameters is not None:
            for name, shape, init in self.objective.extra_parameters(d):
                self.layout.add(name, shape, fan_in=1, init=init)
        rows, cols = torch.tril_indices(d, d, offset=-1)
        self._tril_lin = rows * d + cols  # positions of the strictly-lower entries in a flattened d x d
        # ... and a copy per device: no host-to-device copy inside a step (a CUDA graph cannot capture one)
        self._tril_on: dict[torch.device, torch.Tensor] = {}

    # ---- the pieces ------------------------------------------------------------------------------
    def encode(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x (S, B, *obs) -> mu (S, B, d), posterior parameters (see module docstring)."""
        h = self.encoder(params, x)
        d = self.latent_dim
        mu = h[..., :d]
        if self.posterior == "none":
            return mu, {}
        if self.posterior == "diag":
            return mu, {"logvar": h[..., d:]}
        diag = torch.exp(0.5 * h[..., d:2 * d])
        off = h[..., 2 * d:]
        lower = torch.zeros(*h.shape[:-1], d * d, dtype=h.dtype, device=h.device)
        lin = self._tril_on.get(h.device)
        if lin is None:
            lin = self._tril_on[h.device] = self._tril_lin.to(h.device)
        lower = lower.index_copy(-1, lin, off).unflatten(-1, (d, d))
        return mu, {"scale_tril": lower + torch.diag_embed(diag)}

    def sample(self, mu: torch.Tensor, post: dict[str, torch.Tensor], eps: torch.Tensor | None) -> torch.Tensor:
        """Reparameterised z (S, B, d) from standard-normal noise eps (S, B, d) (None for the AE)."""
        if self.posterior == "none":
            return mu
        assert eps is not None
        if self.posterior == "diag":
            return mu + torch.exp(0.5 * post["logvar"]) * eps
        # an explicit sum over the last axis (not a batched matmul) keeps each seed's arithmetic the same
        # whatever the number of seeds (block independence)
        return mu + (post["scale_tril"] * eps.unsqueeze(-2)).sum(-1)

    def kl(self, mu: torch.Tensor, post: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-example KL to N(0, I) summed over latents, (S, B); zero for the AE."""
        if self.posterior == "none":
            return mu.new_zeros(mu.shape[:-1])
        if self.posterior == "diag":
            return O.kl_diag(mu, post["logvar"]).sum(-1)
        return O.kl_full(mu, post["scale_tril"])

    def decode(self, params: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """z (S, B, d) -> decoder output (S, B, *obs): logits (Bernoulli) or means (Gaussian)."""
        return self.decoder(params, z)

    def output_mean(self, out: torch.Tensor) -> torch.Tensor:
        """Decoder output -> likelihood mean in data space."""
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    # ---- one training/evaluation pass ------------------------------------------------------------
    def terms(self, params: dict[str, torch.Tensor], x: torch.Tensor, eps: torch.Tensor | None, *, step: int,
              dataset_size: int, disc_params: dict[str, torch.Tensor] | None = None,
              perm: torch.Tensor | None = None, x_pair: torch.Tensor | None = None,
              pair_perm: torch.Tensor | None = None) -> StepTerms:
        """Losses of every seed on its batch. x (S, B, *obs); eps (S, B, d) noise; perm (S, B, d) FactorVAE
        shuffle indices. The FactorVAE discriminator enters the VAE loss with its weights detached (only
        the discriminator loss trains them, on detached codes), as in disentanglement_lib.

        Paired models: x_pair (S, B, *obs) the partners of x, eps (S, 2B, d) (first observations, then
        partners), pair_perm (S, B) PCL's negatives; without x_pair, the single-observation losses."""
        if x_pair is not None:
            return self._paired_terms(params, x, x_pair, eps, pair_perm)
        mu, post = self.encode(params, x)
        z = self.sample(mu, post, eps)
        out = self.decode(params, z.detach() if self.objective.decoder_on_detached_code else z)
        recon = O.recon_loss(x, out, self.likelihood)
        kl = self.kl(mu, post)
        tc_logits = disc_loss = None
        if self.discriminator is not None:
            assert disc_params is not None and perm is not None
            tc_logits = self.discriminator({k: v.detach() for k, v in disc_params.items()}, z)
            zd = z.detach()
            both = self.discriminator(disc_params, torch.cat([zd, O.permute_dims(zd, perm)], dim=1))
            disc_loss = O.factorvae_discriminator_loss(both[:, :zd.shape[1]], both[:, zd.shape[1]:])
        loss = self.objective.loss(self.hparams, LossInputs(
            recon=recon, kl=kl, mu=mu, z=z, step=step, dataset_size=dataset_size, logvar=post.get("logvar"),
            tc_logits=tc_logits, regularizer_scale=self.regularizer_scale))
        return StepTerms(loss=loss, recon=recon.mean(1), kl=kl.mean(1), mu=mu.detach(),
                         posterior={k: v.detach() for k, v in post.items()}, disc_loss=disc_loss)

    def _paired_terms(self, params: dict[str, torch.Tensor], x: torch.Tensor, x_pair: torch.Tensor,
                      eps: torch.Tensor | None, pair_perm: torch.Tensor | None) -> StepTerms:
        """One training pass on pairs (the objective's `paired_terms`). Reported recon/kl are per-observation
        means over the 2B observations (kl of the posteriors the loss uses); mu and the posterior are the
        first observations'."""
        if self.objective.paired_terms is None:
            raise ValueError(f"model {self.model!r} does not train on pairs")
        loss, recon, kl, mu1, post = self.objective.paired_terms(self, params, x, x_pair, eps, pair_perm)
        return StepTerms(loss=loss, recon=recon, kl=kl, mu=mu1, posterior=post)

    # ---- per-seed views and state dicts ----------------------------------------------------------
    def seed_view(self, flat: torch.Tensor, seed_index: int) -> SeedView:
        """The `SeedModel` (workers.models.protocol) of row `seed_index` of an (S, P) buffer (shares storage)."""
        return SeedView(self, flat[seed_index:seed_index + 1].detach())

    def seed_state_dict(self, flat: torch.Tensor, seed_index: int,
                        disc_flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Named parameters of one seed ("enc.fc0.weight" (in, out), ...; FactorVAE adds "disc.*")."""
        state = self.layout.seed_state_dict(flat, seed_index)
        if disc_flat is not None and self.disc_layout is not None:
            state.update(self.disc_layout.seed_state_dict(disc_flat, seed_index))
        return state

    def load_seed(self, state: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> SeedView:
        """A `SeedModel` from a state dict written by `seed_state_dict`."""
        return SeedView(self, self.layout.flat_from_state_dict(state).to(device))


class SeedView:
    """One seed of a BatchedVAE as a `workers.models.protocol.SeedModel` (no seed dimension)."""

    def __init__(self, vae: BatchedVAE, row: torch.Tensor):
        self.vae = vae
        self.params = views(vae.layout, row)  # (1, *shape) each
        self.latent_dim = vae.latent_dim
        self.posterior = vae.posterior

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x (N, *obs) -> mu (N, d), {} | {"logvar": (N, d)} | {"scale_tril": (N, d, d)}."""
        mu, post = self.vae.encode(self.params, x.unsqueeze(0))
        return mu[0], {k: v[0] for k, v in post.items()}

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, d) -> likelihood mean (N, *obs); differentiable in z."""
        return self.vae.output_mean(self.vae.decode(self.params, z.unsqueeze(0))[0])
