"""Pairs of observations from any ground-truth dataset, for the paired models (SlowVAE, Ada-GVAE, PCL).

The first observation of a pair is a training point (the trainer's epoch order, as for every model); the
sampler draws the partner's factors from the first one's, and the partner is the dataset's observation of
those factors, exactly: a stored grid point (`factors_to_index`) on grid datasets (dSprites, Shapes3D), the
exact map `observations(factors)` elsewhere (the synthetic sets). Partners may be any point of the factor
space (on grids: any stored point, not only the training split), as in both references, which train on the
whole dataset.

Samplers (factors (n, K): int64 classes on a grid, float64 values of continuous factors in [0, 1]):

- `laplace_transition` — SlowVAE's natural transitions (Klindt et al. 2021; bethgelab/slow_disentanglement
  dataset.py `truncated_laplace`): each non-categorical factor moves independently, with probability
  p(x) ∝ exp(−|x − x₁|/b) over its grid classes x (a Laplace truncated to the grid), scale b = log(G)/rate
  for a factor of G classes; categorical factors ("shape") keep their value; a pair in which nothing moved
  moves one non-categorical factor drawn uniformly, from the same law without x₁. A continuous factor on
  [0, 1] moves by the Laplace truncated to [0, 1] with b = log(32)/(31·rate), the scale of a 32-class grid
  over [0, 1] (dSprites' positions; the reference has no continuous factor).
- `resample_factors` — Ada-GVAE's weak pairs (disentanglement_lib train_weak_lib.simple_dynamics): k' = k
  or, for k = −1, k' uniform on {1, …, K−1}; then 1 or k' factors (one of the two with probability ½), chosen
  uniformly without replacement, are redrawn from their marginal (uniform classes; U[0, 1]); a redrawn value
  may equal the old one, as in the reference.
- PCL (Hyvärinen & Morioka 2017, as bethgelab's --pcl runs it): positives are natural transitions
  (`laplace_transition`), negatives pair each partner with another pair's first observation, a uniform
  permutation of the batch (`batch_shuffles`).

Every draw comes from one CPU `torch.Generator` per seed (the trainer's "pair" stream) in fixed counts per
pair (independent of the values drawn), so a seed's pairs do not depend on its block and a resumed run
draws the same pairs as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .base import DataError, Dataset, GridDataset

CATEGORICAL_FACTORS = frozenset({"shape"})  # never moved by a natural transition (Klindt et al.'s `categorical`)
CONTINUOUS_GRID = 32  # a continuous factor's transition scale is that of a 32-class grid over [0, 1]
TRANSITIONS = ("laplace", "resample")


def laplace_scale(size: int | None, rate: float) -> float:
    """Transition scale b of a factor: log(G)/rate in classes (grid), log(32)/(31·rate) on [0, 1] (continuous)."""
    if size is None:
        return math.log(CONTINUOUS_GRID) / ((CONTINUOUS_GRID - 1) * rate)
    return math.log(size) / rate


def grid_transition_pmf(start: torch.Tensor, size: int, scale: float, exclude_start: bool = False) -> torch.Tensor:
    """(n,) classes -> (n, size) probabilities ∝ exp(−|x − start|/scale) over x = 0..size−1."""
    x = torch.arange(size, dtype=torch.float64)
    logits = -(x - start.unsqueeze(1).double()).abs() / scale
    if exclude_start:
        logits = logits.masked_fill(x == start.unsqueeze(1).double(), -math.inf)
    p = torch.softmax(logits, dim=1)
    return p


def _draw_from(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw of one class per row of p (n, G) with uniforms u (n,)."""
    cdf = p.cumsum(1)
    return torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).squeeze(1).clamp_max(p.shape[1] - 1)


