"""Procedural dsprites and shapes3d: exact official grids and orders, per-factor changes, no clipping."""

from __future__ import annotations

import numpy as np
import pytest

from workers.data import DataError, load
from workers.data.catalog import DATASETS


def test_dsprites_grid_is_the_official_one(dsprites) -> None:
    assert dsprites.factor_names == ["shape", "scale", "orientation", "posX", "posY"]
    assert dsprites.factor_sizes == [3, 6, 40, 32, 32] and dsprites.discrete == [True] * 5
    assert len(dsprites) == 737_280 and dsprites.observation_shape == (1, 64, 64)
    np.testing.assert_allclose(dsprites.factor_values[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    np.testing.assert_allclose(dsprites.factor_values[2][[0, 39]], [0.0, 2 * np.pi])
    np.testing.assert_allclose(dsprites.factor_values[3], np.arange(32) / 31)


def test_shapes3d_grid_is_the_official_one(shapes3d) -> None:
    assert shapes3d.factor_names == ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"]
    assert shapes3d.factor_sizes == [10, 10, 10, 8, 4, 15] and len(shapes3d) == 480_000
    assert shapes3d.observation_shape == (3, 64, 64)
    np.testing.assert_allclose(shapes3d.factor_values[0], np.arange(10) / 10, atol=1e-12)
    np.testing.assert_allclose(shapes3d.factor_values[3][[0, -1]], [0.75, 1.25])
    np.testing.assert_allclose(shapes3d.factor_values[5][[0, 7, -1]], [-30.0, 0.0, 30.0])


@pytest.mark.parametrize("name", ["dsprites", "shapes3d"])
def test_index_factor_round_trip_over_the_whole_grid_in_official_order(name: str, request) -> None:
    ds = request.getfixturevalue(name)
    n = len(ds)
    f = ds.index_to_factors(np.arange(n))
    assert f.shape == (n, ds.num_factors) and f.dtype == np.int64
    np.testing.assert_array_equal(ds.factors_to_index(f), np.arange(n))
    # the official order written out by hand: last factor fastest (posY / orientation)
    expected = np.zeros(n, dtype=np.int64)
    for k, size in enumerate(ds.factor_sizes):
        expected = expected * size + f[:, k]
    np.testing.assert_array_equal(expected, np.arange(n))
    np.testing.assert_array_equal(f[: ds.factor_sizes[-1], -1], np.arange(ds.factor_sizes[-1]))
    assert (f[: ds.factor_sizes[-1], :-1] == 0).all()
    np.testing.assert_array_equal(f[ds.factor_sizes[-1]], [0] * (ds.num_factors - 2) + [1, 0])
    np.testing.assert_array_equal(f[-1], np.array(ds.factor_sizes) - 1)
    assert (np.unique(f, axis=0).shape[0]) == n  # every combination exactly once


def test_catalog_matches_what_load_returns(dsprites, shapes3d) -> None:
    for ds in (dsprites, shapes3d, load("synth_lin", n=5), load("synth_nonlin", n=5)):
        info = DATASETS[ds.name]
        assert (info.num_factors, info.observation_shape) == (ds.num_factors, ds.observation_shape)


def _change_one_factor(ds, base: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    moved = base.copy()
    moved[:, k] = (base[:, k] + rng.integers(1, ds.factor_sizes[k], size=len(base))) % ds.factor_sizes[k]
    return moved


SYMMETRY = np.array([np.pi / 2, np.pi, 2 * np.pi])  # square, ellipse, heart: rotations mapping the shape to itself


TOLERANCE_DEG = np.array([10.0, 0.5, 0.5])  # the square's folded grid angles lie 2.3° apart (see below)


def _symmetric_orientations(shape: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True where orientation classes a and b are within the shape's tolerance of one of its symmetries."""
    theta = np.linspace(0, 2 * np.pi, 40)
    period = SYMMETRY[shape]
    d = np.abs(theta[a] - theta[b]) % period
    return np.degrees(np.minimum(d, period - d)) < TOLERANCE_DEG[shape]


@pytest.mark.parametrize("name", ["dsprites", "shapes3d"])
def test_changing_any_one_factor_changes_the_image_and_equal_factors_give_equal_images(name, request) -> None:
    ds = request.getfixturevalue(name)
    rng = np.random.default_rng(0)
    base = ds.sample_factors(400, rng)
    x = ds.observations(base)
    assert x.dtype == np.float32 and x.shape == (400, *ds.observation_shape)
    assert x.min() >= 0 and x.max() <= 1
    np.testing.assert_array_equal(x, ds.observations(base.copy()))
    np.testing.assert_array_equal(x, ds.observations_at(ds.factors_to_index(base)))
    for k, fname in enumerate(ds.factor_names):
        moved = _change_one_factor(ds, base, k, rng)
        diff = np.abs(ds.observations(moved) - x).reshape(len(base), -1).max(axis=1)
        same = np.zeros(len(base), dtype=bool)
        if fname == "orientation" and name == "dsprites":  # see the exhaustive orientation test below
            same = _symmetric_orientations(base[:, 0], base[:, k], moved[:, k])
        assert (diff[~same] > 0).all(), f"{name}: changing {fname} left some image unchanged"


def test_dsprites_orientation_changes_every_image_up_to_the_shapes_symmetry(dsprites) -> None:
    """All 720 (shape, scale, orientation) sprites, all 40×40 orientation pairs: two orientations give
    the same image only if they coincide (0 and 2π, as in the original) or, for the square, lie within
    10° of a multiple of 90° — folded by the square's symmetry the 40 grid angles lie 2.3° apart, which a
    binary square of ~10 pixels (scale 0.5) cannot resolve; the original dSprites has the same
    ambiguity. The ellipse (symmetric under 180°, which no grid pair hits) and the heart differ at every
    other pair."""
    f = np.array([[s, c, o, 12, 9] for s in range(3) for c in range(6) for o in range(40)])
    x = dsprites.observations(f).reshape(3, 6, 40, -1)
    a, b = np.triu_indices(40, 1)
    for s in range(3):
        for c in range(6):
            equal = (x[s, c, a] == x[s, c, b]).all(-1)
            allowed = _symmetric_orientations(np.full(a.size, s), a, b)
            assert not (equal & ~allowed).any(), (s, c, a[equal & ~allowed], b[equal & ~allowed])
            if s > 0:  # ellipse and heart: only the coinciding pair (0, 39)
                np.testing.assert_array_equal(np.flatnonzero(equal), np.flatnonzero((a == 0) & (b == 39)))


def test_dsprites_images_are_binary_and_every_sprite_fits_inside_a_one_pixel_border(dsprites) -> None:
    # every (shape, scale, orientation) at the four extreme positions: 2,880 images
    f = dsprites.index_to_factors(np.arange(len(dsprites)))
    corners = np.isin(f[:, 3], [0, 31]) & np.isin(f[:, 4], [0, 31])
    x = dsprites.observations_at(np.flatnonzero(corners))[:, 0]
    assert set(np.unique(x)) == {0.0, 1.0}
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
    assert not border.any()
    assert (x.reshape(len(x), -1).sum(1) > 0).all()


@pytest.mark.slow
def test_empty_border_and_no_clipping_over_all_737280_dsprites(dsprites) -> None:
    """The whole grid in chunks: outermost rows/columns empty; each sprite's pixel count does not depend
    on its position (a clipped sprite would lose pixels near the edges)."""
    n, chunk = len(dsprites), 32768
    counts = np.empty(n, dtype=np.int64)
    for a in range(0, n, chunk):
        x = dsprites.render(dsprites.index_to_factors(np.arange(a, min(n, a + chunk))))
        assert not (x[:, 0].any() or x[:, -1].any() or x[:, :, 0].any() or x[:, :, -1].any()), a
        counts[a:a + len(x)] = x.reshape(len(x), -1).sum(1, dtype=np.int64)
    per_sprite = counts.reshape(720, 1024)
    assert (per_sprite > 0).all()
    np.testing.assert_array_equal(per_sprite, per_sprite[:, :1].repeat(1024, axis=1))


def test_dsprites_shapes_are_distinguishable_at_the_smallest_scale(dsprites) -> None:
    # No rotation of one shape comes within 12 pixels (Hamming) of any rotation of another, same position.
    f = np.array([[s, 0, o, 15, 15] for s in range(3) for o in range(40)])
    x = dsprites.observations(f).reshape(3, 40, -1).astype(np.int64)
    for a in range(3):
        for b in range(a + 1, 3):
            hamming = np.abs(x[a][:, None] - x[b][None]).sum(-1)
            assert hamming.min() >= 12, (a, b, hamming.min())
    assert (x.sum(-1) >= 60).all()  # not a few specks: ≥ 60 pixels even at scale 0.5


def test_dsprites_factors_move_the_sprite_the_documented_way(dsprites) -> None:
    def centre(f):
        img = dsprites.observations(np.array([f]))[0, 0]
        rows, cols = np.nonzero(img)
        return rows.mean(), cols.mean(), img.sum()

    r0, c0, _ = centre([0, 5, 0, 0, 0])
    r1, c1, _ = centre([0, 5, 0, 31, 0])  # posX: to the right by 31 pixels
    r2, c2, _ = centre([0, 5, 0, 0, 31])  # posY: down by 31 pixels
    np.testing.assert_allclose([r1 - r0, c1 - c0, r2 - r0, c2 - c0], [0, 31, 31, 0])
    sizes = [centre([2, s, 0, 10, 10])[2] for s in range(6)]
    assert sizes == sorted(sizes) and sizes[-1] > 3 * sizes[0]  # area grows ~ scale²


def test_shapes3d_hue_factors_colour_their_own_surface(shapes3d) -> None:
    rng = np.random.default_rng(1)
    base = shapes3d.sample_factors(200, rng)
    x = shapes3d.observations(base)
    changed = {}
    for k in range(3):
        moved = _change_one_factor(shapes3d, base, k, rng)
        changed[k] = np.abs(shapes3d.observations(moved) - x).max(axis=1) > 0  # (200, 64, 64)
    floor, wall, obj = (changed[k].mean(axis=0) for k in range(3))  # (64, 64): how often a pixel changed
    assert floor[48:].mean() > 0.9 and floor[:16].mean() < 0.05  # the floor is the bottom of the picture
    assert wall[:16].mean() > 0.9 and wall[48:].mean() < 0.05  # the wall is the top
    assert 0.01 < obj.mean() < 0.25 and obj[28:44, 24:40].mean() > 0.5  # the object sits in the middle
    # in one image, floor and wall hue act on (almost) disjoint pixels: only anti-aliased edges share
    assert (changed[0] & changed[1]).mean() < 0.03


def test_shapes3d_orientation_moves_the_background_and_render_matches_observations(shapes3d) -> None:
    f = np.array([[0, 3, 6, 4, 0, o] for o in range(15)])
    x = shapes3d.observations(f)
    assert all(np.abs(x[o] - x[o + 1]).max() > 0.1 for o in range(14))
    np.testing.assert_array_equal(shapes3d.render(f).astype(np.float32) / np.float32(255), x)
    assert (x[:, :, :12].reshape(15, -1) != x[:1, :, :12].reshape(1, -1)).any(axis=1)[1:].all()  # wall moves


@pytest.mark.parametrize(("factors", "message"), [
    (np.zeros((2, 4), dtype=np.int64), r"shape \(n, 5\)"),
    (np.array([[0, 0, 40, 0, 0]]), "'orientation'.*\\[0, 40\\)"),
    (np.array([[0.5, 0, 0, 0, 0]]), "integer class indices"),
])
def test_bad_factors_are_refused_naming_the_factor(dsprites, factors, message) -> None:
    with pytest.raises(DataError, match=message):
        dsprites.observations(factors)


def test_shapes3d_cache_rows_decode_to_exactly_the_rendered_observations(shapes3d) -> None:
    f = shapes3d.sample_factors(64, np.random.default_rng(5))
    rows = shapes3d.encode_rows(f)
    assert rows.dtype == np.uint8 and rows.shape == (64, 64, 64, 3)  # the official (N, 64, 64, 3) layout
    np.testing.assert_array_equal(shapes3d.decode_rows(rows), shapes3d.render_observations(f))


@pytest.mark.slow
def test_dsprites_switches_to_the_node_cache_after_one_grid_and_reads_identical_images(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ORTHOSWEEP_CACHE", str(tmp_path))
    ds = load("dsprites")
    idx = np.random.default_rng(2).integers(0, len(ds), 3000)
    on_demand = ds.observations_at(idx)
    assert not ds.uses_cache and not list(tmp_path.glob("*.npy"))  # short jobs build nothing
    ds.rendered = len(ds)  # as if one epoch had been rendered on demand: now the cache pays off
    cached = ds.observations_at(idx)
    assert ds.uses_cache and (tmp_path / f"{ds.cache_key}.npy").stat().st_size < 380e6  # bit-packed
    np.testing.assert_array_equal(cached, on_demand)
    other = load("dsprites")  # another trial on the node: uses the existing entry at once
    np.testing.assert_array_equal(other.observations_at(idx[:10]), on_demand[:10])
    assert other.uses_cache and other.rendered == 0
    monkeypatch.setenv("ORTHOSWEEP_DATA_CACHE", "never")
    third = load("dsprites")
    third.observations_at(idx[:10])
    assert not third.uses_cache
    monkeypatch.setenv("ORTHOSWEEP_DATA_CACHE", "sometimes")
    with pytest.raises(DataError, match="ORTHOSWEEP_DATA_CACHE='sometimes'"):
        load("dsprites").observations_at(idx[:1])


def test_while_another_process_builds_the_cache_a_trial_keeps_rendering_on_demand(tmp_path, monkeypatch) -> None:
    import fcntl

    monkeypatch.setenv("ORTHOSWEEP_CACHE", str(tmp_path))
    ds = load("dsprites")
    with open(tmp_path / f"{ds.cache_key}.lock", "a+b") as held:  # "another builder" holds the lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        ds.rendered = len(ds)  # the threshold is reached
        idx = np.arange(0, len(ds), 7919)
        x = ds.observations_at(idx)
        assert not ds.uses_cache and ds.build_cache(wait=False) is None
        assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob("*.partial"))
    np.testing.assert_array_equal(x[:, 0], ds.render(ds.index_to_factors(idx)))
