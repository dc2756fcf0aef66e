"""Light metadata about architectures, activations, optimisers and likelihoods: what the study spec
validates against (the objectives are in `workers.models.objectives`). No torch import here."""

from __future__ import annotations

ARCHITECTURES = ("linear", "mlp", "conv")
ACTIVATIONS = ("relu", "tanh", "none")
OPTIMIZERS = ("adam", "adagrad")
LIKELIHOODS = ("gaussian", "bernoulli")
