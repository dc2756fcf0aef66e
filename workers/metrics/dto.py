"""Distance to orthogonality (DtO, Rolínek et al. 2019 eq. 29; thesis §3.2.6) and the IMA contrast.

For each held-out point i, J_i = ∂Dec(μ_i)/∂μ_i (decoder likelihood mean in data space, shape D × d) with
SVD J_i = U_i Σ_i V_iᵀ, and

    DtO = mean_i ‖V_i − P(V_i)‖_F,   P(V) = the signed permutation matrix nearest to V in L1.

Why a linear assignment is exact: for a signed permutation P choosing entry (i, π(i)) of row i with sign
s_i, Σ|V − P| = Σ|V| + d − 2 Σ_i s_i V_{i,π(i)}, because |V_ij| ≤ 1 (V is orthogonal). The best sign is
s_i = sign(V_{i,π(i)}), so minimising the L1 distance is maximising Σ_i |V_{i,π(i)}| over permutations:
a linear assignment on |V|. `nearest_signed_permutation_milp` keeps the thesis's MILP (3.29) on OR-Tools
as the reference it is tested against.

V comes from the eigendecomposition of the small d × d Gram matrix JᵀJ = V Σ² Vᵀ in float64 (the
Jacobian itself is float32 from the model). This squares the condition number, but in float64 the error
of V is ~1e-16·σ_max²/(σ_i² − σ_j²), far below the float32 error already in J; tests/test_metrics_dto.py
checks it against a full SVD of J. Where singular values coincide V is not unique and DtO is not
defined by the paper either; passive latents ignored by the decoder do exactly that (σ = 0), which is
why `dto_active` restricts J to the active latents' columns.

c_ima (Gresele et al. 2021, the IMA contrast) = mean_i ½(Σ_j log ‖J_{:,j}‖² − log det JᵀJ) ≥ 0, zero
iff the columns of J are orthogonal; it needs no assignment and comes from the same Gram matrices.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

BRUTE_FORCE_MAX_D = 3  # enumerate all d! permutations up to here (vectorised; faster than a loop of scipy LSA calls)
_BRUTE_FORCE_CHUNK = 1 << 21  # batch rows × permutations × d per chunk of the brute-force search


# ---------------------------------------------------------------------------------------------------
# Nearest signed permutation
# ---------------------------------------------------------------------------------------------------

def nearest_signed_permutation(V: np.ndarray) -> np.ndarray:
    """Signed permutation matrices nearest to V in L1, batched: (..., d, d) -> (..., d, d) in {−1, 0, 1}.

    Exact for matrices with |V_ij| ≤ 1 (e.g. orthogonal V; see module docstring): a linear assignment
    maximising Σ|V_ij| over the selected entries, signs taken from V (sign 0 → +1). d ≤ 3 enumerates the
    d! permutations in one vectorised argmax; larger d runs scipy's `linear_sum_assignment` per matrix.
    Ties (probability zero for continuous V) go to the first maximiser found.
    """
    V = np.asarray(V, dtype=np.float64)
    if V.ndim < 2 or V.shape[-1] != V.shape[-2]:
        raise ValueError(f"nearest_signed_permutation: V must be (..., d, d), got shape {V.shape}")
    d = V.shape[-1]
    flat = V.reshape(-1, d, d)
    cols = _assignment_columns(np.abs(flat))  # (B, d): column chosen for each row
    rows = np.arange(d)
    picked = np.take_along_axis(flat, cols[:, :, None], axis=2)[:, :, 0]
    P = np.zeros_like(flat)
    P[np.arange(flat.shape[0])[:, None], rows[None, :], cols] = np.where(picked < 0, -1.0, 1.0)
    return P.reshape(V.shape)


def _assignment_columns(A: np.ndarray) -> np.ndarray:
    """(B, d, d) nonnegative -> (B, d) int: for each matrix the permutation maximising Σ_i A[i, π(i)]."""
    B, d, _ = A.shape
    if d <= BRUTE_FORCE_MAX_D:
        perms = _permutations(d)  # (P, d)
        out = np.empty((B, d), dtype=np.int64)
        rows = np.arange(d)
        step = max(1, _BRUTE_FORCE_CHUNK // (len(perms) * d))
        for s in range(0, B, step):
            scores = A[s : s + step][:, rows, perms].sum(axis=2)  # (b, P)
            out[s : s + step] = perms[scores.argmax(axis=1)]
        return out
    out = np.empty((B, d), dtype=np.int64)
    for b in range(B):
        _, out[b] = linear_sum_assignment(A[b], maximize=True)
    return out


@cache
def _permutations(d: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(d))), dtype=np.int64)


def nearest_signed_permutation_milp(V: np.ndarray) -> np.ndarray:
    """The thesis's MILP (3.29) on OR-Tools (SCIP) for one (d, d) matrix: the reference solver.

    min Σ D_ij  s.t.  ±((P⁺_ij − P⁻_ij) − V_ij) ≤ D_ij,  Σ_i (P⁺_ij + P⁻_ij) = 1 ∀j,  Σ_j (…) = 1 ∀i,
    P⁺, P⁻ binary, solved with a zero relative MIP gap. Returns P = P⁺ − P⁻. Slow (one solver per matrix);
    use it to check, not to measure.
    """
    from ortools.linear_solver import pywraplp

    V = np.asarray(V, dtype=np.float64)
    if V.ndim != 2 or V.shape[0] != V.shape[1]:
        raise ValueError(f"nearest_signed_permutation_milp: V must be (d, d), got shape {V.shape}")
    d = V.shape[0]
    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:
        raise RuntimeError("OR-Tools was built without SCIP; cannot solve the DtO MILP")
    pp = [[solver.BoolVar(f"p+{i},{j}") for j in range(d)] for i in range(d)]
    pm = [[solver.BoolVar(f"p-{i},{j}") for j in range(d)] for i in range(d)]
    dev = [[solver.NumVar(0.0, solver.infinity(), f"d{i},{j}") for j in range(d)] for i in range(d)]
    for i in range(d):
        for j in range(d):
            p = pp[i][j] - pm[i][j]
            solver.Add(p - float(V[i, j]) <= dev[i][j])
            solver.Add(float(V[i, j]) - p <= dev[i][j])
    for k in range(d):
        solver.Add(sum(pp[i][k] + pm[i][k] for i in range(d)) == 1)
        solver.Add(sum(pp[k][j] + pm[k][j] for j in range(d)) == 1)
    solver.Minimize(sum(dev[i][j] for i in range(d) for j in range(d)))
    params = pywraplp.MPSolverParameters()  # solve to optimality: SCIP's default 1e-4 relative gap
    params.SetDoubleParam(pywraplp.MPSolverParameters.RELATIVE_MIP_GAP, 0.0)  # returned worse P on 10/10,000
    status = solver.Solve(params)
    if status != pywraplp.Solver.OPTIMAL:
        raise RuntimeError(f"DtO MILP not solved to optimality (status {status})")
    return np.array([[pp[i][j].solution_value() - pm[i][j].solution_value() for j in range(d)]
                     for i in range(d)]).round()


def distance_to_signed_permutation(V: np.ndarray) -> np.ndarray:
    """‖V − P(V)‖_F per matrix: (..., d, d) -> (...)."""
    V = np.asarray(V, dtype=np.float64)
    return np.linalg.norm(V - nearest_signed_permutation(V), axis=(-2, -1))


# ---------------------------------------------------------------------------------------------------
# From Jacobians (arrays) to DtO / c_ima
# ---------------------------------------------------------------------------------------------------

def gram_from_jacobians(J: np.ndarray) -> np.ndarray:
    """(N, D, d) Jacobians -> (N, d, d) float64 Gram matrices JᵀJ."""
    J = np.asarray(J, dtype=np.float64)
    if J.ndim != 3:
        raise ValueError(f"Jacobians must be (N, D, d), got shape {J.shape}")
    return np.einsum("nki,nkj->nij", J, J)


def dto_from_gram(G: np.ndarray) -> float:
    """DtO from (N, d, d) Gram matrices JᵀJ: mean over points of ‖V − P(V)‖_F, V the eigenvectors."""
    G = np.asarray(G, dtype=np.float64)
    _, V = np.linalg.eigh(G)  # columns of V: right singular vectors of J (order/sign irrelevant)
    return float(distance_to_signed_permutation(V).mean())


def dto_from_jacobians(J: np.ndarray) -> float:
    """DtO (eq. 29) of Jacobians J (N, D, d) (rows: data dims, columns: latents): a float ≥ 0."""
    return dto_from_gram(gram_from_jacobians(J))


def c_ima_from_gram(G: np.ndarray) -> float | None:
    """IMA contrast mean_i ½(Σ_j log G_jj − log det G) ≥ 0 from (N, d, d) Gram matrices.

    None when some Gram matrix is singular (a latent the decoder ignores, or dependent columns): the
    contrast is then infinite/undefined; pass only the active latents' columns to avoid that.
    """
    G = np.asarray(G, dtype=np.float64)
    diag = np.diagonal(G, axis1=1, axis2=2)
    sign, logdet = np.linalg.slogdet(G)
    if np.any(sign <= 0) or np.any(diag <= 0):
        return None
    value = 0.5 * (np.log(diag).sum(axis=1) - logdet)
    return float(np.maximum(value, 0.0).mean())  # Hadamard: ≥ 0 up to rounding


# ---------------------------------------------------------------------------------------------------
# From a torch decoder
# ---------------------------------------------------------------------------------------------------

# Floats a chunk of decoder_gram's forward-mode pass may hold in one tensor. On a CPU the chunk is sized by the
# decoder's largest per-point tensor, so that a conv decoder's wide hidden maps stay small (bench/metrics.py
# part 6, 2 cores: disentanglement_lib's conv decoder 2.3x faster than chunks sized by its output, the paper's
# dSprites MLP 1.1x). On CUDA by the output, with a budget 4x larger, for the batch width a GPU wants.
CPU_MAX_ELEMENTS = 1 << 22
CUDA_MAX_ELEMENTS = 1 << 24


def largest_per_point(decoder: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor) -> int:
    """Floats per point of the largest tensor `decoder` makes (its hidden maps or its output), from the tensors
    autograd keeps on one and on two points of `mu` (N >= 2, d): what grows with the points is per point."""
    sizes: list[list[int]] = []
    for k in (1, 2):
        kept: list[int] = []

        def pack(t: torch.Tensor, kept: list[int] = kept) -> torch.Tensor:
            kept.append(t.numel())
            return t

        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = decoder(mu[:k].detach().clone().requires_grad_(True))
        sizes.append([*kept, out.numel()])
    if len(sizes[0]) != len(sizes[1]):  # not the same graph on one and two points: go by the output
        return sizes[0][-1]
    return max(b - a for a, b in zip(*sizes, strict=True))


def decoder_gram(
    decoder: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, *, max_elements: int | None = None
) -> np.ndarray:
    """Gram matrices JᵀJ (N, d, d) float64 of the decoder Jacobians at the N points `mu` (N, d).

    Forward mode: one batched Jacobian-vector product per latent direction, vmapped over the d directions
    (torch.func), in chunks of points so that d·n·(floats per point) stays below `max_elements` (default
    CPU_MAX_ELEMENTS, per point = `largest_per_point`; on CUDA CUDA_MAX_ELEMENTS, per point = the output's).
    The decoder must act on rows independently (eval mode, no batch statistics) — true for every model in
    workers.models.
    """
    from torch.func import jvp, vmap

    if mu.ndim != 2:
        raise ValueError(f"mu must be (N, d), got shape {tuple(mu.shape)}")
    n, d = mu.shape
    if mu.device.type == "cuda" or n < 2:
        with torch.no_grad():
            per_point = int(np.prod(decoder(mu[:1]).shape[1:]))
        budget = CUDA_MAX_ELEMENTS if mu.device.type == "cuda" else CPU_MAX_ELEMENTS
    else:
        per_point, budget = largest_per_point(decoder, mu), CPU_MAX_ELEMENTS
    chunk = max(1, (budget if max_elements is None else max_elements) // max(1, d * per_point))
    grams = []
    eye = torch.eye(d, dtype=mu.dtype, device=mu.device)
    with torch.no_grad():
        for s in range(0, n, chunk):
            z = mu[s : s + chunk]
            tangents = eye[:, None, :].expand(d, z.shape[0], d)

            def column(t: torch.Tensor, z: torch.Tensor = z) -> torch.Tensor:
                return jvp(decoder, (z,), (t,))[1]

            cols = vmap(column)(tangents)  # (d, n, *obs)
            J = cols.reshape(d, z.shape[0], -1).to(torch.float64)
            grams.append(torch.einsum("ink,jnk->nij", J, J).cpu().numpy())
    return np.concatenate(grams, axis=0)


def jacobian_metrics(
    decoder: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    *,
    active: np.ndarray | torch.Tensor | None = None,
) -> dict[str, Any]:
    """DtO over all latents, DtO over the active ones and c_ima, from one pass of decoder Jacobians.

    Args:
        decoder: torch callable (N, d) -> (N, *obs), the likelihood mean in data space.
        mu: (N, d) posterior means of held-out points (where the Jacobians are taken).
        active: (d,) bool mask of active latents, or None (then `dto_active` = `dto`).
    Returns:
        {"dto", "dto_active", "c_ima"}; `dto_active` is None when no latent is active; `c_ima` is taken
        over all latents, like `dto` (so its definition does not change with the active set between
        checkpoints), and is None when some Gram matrix is singular (a latent the decoder ignores exactly).
    """
    return gram_metrics(decoder_gram(decoder, mu), active=active)


def gram_metrics(G: np.ndarray, *, active: np.ndarray | torch.Tensor | None = None) -> dict[str, Any]:
    """`jacobian_metrics` from Gram matrices JᵀJ (N, d, d) already computed (see `decoder_gram`)."""
    check_gram(G)
    d = G.shape[1]
    mask = np.ones(d, dtype=bool) if active is None else np.asarray(active, dtype=bool).reshape(-1)
    if mask.shape != (d,):
        raise ValueError(f"active must be a ({d},) bool mask, got shape {mask.shape}")
    G_act = G[:, mask][:, :, mask]
    return {
        "dto": dto_from_gram(G),
        "dto_active": dto_from_gram(G_act) if mask.any() else None,
        "c_ima": c_ima_from_gram(G),
    }


def check_gram(G: np.ndarray) -> None:
    """Raise ValueError when Gram matrices hold NaN or inf: the Jacobian metrics are undefined then."""
    if not np.all(np.isfinite(G)):
        raise ValueError("decoder Jacobians contain NaN or inf (a diverged model?); Jacobian metrics are undefined")


def dto(
    decoder: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    *,
    active: np.ndarray | torch.Tensor | None = None,
) -> dict[str, Any]:
    """{"dto", "dto_active"} of a decoder at the points `mu` (N, d); see `jacobian_metrics`."""
    out = jacobian_metrics(decoder, mu, active=active)
    return {"dto": out["dto"], "dto_active": out["dto_active"]}