def truncated_laplace(loc: torch.Tensor, scale: float, u: torch.Tensor, lo: float = 0.0,
                      hi: float = 1.0) -> torch.Tensor:
    """Inverse-CDF draw from Laplace(loc, scale) truncated to [lo, hi] with uniforms u (same shape), float64."""
    loc = loc.double()

    def cdf(x: float) -> torch.Tensor:
        z = (x - loc) / scale
        return torch.where(z < 0, 0.5 * torch.exp(z.clamp_max(0)), 1.0 - 0.5 * torch.exp(-z.clamp_min(0)))

    q = cdf(lo) + u.double() * (cdf(hi) - cdf(lo))
    below = loc + scale * torch.log(2.0 * q.clamp_min(1e-300))
    above = loc - scale * torch.log((2.0 * (1.0 - q)).clamp_min(1e-300))
    return torch.where(q < 0.5, below, above).clamp(lo, hi)


def laplace_transition(factors: torch.Tensor, sizes: list[int | None], names: list[str], rate: float,
                       gen: torch.Generator) -> torch.Tensor:
    """SlowVAE's partner factors (module docstring). factors (n, K) -> (n, K), same dtype."""
    n, K = factors.shape
    u = torch.rand(n, K, generator=gen, dtype=torch.float64)
    u_pick = torch.rand(n, generator=gen, dtype=torch.float64)
    u_fix = torch.rand(n, generator=gen, dtype=torch.float64)
    movable = [j for j in range(K) if names[j] not in CATEGORICAL_FACTORS and sizes[j] != 1]
    if not movable:
        raise DataError("pairs: every factor is categorical or constant; a transition cannot move any")
    out = factors.clone()
    for j in movable:
        b = laplace_scale(sizes[j], rate)
        if sizes[j] is None:
            out[:, j] = truncated_laplace(factors[:, j], b, u[:, j]).to(out.dtype)
        else:
            out[:, j] = _draw_from(grid_transition_pmf(factors[:, j], sizes[j], b), u[:, j])
    still = (out == factors).all(1)
    if bool(still.any()):  # at least one change: move one movable factor, without staying put
        rows = still.nonzero().squeeze(1)
        pick = torch.tensor(movable)[(u_pick[rows] * len(movable)).long().clamp_max(len(movable) - 1)]
        for j in movable:
            r = rows[pick == j]
            if r.numel() == 0:
                continue
            b = laplace_scale(sizes[j], rate)
            if sizes[j] is None:
                out[r, j] = truncated_laplace(factors[r, j], b, u_fix[r]).to(out.dtype)
            else:
                out[r, j] = _draw_from(grid_transition_pmf(factors[r, j], sizes[j], b, exclude_start=True),
                                       u_fix[r])
    return out


