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
    integer: bool = False  # a count (Ada-GVAE's k)


@dataclass(frozen=True)
class ObjectiveInfo:
    name: str
    stochastic: bool  # has a posterior (KL term); False only for the plain AE
    hparams: dict[str, HParam] = field(default_factory=dict)
    doc: str = ""
    paired: bool = False  # trains on pairs of observations (workers.data.pairs)


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
    # Paired models (issue 17): they learn from pairs of observations drawn by workers.data.pairs.
    "slowvae": ObjectiveInfo(
        "slowvae", True,
        {"beta": HParam(None), "gamma": HParam(None, 0.0, False), "rate": HParam(6.0),
         "rate_data": HParam(1.0)},
        "SlowVAE (Klindt et al. 2021): Laplace transition prior on natural-transition pairs; beta: KL to "
        "N(0, I), gamma: KL to the Laplace transition prior of rate `rate`, pairs: Laplace rate `rate_data`",
        paired=True,
    ),
    "ada_gvae": ObjectiveInfo(
        "ada_gvae", True,
        {"beta": HParam(None), "k": HParam(-1.0, -1.0, False, integer=True)},
        "Ada-GVAE (Locatello et al. 2020): pairs sharing all but k resampled factors (k = -1: random), "
        "posteriors averaged on the adaptively estimated shared latents",
        paired=True,
    ),
    "pcl": ObjectiveInfo(
        "pcl", False, {"rate_data": HParam(1.0)},
        "PCL (Hyvarinen & Morioka 2017): deterministic encoder + contrastive classifier of true vs shuffled "
        "natural-transition pairs; no posterior (posterior metrics null); decoder a read-out on detached codes",
        paired=True,
    ),
}

PAIRED = frozenset(name for name, o in OBJECTIVES.items() if o.paired)


def steps_eagerly(model: str) -> str | None:
    """Why the training step of `model` cannot be replayed from a CUDA graph (`train.cuda_graphs`), or None."""
    if model in PAIRED:
        return f"{model} draws each step's partners on the host"
    if model == "annealed_vae":
        return "annealed_vae's capacity follows the step count, which a graph would freeze"
    return None

ARCHITECTURES = ("linear", "mlp", "conv")
ACTIVATIONS = ("relu", "tanh", "none")
OPTIMIZERS = ("adam", "adagrad")
LIKELIHOODS = ("gaussian", "bernoulli")
