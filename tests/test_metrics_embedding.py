"""Aligned, linearly mixed and polar embeddings (thesis §4.3.6): known answers by construction, the rule, the
registry entry."""

import numpy as np
import pytest
import torch
from metrics_toydata import ToyGrid, ToySeedModel, rotation

from workers.data.synthetic import SynthLin
from workers.metrics import embedding as E
from workers.metrics.embedding import classify_grid, classify_pair, embedding_scores, pair_grid
from workers.metrics.evaluate import evaluate_checkpoint

CFG = {"n_eval": 200, "n_train_supervised": 100, "n_test_supervised": 100, "n_jobs": 1}
COLUMNS = E.SCORE_COLUMNS


def _grid(ni: int = 8, nj: int = 10) -> np.ndarray:
    """A factor grid (ni·nj, 2) over [0, 1]², factor 0 slowest."""
    return pair_grid(np.zeros(2), 0, 1, np.linspace(0, 1, ni), np.linspace(0, 1, nj))


def _rotated(grid: np.ndarray, d: int = 6, seed: int = 0) -> np.ndarray:
    """R · (f_i, f_j, constants...) for a random d × d rotation R: cartesian after alignment."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return np.column_stack([grid, np.tile(rng.normal(size=d - 2), (len(grid), 1))]) @ q.T


def _polar(grid: np.ndarray, a: float = 0.5, span: float = 1.5 * np.pi, d: int = 5) -> np.ndarray:
    """(r cos θ, r sin θ, constants) with r = a + f_i, θ = span · f_j."""
    r, t = a + grid[:, 0], span * grid[:, 1]
    return np.column_stack([r * np.cos(t), r * np.sin(t), np.full((len(grid), d - 2), 0.7)])


def test_a_random_rotation_of_the_factors_is_linearly_mixed() -> None:
    g = _grid()
    for seed in range(3):
        ev = classify_grid(g, _rotated(g, seed=seed))
        assert ev["label"] == E.MIXED and ev["cartesian_residual"] == pytest.approx(0.0, abs=1e-12)
        assert ev["plane_fraction"] == pytest.approx(1.0) and ev["polar_residual"] > 0.3
    # a per-factor reparametrisation (tanh, square) keeps the iso-lines straight: still exactly cartesian
    warped = np.column_stack([np.tanh(3 * g[:, 0] - 1), g[:, 1] ** 2]) @ rotation(2, 0, 1, 30.0)
    assert classify_grid(g, warped)["cartesian_residual"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("a", "span"), [(0.5, 1.5 * np.pi), (0.2, 1.8 * np.pi), (1.0, np.pi), (1.0, np.pi / 2)])
def test_radius_and_angle_of_two_factors_is_polar(a: float, span: float) -> None:
    g = _grid()
    ev = classify_grid(g, _polar(g, a, span))
    assert ev["label"] == "polar" and ev["radius_factor"] == 0
    assert ev["polar_residual"] == pytest.approx(0.0, abs=1e-9) and ev["cartesian_residual"] > 0.1
    swapped = classify_grid(g[:, ::-1], _polar(g, a, span))  # the other factor order: found as radius 1
    assert swapped["label"] == "polar" and swapped["radius_factor"] == 1
    noisy = _polar(g, a, span) + np.random.default_rng(1).normal(0, 0.01, (len(g), 5))
    assert classify_grid(g, noisy)["label"] == "polar"


def test_a_slightly_bent_grid_is_cartesian_by_the_margin() -> None:
    g = _grid()
    ev = classify_grid(g, _polar(g, a=1.0, span=0.5))  # a 29° sector: polar fits, but bends too little
    assert ev["polar_residual"] == pytest.approx(0.0, abs=1e-9)
    assert ev["cartesian_residual"] - ev["polar_residual"] < E.MARGIN and ev["label"] != E.POLAR


def _turn(g: np.ndarray, r0: float, r1: float, span: float) -> np.ndarray:
    """Radius r0..r1 over factor 0 and angle 0..span over factor 1, in latents 0 and 1."""
    r, t = r0 + (r1 - r0) * g[:, 0], span * g[:, 1]
    return np.column_stack([r * np.cos(t), r * np.sin(t)])


def _rotate(codes: np.ndarray, degrees: float) -> np.ndarray:
    return codes @ rotation(codes.shape[1], 0, 1, degrees)


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_three_labels_on_known_embeddings(noise: float) -> None:
    """The calibration cases of the module docstring (16 × 16 grids), noise-free and with Gaussian noise of
    2% of the codes' spread."""
    g = _grid(16, 16)
    hue = 2 * np.pi * g[:, 0] * 15 / 16  # a cyclic factor: 16 hues around the circle
    cases = {
        "axis-aligned": (g * [1.0, 3.0], E.ALIGNED),
        "rotated 10°": (_rotate(g, 10.0), E.ALIGNED),
        "rotated 30°": (_rotate(g, 30.0), E.MIXED),
        "45° mix": (_rotate(g, 45.0), E.MIXED),
        "full turn": (_turn(g, 0.5, 1.5, 2 * np.pi * 15 / 16), E.POLAR),
        "half turn": (_turn(g, 1.0, 2.0, np.pi), E.POLAR),
        "quarter turn": (_turn(g, 1.0, 2.0, np.pi / 2), E.POLAR),
        "thin annulus, full turn": (_turn(g, 0.85, 1.15, 2 * np.pi * 15 / 16), E.POLAR),
        "thin annulus, quarter turn": (_turn(g, 0.85, 1.15, np.pi / 2), E.POLAR),
        "hue on a circle, orientation in a third latent": (np.column_stack([np.cos(hue), np.sin(hue), g[:, 1]]),
                                                          E.ALIGNED),
        "the same, orientation 3x wider": (np.column_stack([np.cos(hue), np.sin(hue), 3 * g[:, 1]]), E.ALIGNED),
    }
    rng = np.random.default_rng(0)
    for name, (codes, label) in cases.items():
        noisy = codes + rng.normal(0, noise, codes.shape) * codes.std()
        ev = classify_grid(g, noisy)
        assert ev["label"] == label, (name, ev)
    aligned = classify_grid(g, g * [1.0, 3.0])["axis_purity"]
    mixed = classify_grid(g, _rotate(g, 45.0))["axis_purity"]
    assert aligned == pytest.approx(1.0) and mixed == pytest.approx(0.5)
    for degrees in (10.0, 20.0, 30.0):  # a rotated aligned pair: purity cos²θ
        assert classify_grid(g, _rotate(g, degrees))["axis_purity"] == pytest.approx(np.cos(np.radians(degrees)) ** 2)


