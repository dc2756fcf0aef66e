"""What an objective declares: its hyperparameters (defaults and ranges), its posterior, its loss, whether it
trains on pairs or with a discriminator, and whether its step can be replayed from a CUDA graph.

Torch-free: the study spec validates against these declarations before anything is scheduled. Losses
import their torch terms (`workers.models.loss_terms`) when first called.

Regulariser scale: on datasets whose paper β is a likelihood scale (the synthetic sets, Gaussian
likelihood, β = 1e-4 / 1e-3), an objective declared `scaled_regularizer` multiplies its whole regulariser
(everything but the reconstruction) by that scale, `LossInputs.regularizer_scale`, so that its published
hyperparameters (β-TCVAE β = 6, FactorVAE γ = 35, ...) weigh the terms against the reconstruction as they
do on images. There the scale is 1 and the disentanglement_lib form holds exactly. β-VAE-like objectives
whose β is itself the paper's β already sit on that scale and are not rescaled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

POSTERIORS = ("none", "diag", "full")


@dataclass(frozen=True)
class DefaultContext:
    """What a hyperparameter's default may depend on."""

    dataset: str
    dataset_beta: float  # the dataset's paper β (sweep.defaults.DATASET_BETA)
    regularizer_scale: float  # the dataset's likelihood scale; 1 on images
    given: Mapping[str, float]  # the hyperparameters fixed before this one (declaration order)


Default = float | Callable[[DefaultContext], float]


def paper_beta(ctx: DefaultContext) -> float:
    """The dataset's paper β (thesis Table 3.1; Zietlow et al. 2021 for Shapes3D)."""
    return ctx.dataset_beta


@dataclass(frozen=True)
class HParam:
    """One hyperparameter. Its value where a study leaves it out: `per_dataset[dataset]` (a paper's setting
    for that dataset), else `on_scaled_datasets` where the regulariser is rescaled, else `default`."""

    default: Default
    minimum: float = 0.0
    exclusive_minimum: bool = True  # beta > 0, not >= 0
    integer: bool = False
    counts_factors: bool = False  # a number of factors: -1 (random) or 1..K-1 (Ada-GVAE's k)
    per_dataset: Mapping[str, float] = field(default_factory=dict)
    on_scaled_datasets: float | None = None

    def resolve(self, ctx: DefaultContext) -> float:
        if ctx.dataset in self.per_dataset:
            return float(self.per_dataset[ctx.dataset])
        if self.on_scaled_datasets is not None and ctx.regularizer_scale != 1.0:
            return float(self.on_scaled_datasets)
        return float(self.default(ctx) if callable(self.default) else self.default)

    def allows(self, value: float) -> bool:
        return value > self.minimum or (value == self.minimum and not self.exclusive_minimum)

    def describe_range(self) -> str:
        return f"{'>' if self.exclusive_minimum else '>='} {self.minimum}" + (", an integer" if self.integer else "")


@dataclass
class LossInputs:
    """One forward pass's terms for the single-observation loss. recon, kl: (S, B) per example (kl summed
    over latents; zero without a posterior); mu, z: (S, B, d); logvar (S, B, d) for a diagonal posterior;
    tc_logits: FactorVAE's discriminator logits on z, (S, B, 2); step: the global training step."""

    recon: torch.Tensor
    kl: torch.Tensor
    mu: torch.Tensor
    z: torch.Tensor
    step: int
    dataset_size: int
    logvar: torch.Tensor | None = None
    tc_logits: torch.Tensor | None = None
    regularizer_scale: float = 1.0


def with_regularizer(recon: torch.Tensor, terms: list[torch.Tensor], scale: float) -> torch.Tensor:
    """recon + scale·Σ terms; at scale 1, recon + t1 + t2 + ... in that order (disentanglement_lib's sum,
    bit for bit)."""
    if scale == 1.0:
        out = recon
        for t in terms:
            out = out + t
        return out
    reg = terms[0]
    for t in terms[1:]:
        reg = reg + t
    return recon + scale * reg


@dataclass(frozen=True)
class PairLaw:
    """How a paired objective's partners are drawn (workers.data.pairs): `laplace` natural transitions or
    `resample` (a subset of factors redrawn); `shuffled_negatives`: PCL's negatives, a permutation of the
    batch."""

    transition: str
    shuffled_negatives: bool = False


Loss = Callable[[Mapping[str, float], LossInputs], "torch.Tensor"]
# (vae, params, x, x_pair, eps, pair_perm) -> (loss (S,), recon (S,), kl (S,), mu of the first observations,
# their posterior parameters); vae is the workers.models.vae.BatchedVAE
PairedTerms = Callable[..., tuple[Any, Any, Any, Any, dict[str, Any]]]
# latent size d -> the objective's own parameters: (name, shape, init) per parameter
ExtraParameters = Callable[[int], list[tuple[str, tuple[int, ...], str]]]


@dataclass(frozen=True)
class Objective:
    """A training objective, declared once (one file per objective in this package)."""

    name: str
    doc: str
    posterior: str  # none | diag | full
    loss: Loss  # the single-observation loss per seed, (S,)
    hparams: dict[str, HParam] = field(default_factory=dict)  # in resolution order
    scaled_regularizer: bool = False  # see the module docstring
    pairs: PairLaw | None = None
    paired_terms: PairedTerms | None = None
    discriminator: bool = False  # FactorVAE's TC discriminator, trained beside the model
    decoder_on_detached_code: bool = False  # PCL: the decoder is a read-out of the encoder's (detached) code
    extra_parameters: ExtraParameters | None = None
    eager_reason: str | None = None  # why its step cannot be replayed from a CUDA graph, beyond pairing

    def __post_init__(self) -> None:
        if self.posterior not in POSTERIORS:
            raise ValueError(f"objective {self.name}: posterior {self.posterior!r} not in {POSTERIORS}")
        if (self.pairs is None) != (self.paired_terms is None):
            raise ValueError(f"objective {self.name}: a paired objective declares both its pair law and terms")

    @property
    def paired(self) -> bool:
        return self.pairs is not None

    @property
    def stochastic(self) -> bool:
        """Has a posterior (a KL term)."""
        return self.posterior != "none"

    @property
    def step_shape(self) -> str:
        """Objectives whose training step runs the same tensors share a step shape (`submit --dry-run` times
        one step per shape): the same networks, posterior and inputs, losses that differ by terms small beside
        the networks (β-TCVAE's O(B²·d) estimate, DIP-VAE's d×d covariance). A discriminator, pairs (twice
        the inputs) or parameters of its own make an objective its own shape."""
        if self.discriminator or self.paired or self.extra_parameters is not None:
            return self.name
        return f"single {self.posterior}"

    def steps_eagerly(self) -> str | None:
        """Why the training step cannot be replayed from a CUDA graph (`train.cuda_graphs`), or None."""
        if self.paired:
            return f"{self.name} draws each step's partners on the host"
        return self.eager_reason
