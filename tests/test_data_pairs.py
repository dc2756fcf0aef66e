"""Pair samplers (workers.data.pairs): known answers on a grid and on the continuous square; exact partners."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workers.data import DataError, GridDataset
from workers.data.pairs import (
    PairFeed,
    PairSampler,
    batch_shuffles,
    grid_transition_pmf,
    laplace_scale,
    laplace_transition,
    resample_factors,
)
from workers.data.synthetic import SynthLin
from workers.models.objectives import OBJECTIVES
from workers.seed_streams import seed_generator


class TinyGrid(GridDataset):
    """A 3 x 10 x 6 grid (shape categorical); observation = the factor classes as floats, plus their index."""

    name = "tiny_grid"
    factor_names = ["shape", "a", "b"]
    factor_sizes: list[int | None] = [3, 10, 6]
    observation_shape = (4,)

    def observations_at(self, indices: np.ndarray) -> np.ndarray:
        idx = np.asarray(indices)
        return np.concatenate([self.index_to_factors(idx), idx[:, None]], 1).astype(np.float32)


def _gen(seed: int = 0) -> torch.Generator:
    return seed_generator(seed, "pair")


def test_grid_transition_is_the_truncated_laplace_with_at_least_one_change() -> None:
    ds, rate, n = TinyGrid(), 1.0, 60_000
    start = torch.tensor([[1, 4, 2]]).repeat(n, 1)
    out = laplace_transition(start, ds.factor_sizes, ds.factor_names, rate, _gen())
    assert out.dtype == torch.int64
    assert torch.equal(out[:, 0], start[:, 0])  # the categorical factor never moves
    assert bool((out != start).any(1).all())  # every pair changes
    assert int(out[:, 1].min()) >= 0 and int(out[:, 1].max()) < 10 and int(out[:, 2].max()) < 6
    # exact marginal of factor a (start 4, 10 classes): its Laplace pmf, plus the "nothing moved" fix-up
    # (both stayed, then a or b chosen with probability 1/2 and drawn without its start)
    pa = grid_transition_pmf(torch.tensor([4]), 10, laplace_scale(10, rate))[0]
    pb = grid_transition_pmf(torch.tensor([2]), 6, laplace_scale(6, rate))[0]
    both = pa[4] * pb[2]
    qa = grid_transition_pmf(torch.tensor([4]), 10, laplace_scale(10, rate), exclude_start=True)[0]
    expected = pa.clone()
    expected[4] = pa[4] - 0.5 * both
    expected += 0.5 * both * qa
    observed = torch.bincount(out[:, 1], minlength=10).double() / n
    assert abs(float(expected.sum()) - 1.0) < 1e-12
    assert float((observed - expected).abs().max()) < 0.01
    # scale log(G)/rate: p(x) ∝ exp(-|x - 4| rate / log 10)
    assert math.isclose(float(pa[5] / pa[4]), math.exp(-rate / math.log(10)), rel_tol=1e-9)


def test_continuous_transition_is_a_laplace_truncated_to_the_unit_interval() -> None:
    n, rate = 40_000, 2.0
    start = torch.full((n, 2), 0.9, dtype=torch.float64)
    out = laplace_transition(start, [None, None], ["v0", "v1"], rate, _gen(1))
    assert out.dtype == torch.float64 and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    b = laplace_scale(None, rate)
    assert math.isclose(b, math.log(32) / (31 * rate))

    def cdf(x: np.ndarray) -> np.ndarray:  # Laplace(0.9, b) CDF
        z = (x - 0.9) / b
        return np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0)), 1 - 0.5 * np.exp(-np.maximum(z, 0)))

    x = np.sort(out[:, 0].numpy())
    truncated = (cdf(x) - cdf(np.array(0.0))) / (cdf(np.array(1.0)) - cdf(np.array(0.0)))
    ks = np.max(np.abs(truncated - np.arange(1, n + 1) / n))
    assert ks < 0.01


def test_ada_gvae_pairs_resample_one_or_k_factors_as_disentanglement_lib() -> None:
    n, sizes = 40_000, [5, 6, 7, 8, 9]
    start = torch.zeros(n, 5, dtype=torch.int64)
    out, changed = resample_factors(start, sizes, -1, _gen(2))
    assert torch.equal(out[~changed], start[~changed])  # only the chosen factors move
    counts = torch.bincount(changed.sum(1), minlength=6).double() / n
    # k' uniform on 1..4; then 1 or k' changes with probability 1/2: P(1) = 1/2 + 1/8, P(2..4) = 1/8
    torch.testing.assert_close(counts, torch.tensor([0, 0.625, 0.125, 0.125, 0.125, 0], dtype=torch.float64),
                               atol=0.01, rtol=0)
    # a redrawn factor is uniform over its classes (it may keep its value)
    redrawn = out[:, 4][changed[:, 4]]
    freq = torch.bincount(redrawn, minlength=9).double() / redrawn.numel()
    assert float((freq - 1 / 9).abs().max()) < 0.02
    _, fixed = resample_factors(start, sizes, 3, _gen(3))
    assert set(fixed.sum(1).tolist()) == {1, 3}
    cont, mask = resample_factors(torch.full((100, 2), 0.5, dtype=torch.float64), [None, None], -1, _gen(4))
    assert bool((mask.sum(1) == 1).all()) and float(cont.max()) < 1.0  # K = 2: k' = 1
    with pytest.raises(DataError, match="k must be"):
        resample_factors(start, sizes, 5, _gen())


def test_pcl_negatives_are_permutations_and_draws_are_seeded() -> None:
    s = batch_shuffles(7, 16, _gen(5))
    assert torch.equal(s.sort(1).values, torch.arange(16).expand(7, 16))
    assert torch.equal(s, batch_shuffles(7, 16, _gen(5)))
    assert not torch.equal(s, batch_shuffles(7, 16, _gen(6)))


@pytest.mark.parametrize("model", ["slowvae", "ada_gvae", "pcl"])
@pytest.mark.parametrize("data", ["grid", "synth_lin"])
def test_partners_are_the_exact_observations_of_the_sampled_factors(model: str, data: str) -> None:
    ds = TinyGrid() if data == "grid" else SynthLin(n=500)
    train = ds.split_indices("train")
    law = OBJECTIVES[model].pairs
    sampler = PairSampler(ds, law.transition, {"rate_data": 1.0, "k": -1.0}, shuffled_negatives=law.shuffled_negatives)
    store = None
    if data == "grid":
        every = torch.from_numpy(ds.observations_at(np.arange(len(ds))))
        store = lambda idx: every[idx]  # noqa: E731
    feed = PairFeed(sampler, train, torch.device("cpu"), store)
    positions = torch.randint(0, train.size, (2, 3, 8), generator=torch.Generator().manual_seed(0))
    chunk = feed.chunk(positions, [_gen(10), _gen(11)])
    for s, seed in enumerate((10, 11)):
        g = _gen(seed)
        first = torch.from_numpy(ds.factors_at(train[positions[s].reshape(-1).numpy()]))
        partner = sampler.partner(first, g)
        expected = torch.from_numpy(ds.observations(partner.numpy())).view(3, 8, -1)
        shuffles = batch_shuffles(3, 8, g)  # drawn after the partners, from the same stream
        for t in range(3):
            x2, shuffle = chunk.step(t)
            assert torch.equal(x2[s], expected[t])
            if model == "pcl":
                assert shuffle is not None and torch.equal(shuffle[s], shuffles[t])
            else:
                assert shuffle is None
        if data == "grid":  # exact on the grid: the stored point of the partner's classes
            assert torch.equal(expected[..., 3].reshape(-1).long(),
                               torch.from_numpy(ds.factors_to_index(partner.numpy())))


def test_a_dataset_without_factors_has_no_pairs() -> None:
    class NoFactors(TinyGrid):
        factor_names: list[str] = []
        factor_sizes: list[int | None] = []

    with pytest.raises(DataError, match="no ground-truth factors"):
        PairSampler(NoFactors(), "laplace", {})
