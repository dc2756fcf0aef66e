"""Orthogonality and disentanglement metrics (design.md §6): pure functions on arrays, one file each."""

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
from workers.metrics.mig import mig, mig_sup
from workers.metrics.polarized import active_mask_mu, polarized, polarized_fraction

__all__ = [
    "active_mask_mu",
    "c_ima_from_gram",
    "decoder_gram",
    "distance_to_signed_permutation",
    "dto",
    "dto_from_gram",
    "dto_from_jacobians",
    "jacobian_metrics",
    "mig",
    "mig_sup",
    "nearest_signed_permutation",
    "nearest_signed_permutation_milp",
    "polarized",
    "polarized_fraction",
]