def test_noise_is_labelled_by_the_rule() -> None:
    g = _grid(6, 7)
    rng = np.random.default_rng(0)
    for _ in range(5):
        ev = classify_grid(g, rng.normal(size=(len(g), 4)))
        polar = (ev["polar_residual"] <= E.POLAR_MAX_RESIDUAL and ev["cartesian_residual"] - ev["polar_residual"]
                 >= E.MARGIN and E.MIN_SHARE <= ev["radial_share"] <= 1 - E.MIN_SHARE)
        expected = E.POLAR if polar else E.ALIGNED if ev["axis_purity"] >= E.ALIGNED_MIN_PURITY else E.MIXED
        assert ev["label"] == expected == E.MIXED
        assert ev["cartesian_residual"] > 0.5  # no straight-line structure: the evidence says so


def test_labels_and_residuals_do_not_depend_on_latent_order_or_scale() -> None:
    g = _grid()
    rng = np.random.default_rng(3)
    for codes in (_polar(g), _rotated(g, d=5), _polar(g) + rng.normal(0, 0.01, (len(g), 5))):
        base = classify_grid(g, codes)
        perm = rng.permutation(codes.shape[1])
        same = classify_grid(g, 7.0 * codes[:, perm])  # permuted, common scale: identical numbers
        assert same["label"] == base["label"]
        for k in ("cartesian_residual", "polar_residual", "radial_share", "axis_purity"):
            assert same[k] == pytest.approx(base[k], abs=1e-9)
    # each latent rescaled on its own (the pair varies in two latents): the same answers
    for codes in (_polar(g), _rotated(g, d=2)):
        base = classify_grid(g, codes)
        scaled = classify_grid(g, codes * rng.uniform(0.2, 5.0, codes.shape[1]))
        assert scaled["label"] == base["label"]
        assert scaled["cartesian_residual"] == pytest.approx(base["cartesian_residual"], abs=1e-9)
        assert scaled["polar_residual"] == pytest.approx(base["polar_residual"], abs=1e-9)


