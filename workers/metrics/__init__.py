"""Orthogonality and disentanglement metrics (design.md §6): pure functions on arrays, one file each."""

from workers.metrics.betavae import betavae_score
from workers.metrics.dci import completeness, dci, disentanglement
from workers.metrics.ds import ds
from workers.metrics.dto import (
    c_ima_from_gram,
    decoder_gram,
    distance_to_signed_permutation,
    dto,
    dto_from_gram,
    dto_from_jacobians,
    jacobian_metrics,
    nearest_signed_permutation,
    nearest_signed_permutation_milp,
)
from workers.metrics.evaluate import METRIC_KEYS, evaluate_checkpoint
from workers.metrics.factorvae import factorvae_score
from workers.metrics.mig import mig, mig_sup
from workers.metrics.polarized import active_mask_mu, polarized, polarized_fraction
from workers.metrics.sap import sap

__all__ = [
    "METRIC_KEYS",
    "active_mask_mu",
    "betavae_score",
    "c_ima_from_gram",
    "completeness",
    "dci",
    "disentanglement",
    "ds",
    "decoder_gram",
    "distance_to_signed_permutation",
    "dto",
    "dto_from_gram",
    "dto_from_jacobians",
    "evaluate_checkpoint",
    "factorvae_score",
    "jacobian_metrics",
    "mig",
    "mig_sup",
    "nearest_signed_permutation",
    "nearest_signed_permutation_milp",
    "polarized",
    "polarized_fraction",
    "sap",
]
