"""OD-Score (Bhowal, Soni & Rambhatla, ICML 2024, §4.4 and A.8.3): how far the decoder's local linear part
is from the nearest orthogonal matrix, through the three factors of its SVD.

M_D, the local linear part of the decoder at a held-out point, is the decoder Jacobian J_i = ∂Dec(μ_i)/∂μ_i
(D × d, data space × latents): the first-order term of the paper's eq. (8); for its one-nonlinearity local
decoder tanh(M_D ε) the Jacobian at ε = 0 is M_D itself. Taking the Jacobian makes the score deterministic and
costs nothing beyond DtO's Gram matrices.

The nearest orthogonal matrix (columns orthonormal, nearest in Frobenius norm) is the orthogonal polar factor

    Q = M (MᵀM)^{-1/2} = U Vᵀ          (M = U Σ Vᵀ, thin SVD; M of full column rank).

The paper's Proposition 7 prints Q = M (MᵀM)^{+1/2}, but its own derivation ends at M = Q (I + Λ) with
(I + Λ) = (MᵀM)^{1/2}, hence Q = M (MᵀM)^{-1/2}; the printed M (MᵀM)^{1/2} = U Σ² Vᵀ has column norms σ²,
not 1, so the exponent −1/2 is used here.

Q's factors in the form of the paper's Lemma 4 (a matrix with orthogonal columns has V = I, Σ = the column
norms and U = its normalised columns) are V̂ = I, Σ̂ = I and Û = Q. The SVD of M fixes its columns' order
and signs only up to a signed permutation; they are fixed here as the ones that bring V closest to I (the
signed permutation P(V) nearest to V, DtO's assignment; for an orthogonal V it is nearest in L1 and in
Frobenius norm alike). Per point, squared Frobenius distances as the paper's definitions:

    d_V = ‖V P(V)ᵀ − I‖_F² = ‖V − P(V)‖_F²        (DtO's per-point distance, squared)
    d_Σ = ‖Σ − I‖_F² = Σ_j (σ_j − 1)²
    d_U = ‖U P(V)ᵀ − Q‖_F²                         (= d_V exactly: Uᵀ U = I and Q = U Vᵀ)

d_U adds nothing that d_V does not say: with the exact polar factor the two distances coincide (the
paper's code took Û from a fresh SVD of Q, whose singular values are all 1, so its left factor there is
arbitrary). It is stored anyway so that the paper's three-term mean can be formed. d_Σ depends on the
scale of the decoder (the data dimension, the likelihood): it measures the distance to an orthonormal
matrix, not only to orthogonal columns.

Per restart, each distance is the mean over the held-out points, un-normalised; `od_score` is the mean of
the three. The paper divides each distance by its maximum over the models compared before averaging; that
needs every restart of a study and is done in the analysis layer (`analysis.odscore`).

Like DtO, V is not unique where singular values coincide (passive latents the decoder ignores: σ ≈ 0).
All d latents are used, as the paper's M_D has a column per latent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from workers.metrics.dto import check_gram, decoder_gram, nearest_signed_permutation

if TYPE_CHECKING:
    import torch

COLUMNS = ("od_u", "od_sigma", "od_v", "od_score")


def od_distances_from_gram(G: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-point (d_U, d_Σ, d_V), each (N,) float64, from Gram matrices G = JᵀJ (N, d, d).

    V and σ² are the eigenvectors and eigenvalues of G (float64; eigenvalues below 0 from rounding are
    clipped). d_U is returned through its identity with d_V (module docstring); `od_distances_from_jacobians`
    computes it from U and Q explicitly.
    """
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 3 or G.shape[1] != G.shape[2]:
        raise ValueError(f"Gram matrices must be (N, d, d), got shape {G.shape}")
    check_gram(G)
    lam, V = np.linalg.eigh(G)
    sigma = np.sqrt(np.clip(lam, 0.0, None))
    d_v = ((V - nearest_signed_permutation(V)) ** 2).sum(axis=(1, 2))
    d_sigma = ((sigma - 1.0) ** 2).sum(axis=1)
    return d_v.copy(), d_sigma, d_v


def od_distances_from_jacobians(J: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-point (d_U, d_Σ, d_V), each (N,), from Jacobians J (N, D, d) of full column rank, by the
    definitions: thin SVD J = U Σ Vᵀ, columns reordered and re-signed by S = P(V)ᵀ, polar factor
    Q = J (JᵀJ)^{-1/2} formed explicitly. The reference `od_distances_from_gram` is tested against."""
    J = np.asarray(J, dtype=np.float64)
    if J.ndim != 3:
        raise ValueError(f"Jacobians must be (N, D, d), got shape {J.shape}")
    U, s, Vh = np.linalg.svd(J, full_matrices=False)
    V = np.swapaxes(Vh, 1, 2)
    S = np.swapaxes(nearest_signed_permutation(V), 1, 2)
    d = J.shape[2]
    G = np.swapaxes(J, 1, 2) @ J
    lam, W = np.linalg.eigh(G)
    inv_sqrt = (W / np.sqrt(lam)[:, None, :]) @ np.swapaxes(W, 1, 2)  # (JᵀJ)^{-1/2}
    Q = J @ inv_sqrt
    d_u = ((U @ S - Q) ** 2).sum(axis=(1, 2))
    d_sigma = ((s - 1.0) ** 2).sum(axis=1)
    d_v = ((V @ S - np.eye(d)) ** 2).sum(axis=(1, 2))
    return d_u, d_sigma, d_v


def od_score_from_gram(G: np.ndarray) -> dict[str, float]:
    """{"od_u", "od_sigma", "od_v", "od_score"}: the three distances' means over points and their mean."""
    d_u, d_sigma, d_v = od_distances_from_gram(G)
    out = {"od_u": float(d_u.mean()), "od_sigma": float(d_sigma.mean()), "od_v": float(d_v.mean())}
    out["od_score"] = (out["od_u"] + out["od_sigma"] + out["od_v"]) / 3.0
    return out


def od_score(decoder: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor) -> dict[str, float]:
    """OD-Score columns of a torch decoder (N, d) -> (N, *obs) at the posterior means `mu` (N, d) tensor."""

    return od_score_from_gram(decoder_gram(decoder, mu))