def resample_factors(factors: torch.Tensor, sizes: list[int | None], k: int, gen: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ada-GVAE's partner factors and the mask of redrawn factors (module docstring); (n, K) each."""
    n, K = factors.shape
    if k == 0 or k >= max(K, 2) or k < -1:
        raise DataError(f"pairs: k must be -1 (random) or in 1..{max(K - 1, 1)} for {K} factors, got {k}")
    u_k = torch.rand(n, generator=gen, dtype=torch.float64)
    u_coin = torch.rand(n, generator=gen, dtype=torch.float64)
    u_order = torch.rand(n, K, generator=gen, dtype=torch.float64)
    u_value = torch.rand(n, K, generator=gen, dtype=torch.float64)
    if k == -1:
        k_obs = 1 + (u_k * max(K - 1, 1)).long().clamp_max(max(K - 2, 0))
    else:
        k_obs = torch.full((n,), k, dtype=torch.long)
    n_changed = torch.where(u_coin < 0.5, torch.ones_like(k_obs), k_obs)
    rank = u_order.argsort(1).argsort(1)  # a uniform random order of the factors per row
    changed = rank < n_changed.unsqueeze(1)
    new = factors.clone()
    for j, size in enumerate(sizes):
        if size is None:
            new[:, j] = u_value[:, j].to(new.dtype)
        else:
            new[:, j] = (u_value[:, j] * size).long().clamp_max(size - 1).to(new.dtype)
    return torch.where(changed, new, factors), changed


def batch_shuffles(steps: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """(steps, batch) int64: a uniform permutation of the batch per step (PCL's negatives)."""
    return torch.rand(steps, batch, generator=gen).argsort(1)


class PairSampler:
    """The pairs of one paired objective on one dataset (its `PairLaw`, workers.models.objectives):
    `transition` laplace or resample, `shuffled_negatives` (PCL); `hparams`: the objective's hyperparameters
    (rate_data: the Laplace rate; k: factors resampled)."""

    def __init__(self, dataset: Dataset, transition: str, hparams: dict[str, float], *,
                 shuffled_negatives: bool = False):
        if transition not in TRANSITIONS:
            raise ValueError(f"pairs: unknown transition {transition!r}; allowed: {', '.join(TRANSITIONS)}")
        if dataset.num_factors == 0:
            raise DataError(f"pairs: dataset {dataset.name!r} has no ground-truth factors to pair on")
        self.dataset, self.kind = dataset, transition
        self.sizes = list(dataset.factor_sizes)
        self.names = list(dataset.factor_names)
        self.rate = float(hparams.get("rate_data", 1.0))
        self.k = int(hparams.get("k", -1))
        self.shuffle = shuffled_negatives

    def partner(self, factors: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Partner factors (n, K) of first-observation factors (n, K), drawn with `gen`."""
        if self.kind == "laplace":
            return laplace_transition(factors, self.sizes, self.names, self.rate, gen)
        return resample_factors(factors, self.sizes, self.k, gen)[0]


@dataclass
class PairChunk:
    """A chunk of steps' partners for S seeds: stored positions (S, k, B) on the device (grids) or rendered
    observations (S, k, B, *obs); PCL's shuffles (S, k, B) or None."""

    positions: torch.Tensor | None
    observations: torch.Tensor | None
    shuffles: torch.Tensor | None
    gather: Callable[[torch.Tensor], torch.Tensor] | None

    def step(self, t: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(partners (S, B, *obs), shuffle (S, B) or None) of step t of the chunk."""
        shuffle = None if self.shuffles is None else self.shuffles[:, t]
        if self.positions is not None:
            assert self.gather is not None
            return self.gather(self.positions[:, t]), shuffle
        assert self.observations is not None
        return self.observations[:, t], shuffle


class PairFeed:
    """Partners of the trainer's first observations, a chunk of steps at a time.

    train_indices: the stored index of each training position; gather_stored: stored indices (S, B) on the
    device -> observations (S, B, *obs) on the device (grid datasets: the partner store, every stored point
    on the device like the training rows); None renders partners with `observations(factors)` on the host.
    """

    def __init__(self, sampler: PairSampler, train_indices: np.ndarray, device: torch.device,
                 gather_stored: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.sampler, self.dataset = sampler, sampler.dataset
        self.train_indices = np.asarray(train_indices, dtype=np.int64)
        self.device = device
        self.grid = isinstance(self.dataset, GridDataset) and gather_stored is not None
        self.gather_stored = gather_stored

    def chunk(self, positions: torch.Tensor, gens: list[torch.Generator]) -> PairChunk:
        """positions (S, k, B) int64 training positions on the CPU; gens: each seed's pair generator."""
        S, k, B = positions.shape
        stored = self.train_indices[positions.numpy().reshape(S, -1)]  # (S, k*B)
        partners, shuffles = [], []
        for s in range(S):
            f = torch.from_numpy(np.ascontiguousarray(self.dataset.factors_at(stored[s])))
            partners.append(self.sampler.partner(f, gens[s]))
            if self.sampler.shuffle:
                shuffles.append(batch_shuffles(k, B, gens[s]))
        shuf = torch.stack(shuffles).to(self.device) if shuffles else None
        if self.grid:
            assert isinstance(self.dataset, GridDataset)
            idx = np.stack([self.dataset.factors_to_index(p.numpy()) for p in partners])
            pos = torch.from_numpy(idx).view(S, k, B).to(self.device)
            return PairChunk(pos, None, shuf, self.gather_stored)
        obs = self.dataset.observations(torch.cat(partners).numpy())
        x2 = torch.from_numpy(obs).view(S, k, B, *self.dataset.observation_shape).to(self.device)
        return PairChunk(None, x2, shuf, None)
