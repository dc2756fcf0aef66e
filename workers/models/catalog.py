"""Light metadata about objectives and architectures: what the study spec validates against.

No torch import here: the spec validator uses it before anything is scheduled.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HParam:
    """A model hyperparameter. `default=None` means: the per-dataset paper default (sweep.defaults)."""

    default: float | None
    minimum: float = 0.0
    exclusive_minimum: bool = True  # beta > 0, not >= 0


@dataclass(frozen=True)
class ObjectiveInfo:
    name: str
    stochastic: bool  # has a posterior (KL term); False only for the plain AE
    hparams: dict[str, HParam] = field(default_factory=dict)
    doc: str = ""


OBJECTIVES: dict[str, ObjectiveInfo] = {
    "ae": ObjectiveInfo("ae", False, {}, "plain autoencoder (deterministic code)"),
    "vae": ObjectiveInfo("vae", True, {}, "VAE, beta = 1"),
    "beta_vae": ObjectiveInfo("beta_vae", True, {"beta": HParam(None)}, "beta-VAE, diagonal posterior"),
    "beta_vae_sigma": ObjectiveInfo(
        "beta_vae_sigma", True, {"beta": HParam(None)}, "beta-VAE with full-covariance posterior (Cholesky)"
    ),
    "beta_tcvae": ObjectiveInfo(
        "beta_tcvae", True, {"beta": HParam(None)}, "beta-TCVAE, minibatch-weighted TC estimate"
    ),
    "factorvae": ObjectiveInfo("factorvae", True, {"gamma": HParam(None)}, "FactorVAE, TC discriminator"),
    "dip_vae_i": ObjectiveInfo(
        "dip_vae_i", True,
        {"lambda_od": HParam(None), "lambda_d": HParam(None)},  # lambda_d default: 10 * lambda_od
        "DIP-VAE-I",
    ),
    "dip_vae_ii": ObjectiveInfo(
        "dip_vae_ii", True,
        {"lambda_od": HParam(None), "lambda_d": HParam(None)},  # lambda_d default: lambda_od
        "DIP-VAE-II",
    ),
    "annealed_vae": ObjectiveInfo(
        "annealed_vae", True,
        {"c_max": HParam(None), "gamma": HParam(1000.0), "iteration_threshold": HParam(100_000.0)},
        "AnnealedVAE (capacity schedule)",
    ),
}

ARCHITECTURES = ("linear", "mlp", "conv")
ACTIVATIONS = ("relu", "tanh", "none")
OPTIMIZERS = ("adam", "adagrad")
LIKELIHOODS = ("gaussian", "bernoulli")
