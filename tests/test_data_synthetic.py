"""synth_lin / synth_nonlin against answers known by construction, plus the shared interface (split, views)."""

from __future__ import annotations

import numpy as np
import pytest

from workers.data import DataError, load
from workers.data.synthetic import rotation_matrix


def test_synth_lin_is_a_stretch_then_a_45_degree_rotation_about_1_m1_1() -> None:
    ds = load("synth_lin", ratio=2.0, n=1000, data_seed=0)
    assert (ds.name, ds.factor_names, ds.factor_sizes, ds.discrete) == ("synth_lin", ["v0", "v1"],
                                                                          [None, None], [False, False])
    assert ds.observation_shape == (3,) and len(ds) == 1000 and ds.num_factors == 2
    r = rotation_matrix(np.array([1.0, -1.0, 1.0]), np.pi / 4)
    axis = np.array([1.0, -1.0, 1.0]) / np.sqrt(3)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    np.testing.assert_allclose(r @ axis, axis, atol=1e-12)  # the axis is fixed
    np.testing.assert_allclose(np.trace(r), 1 + 2 * np.cos(np.pi / 4), atol=1e-12)  # the angle is 45°
    e0 = np.array([1.0, 0.0, 0.0])
    cos_angle = (e0 - axis * axis[0]) @ (r @ e0 - axis * axis[0]) / (1 - axis[0] ** 2)
    np.testing.assert_allclose(cos_angle, np.cos(np.pi / 4), atol=1e-12)
    # x = R (2 v0, v1, 0): the corners of the square map exactly
    x = ds.observations(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.25]]))
    assert x.dtype == np.float32 and x.shape == (4, 3)
    np.testing.assert_allclose(x[0], 0.0, atol=1e-7)
    np.testing.assert_allclose(x[1], r @ [2.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(x[2], r @ [0.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(x[3], r @ [1.0, 0.25, 0.0], atol=1e-6)
    # the stored points lie on the rotated plane, and their factors are uniform on the unit square
    v = ds.factors_at(np.arange(len(ds)))
    assert v.dtype == np.float64 and v.min() >= 0 and v.max() <= 1
    np.testing.assert_allclose((r.T @ ds.observations_at(np.arange(len(ds))).T)[2], 0.0, atol=1e-6)


@pytest.mark.parametrize("ratio", [1.0, 1.2, 1.5])
def test_synth_lin_ratio_sets_the_singular_values(ratio: float) -> None:
    ds = load("synth_lin", ratio=ratio, n=10)
    np.testing.assert_allclose(np.linalg.svd(ds.matrix, compute_uv=False), sorted([ratio, 1.0])[::-1])


def test_synth_nonlin_is_a_fixed_tanh_mlp_from_data_seed_only() -> None:
    a = load("synth_nonlin", n=500, data_seed=3)
    np.random.seed(123)  # the global RNG (and hence any training seed) has no influence
    b = load("synth_nonlin", n=500, data_seed=3)
    c = load("synth_nonlin", n=500, data_seed=4)
    idx = np.arange(500)
    np.testing.assert_array_equal(a.observations_at(idx), b.observations_at(idx))
    assert not np.allclose(a.observations_at(idx), c.observations_at(idx))
    assert a.observation_shape == (6,) and a.observations_at(idx).shape == (500, 6)
    (w1, b1), (w2, b2) = a.layers
    assert w1.shape == (10, 2) and b1.shape == (10,) and w2.shape == (6, 10) and b2.shape == (6,)
    assert np.abs(w1).max() <= 1 / np.sqrt(2) and np.abs(w2).max() <= 1 / np.sqrt(10)
    v = np.array([[0.3, 0.7]])
    expected = w2 @ np.tanh(w1 @ v[0] + b1) + b2  # written out by hand
    np.testing.assert_allclose(a.observations(v)[0], expected, rtol=1e-6)
    # computed exactly for arbitrary factors, equal to the stored points at their factors
    np.testing.assert_allclose(a.observations(a.factors_at(idx)), a.observations_at(idx))
    # not affine: the midpoint of two images is not the image of the midpoint
    p, q = np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]])
    mid = a.observations((p + q) / 2)[0] - (a.observations(p)[0] + a.observations(q)[0]) / 2
    assert np.abs(mid).max() > 1e-2


def test_each_factor_changes_the_observation_and_equal_factors_give_equal_ones() -> None:
    for name in ("synth_lin", "synth_nonlin"):
        ds = load(name, n=10)
        f = ds.sample_factors(200, np.random.default_rng(0))
        assert f.shape == (200, 2) and f.dtype == np.float64
        np.testing.assert_array_equal(ds.observations(f), ds.observations(f.copy()))
        for k in range(2):
            g = f.copy()
            g[:, k] = np.clip(g[:, k] + 0.1, 0, 1.0) if k else 1.0 - g[:, k]
            moved = np.abs(ds.observations(g) - ds.observations(f)).max(axis=1)
            assert (moved[np.abs(g[:, k] - f[:, k]) > 1e-3] > 1e-4).all()


def test_split_is_a_fixed_disjoint_80_10_10_partition_set_by_data_seed() -> None:
    ds = load("synth_lin", n=1001, data_seed=0)
    parts = {p: ds.split_indices(p) for p in ("train", "eval", "test")}
    assert [len(parts[p]) for p in ("train", "eval", "test")] == [801, 100, 100]
    allidx = np.concatenate(list(parts.values()))
    np.testing.assert_array_equal(np.sort(allidx), np.arange(1001))
    assert all(p.dtype == np.int64 for p in parts.values())
    np.testing.assert_array_equal(load("synth_lin", n=1001, data_seed=0).split_indices("test"), parts["test"])
    assert not np.array_equal(load("synth_lin", n=1001, data_seed=1).split_indices("test"), parts["test"])
    with pytest.raises(DataError, match="'valid'.*train, eval, test"):
        ds.split_indices("valid")


def test_shuffled_batches_are_one_fresh_permutation_per_epoch_dropping_the_last() -> None:
    ds = load("synth_lin", n=1000)
    train = ds.split_indices("train")  # 800 points
    rng = np.random.default_rng(7)
    e1 = list(ds.shuffled_batches(train, 64, rng))
    e2 = list(ds.shuffled_batches(train, 64, rng))
    assert len(e1) == 800 // 64 and all(b.shape == (64,) and b.dtype == np.int64 for b in e1)
    for epoch in (e1, e2):
        seen = np.concatenate(epoch)
        assert len(np.unique(seen)) == seen.size and np.isin(seen, train).all()
    assert not np.array_equal(np.concatenate(e1), np.concatenate(e2))  # fresh permutation per epoch
    again = list(ds.shuffled_batches(train, 64, np.random.default_rng(7)))  # seed's own generator decides
    np.testing.assert_array_equal(np.concatenate(again), np.concatenate(e1))


@pytest.mark.parametrize(("name", "options", "message"), [
    ("synth_linn", {}, "unknown dataset 'synth_linn' \\(did you mean 'synth_lin'\\?\\)"),
    ("synth_lin", {"ratioo": 2.0}, "unknown option.*'ratioo'.*ratio, n, data_seed"),
    ("synth_lin", {"ratio": "2"}, "option 'ratio' must be float, got '2'"),
    ("synth_lin", {"ratio": -1.0}, "option 'ratio' must be positive"),
    ("synth_nonlin", {"n": 0}, "option 'n' must be positive"),
    ("synth_nonlin", {"n": 10.5}, "option 'n' must be int"),
])
def test_bad_names_and_options_are_refused_naming_them(name: str, options: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load(name, **options)


def test_bad_indices_and_factor_shapes_are_refused() -> None:
    ds = load("synth_lin", n=10)
    with pytest.raises(DataError, match=r"\[0, 10\)"):
        ds.observations_at(np.array([3, 10]))
    with pytest.raises(DataError, match=r"shape \(n, 2\)"):
        ds.observations(np.zeros((4, 3)))