def test_degenerate_and_invalid_grids() -> None:
    g = _grid(3, 4)
    flat = classify_grid(g, np.ones((len(g), 3)))
    assert flat["degenerate"] and flat["label"] == E.ALIGNED and flat["axis_purity"] == 1.0
    one = classify_grid(g, np.column_stack([g[:, 0], np.zeros(len(g))]))  # the second factor is ignored
    assert one["label"] == E.ALIGNED and one["cartesian_residual"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=">= 3 values"):
        classify_grid(_grid(2, 5), np.zeros((10, 2)))
    with pytest.raises(ValueError, match="not a full grid"):
        classify_grid(g[:-1], np.zeros((len(g) - 1, 2)))
    with pytest.raises(ValueError, match="NaN"):
        classify_grid(g, np.full((len(g), 2), np.nan))


def test_restart_columns_average_over_base_points_and_keep_the_pair_order() -> None:
    g = _grid(5, 6)
    out = embedding_scores({(0, 1): [(g, _polar(g)), (g, _polar(g, a=0.3))], (0, 2): (g, _rotated(g)),
                            (1, 2): [(g, _rotated(g, seed=1))]})
    assert out["polar_pairs"] == 1 and out["polar_fraction"] == pytest.approx(1 / 3)
    assert (out["aligned_pairs"], out["mixed_pairs"], out["mixed_fraction"]) == (0, 2, pytest.approx(2 / 3))
    assert [p["label"] for p in out["pairs"].values()] == [E.POLAR, E.MIXED, E.MIXED]
    per = out["embedding_per_pair"]
    assert len(per) == 3 and per[0] < -0.1 and per[1] > 0.1 and per[2] > 0.1
    assert out["embedding_residual_cartesian"] == pytest.approx(np.mean([p["cartesian_residual"]
                                                                          for p in out["pairs"].values()]))
    assert classify_pair([(g, _polar(g))])["label"] == classify_pair((g, _polar(g)))["label"] == "polar"
    assert embedding_scores({})["polar_pairs"] is None and embedding_scores({})["aligned_fraction"] is None


def test_grid_values_and_pairs_are_capped() -> None:
    levels = E.factor_levels([3, 2, 40, None, None], ranges={3: (0.0, 1.0)})
    assert sorted(levels) == [0, 2, 3]  # two classes: no grid; continuous without a range: skipped
    assert levels[0].tolist() == [0, 1, 2] and len(levels[2]) == E.MAX_LEVELS and levels[2][-1] == 39
    assert levels[3].tolist() == pytest.approx(np.linspace(0, 1, E.MAX_LEVELS))
    pairs = E.factor_pairs(dict.fromkeys(range(8)))  # 28 pairs of 8 factors: the first 15 in lexicographic order
    assert len(pairs) == E.MAX_PAIRS == 15 and pairs[:8] == [(0, k) for k in range(1, 8)] + [(1, 2)]
    assert pairs == sorted(pairs)


# ------------------------------------------------------------------------------------------------ registry

class PolarToyModel:
    """A SeedModel over ToyGrid (sizes (4, 6, 3)): factors 0 and 1 as radius and angle of latents 0, 1
    (a full turn over factor 1's classes), factor 2 alone in latent 2."""

    posterior = "diag"
    latent_dim = 3

    def __init__(self, data: ToyGrid):
        self.unmix = torch.tensor(data.Q.T @ np.diag(data.factor_sizes), dtype=torch.float64)
        self.turn = 2 * np.pi / data.factor_sizes[1]

    def encode(self, x):
        f = x.double() @ self.unmix
        r, t = 1.0 + f[:, 0], self.turn * f[:, 1]
        mu = torch.stack([r * torch.cos(t), r * torch.sin(t), 10.0 * f[:, 2]], dim=1).float()
        return mu, {"logvar": torch.full_like(mu, np.log(0.01))}


class LinearSynthModel:
    """A SeedModel over synth_lin: mu = mix(v) for the exact factors v = pinv(A) x (polar or cartesian)."""

    posterior = "diag"
    latent_dim = 2

    def __init__(self, data: SynthLin, polar: bool):
        self.pinv = torch.tensor(np.linalg.pinv(data.matrix).T, dtype=torch.float64)
        self.polar = polar

    def encode(self, x):
        v = x.double() @ self.pinv
        if self.polar:
            r, t = 0.5 + v[:, 0], 1.5 * np.pi * v[:, 1]
            v = torch.stack([r * torch.cos(t), r * torch.sin(t)], dim=1)
        mu = v.float()
        return mu, {"logvar": torch.full_like(mu, np.log(0.01))}


def test_registry_entry_on_toy_models() -> None:
    data = ToyGrid(sizes=(3, 4, 5), n=2000)
    rot = evaluate_checkpoint(ToySeedModel(data, mix=rotation(3, 0, 1, 45.0)), data, metrics=["embedding"],
                              eval_cfg=CFG, seed=2)
    assert set(rot) == set(COLUMNS)
    assert rot["polar_pairs"] == 0 and rot["polar_fraction"] == 0.0 and len(rot["embedding_per_pair"]) == 3
    # factors 0 and 1 rotated by 45° in latents 0, 1: pairs (0, 2) and (1, 2) share no latent, (0, 1) is mixed
    assert (rot["aligned_pairs"], rot["mixed_pairs"]) == (2, 1)
    assert rot["embedding_residual_cartesian"] == pytest.approx(0.0, abs=1e-6)

    data = ToyGrid(sizes=(4, 6, 3), n=2000)
    polar = evaluate_checkpoint(PolarToyModel(data), data, metrics=["embedding"], eval_cfg=CFG, seed=2)
    assert polar["polar_pairs"] == 1 and polar["polar_fraction"] == pytest.approx(1 / 3)
    assert polar["embedding_per_pair"][0] < -E.MARGIN  # pair (0, 1) is the polar one; (0, 2), (1, 2) are not
    assert polar == evaluate_checkpoint(PolarToyModel(data), data, metrics=["embedding"], eval_cfg=CFG, seed=2)


def test_registry_entry_on_continuous_factors() -> None:
    data = SynthLin(n=2000)
    cart = evaluate_checkpoint(LinearSynthModel(data, polar=False), data, metrics=["embedding"], eval_cfg=CFG,
                               seed=0)
    polar = evaluate_checkpoint(LinearSynthModel(data, polar=True), data, metrics=["embedding"], eval_cfg=CFG,
                                seed=0)
    assert cart["polar_pairs"] == 0 and len(cart["embedding_per_pair"]) == 1  # one pair, 16 × 16 grid
    assert cart["aligned_pairs"] == 1 and cart["embedding_axis_purity"] > 0.99
    assert polar["polar_pairs"] == 1 and polar["polar_fraction"] == 1.0
    assert polar["embedding_residual_polar"] < 0.01 < 0.1 < polar["embedding_residual_cartesian"]
