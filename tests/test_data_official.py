"""Loaders of the official files, fed small files the tests write in the official layouts; bad files."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from sweep.spec import SpecError, validate_study
from workers.data import DataError, load
from workers.data.cache import cache_dir
from workers.data.dsprites import FACTOR_SIZES as DSPRITES_SIZES
from workers.data.dsprites import FACTOR_VALUES as DSPRITES_VALUES
from workers.data.shapes3d import FACTOR_SIZES as SHAPES3D_SIZES
from workers.data.shapes3d import FACTOR_VALUES as SHAPES3D_VALUES


def _grid(sizes: list[int], rows: int) -> np.ndarray:
    """The first `rows` combinations of a grid in official order (last factor fastest)."""
    return np.stack(np.unravel_index(np.arange(rows), sizes), axis=1).astype(np.int64)


def write_dsprites_npz(path: Path, rows: int = 96, compressed: bool = True, **override) -> dict:
    """A dSprites file in the official layout: imgs, latents_classes (with color), latents_values, metadata."""
    classes = _grid(DSPRITES_SIZES, rows)
    rng = np.random.default_rng(0)
    arrays = {
        "imgs": (rng.random((rows, 64, 64)) < 0.2).astype(np.uint8),
        "latents_classes": np.concatenate([np.zeros((rows, 1), np.int64), classes], axis=1),
        "latents_values": np.concatenate([np.ones((rows, 1)), np.stack(
            [DSPRITES_VALUES[k][classes[:, k]] for k in range(5)], axis=1)], axis=1),
        "metadata": np.array({"description": "test file in the official layout"}, dtype=object),
    }
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return arrays


def write_3dshapes_h5(path: Path, rows: int = 480, **override) -> dict:
    classes = _grid(SHAPES3D_SIZES, rows)
    arrays = {
        "images": np.random.default_rng(1).integers(0, 256, (rows, 64, 64, 3), dtype=np.uint8),
        "labels": np.stack([SHAPES3D_VALUES[k][classes[:, k]] for k in range(6)], axis=1),
    }
    arrays.update(override)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if v is not None:
                f.create_dataset(k, data=v, compression="gzip")
    return {**arrays, "classes": classes}


def _cache_entries() -> list[str]:
    return sorted(p.name for p in cache_dir().iterdir() if not p.name.endswith(".lock"))


@pytest.mark.parametrize("compressed", [True, False])
def test_official_dsprites_npz_is_read_bit_exact(tmp_path: Path, compressed: bool) -> None:
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    arrays = write_dsprites_npz(path, compressed=compressed)
    ds = load("dsprites", path=str(path))
    assert len(ds) == 96 and ds.factor_sizes == DSPRITES_SIZES and ds.observation_shape == (1, 64, 64)
    idx = np.array([5, 0, 95, 40])
    np.testing.assert_array_equal(ds.observations_at(idx)[:, 0], arrays["imgs"][idx].astype(np.float32))
    np.testing.assert_array_equal(ds.factors_at(idx), arrays["latents_classes"][idx, 1:])
    # arbitrary factors are looked up in the file, combinations it lacks are refused
    f = arrays["latents_classes"][[7, 3], 1:]
    np.testing.assert_array_equal(ds.observations(f)[:, 0], arrays["imgs"][[7, 3]])
    with pytest.raises(DataError, match="holds no image for factors \\[2, 5, 39, 31, 31\\]"):
        ds.observations(np.array([[2, 5, 39, 31, 31]]))
    assert np.isin(ds.factors_to_index(ds.sample_factors(50, np.random.default_rng(0))),
                   ds.factors_to_index(arrays["latents_classes"][:, 1:])).all()
    # opening again reads the node cache (one entry for this file, stored bit-packed: 512 bytes per image)
    entries = [e for e in _cache_entries() if e.startswith("dsprites-file-")]
    again = load("dsprites", path=str(path))
    assert [e for e in _cache_entries() if e.startswith("dsprites-file-")] == entries
    assert (cache_dir() / entries[-1]).stat().st_size < 96 * 512 + 1024
    np.testing.assert_array_equal(again.observations_at(idx), ds.observations_at(idx))


def test_official_3dshapes_h5_maps_float_labels_to_classes(tmp_path: Path) -> None:
    path = tmp_path / "3dshapes.h5"
    arrays = write_3dshapes_h5(path)  # 480 rows: all scales × shapes × orientations, hues only 0.0
    ds = load("shapes3d", path=str(path))
    assert len(ds) == 480 and ds.observation_shape == (3, 64, 64)
    idx = np.array([0, 1, 14, 15, 479])
    np.testing.assert_array_equal(ds.factors_at(idx), arrays["classes"][idx])
    x = ds.observations_at(idx)
    assert x.dtype == np.float32 and x.shape == (5, 3, 64, 64)
    np.testing.assert_array_equal(x, np.moveaxis(arrays["images"][idx], -1, 1) / np.float32(255))
    np.testing.assert_array_equal(ds.observations(arrays["classes"][[479]]), x[-1:])


def test_3dshapes_labels_as_float32_still_map_by_rank(tmp_path: Path) -> None:
    path = tmp_path / "3dshapes.h5"
    rows = 480
    classes = _grid(SHAPES3D_SIZES, rows)
    labels = np.stack([SHAPES3D_VALUES[k][classes[:, k]] for k in range(6)], axis=1).astype(np.float32)
    write_3dshapes_h5(path, labels=labels)
    np.testing.assert_array_equal(load("shapes3d", path=str(path)).factors_at(np.arange(rows)), classes)


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_directory_pools_train_and_test_keeping_labels(tmp_path: Path, gz: bool) -> None:
    (xa, ya), (xb, yb) = _mnist_arrays(30, 0), _mnist_arrays(10, 1)
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", xa, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", ya, gz)
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", xb, gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", yb, gz)
    for name in ("mnist", "fashion_mnist"):
        ds = load(name, path=str(tmp_path))
        assert ds.name == name and len(ds) == 40 and ds.num_factors == 0 and ds.observation_shape == (1, 28, 28)
        x = ds.observations_at(np.arange(40))
        np.testing.assert_array_equal(x[:, 0], np.concatenate([xa, xb]) / np.float32(255))
        np.testing.assert_array_equal(ds.labels_at(np.arange(40)), np.concatenate([ya, yb]))
        assert ds.factors_at(np.arange(3)).shape == (3, 0)
        with pytest.raises(DataError, match="no generative factors"):
            ds.sample_factors(3, np.random.default_rng(0))
    one = load("mnist", path=str(tmp_path / f"t10k-images-idx3-ubyte{suffix}"))  # a single images file
    np.testing.assert_array_equal(one.labels_at(np.arange(10)), yb)


def test_mnist_npz_in_the_keras_layout(tmp_path: Path) -> None:
    (xa, ya), (xb, yb) = _mnist_arrays(12, 2), _mnist_arrays(4, 3)
    np.savez(tmp_path / "mnist.npz", x_train=xa, y_train=ya, x_test=xb, y_test=yb)
    ds = load("mnist", path=str(tmp_path / "mnist.npz"))
    assert len(ds) == 16
    np.testing.assert_array_equal(ds.labels_at(np.arange(16)), np.concatenate([ya, yb]))
    assert sorted(np.concatenate([ds.split_indices(p) for p in ("train", "eval", "test")])) == list(range(16))


# ---- bad input: one clear error naming the file or field, never a half-written cache -----------------


def _bad_dsprites_files(tmp: Path) -> list[tuple[str, Path, str]]:
    cases = []
    p = tmp / "no_imgs.npz"
    write_dsprites_npz(p, imgs=None)
    cases.append(("missing key", p, r"no_imgs.npz: no array 'imgs' in the .npz \(found: latents_classes"))
    p = tmp / "small_imgs.npz"
    write_dsprites_npz(p, imgs=np.zeros((96, 32, 32), np.uint8))
    cases.append(("wrong image shape", p, r"'imgs' has shape \(96, 32, 32\); expected \(96, 64, 64\)"))
    p = tmp / "five_latents.npz"
    write_dsprites_npz(p, latents_classes=np.zeros((96, 5), np.int64))
    cases.append(("wrong labels shape", p, r"'latents_classes' has shape \(96, 5\).*expected \(N, 6\)"))
    p = tmp / "class_range.npz"
    bad = np.zeros((96, 6), np.int64)
    bad[:, 4] = 40
    write_dsprites_npz(p, latents_classes=bad)
    cases.append(("class out of range", p, r"factor 'posX': class indices must lie in \[0, 32\)"))
    p = tmp / "grey.npz"
    write_dsprites_npz(p, imgs=np.full((96, 64, 64), 7, np.uint8))
    cases.append(("non-binary images", p, r"'imgs' holds values outside \{0, 1\}"))
    p = tmp / "garbage.npz"
    p.write_bytes(os.urandom(2000))
    cases.append(("not a zip", p, r"garbage.npz: not a readable .npz file"))
    p = tmp / "truncated.npz"
    write_dsprites_npz(tmp / "full.npz", compressed=False)
    p.write_bytes((tmp / "full.npz").read_bytes()[:300_000])
    cases.append(("truncated", p, r"truncated.npz"))
    cases.append(("directory", tmp, r"is a directory; expected the official dsprites_ndarray"))
    cases.append(("missing file", tmp / "nope.npz", r"nope.npz' does not exist"))
    return cases


def test_bad_dsprites_files_are_refused_clearly_and_leave_no_cache(tmp_path: Path) -> None:
    before = _cache_entries()
    for what, path, message in _bad_dsprites_files(tmp_path):
        with pytest.raises(DataError, match=message):
            load("dsprites", path=str(path))
        assert _cache_entries() == before, f"{what}: left something in the cache"


def test_bad_dsprites_files_are_refused_at_validation_too(tmp_path: Path) -> None:
    for what, path, message in _bad_dsprites_files(tmp_path):
        if what in ("non-binary images", "missing file"):  # found when the images are read; absent: a note
            continue
        for dataset in ("dsprites", "color_dsprites"):
            study = {"study": "t", "grid": {"dataset": [dataset], "model": ["vae"], "seeds": 1},
                     "overrides": {dataset: {"path": str(path)}}}
            with pytest.raises(SpecError, match=message):
                validate_study(study, planned=True)


def test_bad_3dshapes_files_are_refused_clearly(tmp_path: Path) -> None:
    cases = []
    p = tmp_path / "a.h5"
    write_3dshapes_h5(p, labels=None)
    cases.append((p, r"a.h5: no dataset 'labels' \(found: images\)"))
    p = tmp_path / "b.h5"
    write_3dshapes_h5(p, images=np.zeros((480, 64, 64, 3), np.float32))
    cases.append((p, r"'images' has shape \(480, 64, 64, 3\) and dtype float32; expected \(480, 64, 64, 3\) uint8"))
    p = tmp_path / "c.h5"
    write_3dshapes_h5(p, labels=np.random.default_rng(0).random((480, 6)))
    cases.append((p, r"'labels' column 0 \(floor_hue\) holds 480 distinct values"))
    p = tmp_path / "d.h5"
    p.write_bytes(b"not hdf5 at all" * 100)
    cases.append((p, r"d.h5: not a readable HDF5 file"))
    before = _cache_entries()
    for path, message in cases:
        with pytest.raises(DataError, match=message):
            load("shapes3d", path=str(path))
        with pytest.raises(SpecError, match=message):  # and at validation, before anything is scheduled
            validate_study({"study": "t", "grid": {"dataset": ["shapes3d"], "model": ["vae"], "seeds": 1},
                            "overrides": {"shapes3d": {"path": str(path)}}}, planned=True)
    assert _cache_entries() == before


def test_bad_mnist_inputs_are_refused_clearly(tmp_path: Path) -> None:
    x, y = _mnist_arrays(5, 0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", x, gz=True)
    with pytest.raises(DataError, match="found train-images-idx3-ubyte.gz but not its labels file"):
        load("mnist", path=str(tmp_path))
    with pytest.raises(DataError, match="the labels file next to train-images-idx3-ubyte.gz"):
        load("mnist", path=str(tmp_path / "train-images-idx3-ubyte.gz"))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y[:4], gz=True)
    with pytest.raises(DataError, match=r"labels have shape \(4,\); expected \(5,\)"):
        load("mnist", path=str(tmp_path))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train-images-idx3-ubyte").write_bytes(struct.pack(">4B3i", 0, 0, 8, 3, 5, 28, 28)
                                                              + bytes(100))
    (tmp_path / "bad" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05" + bytes(5))
    with pytest.raises(DataError, match="IDX header says shape.*truncated or corrupt"):
        load("mnist", path=str(tmp_path / "bad"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(DataError, match="file ends inside the header"):
        load("mnist", path=str(tmp_path / "bad"))
    with pytest.raises(DataError, match="no IDX files in this directory"):
        load("mnist", path=str(tmp_path / "empty"))
    np.savez(tmp_path / "wrong.npz", images=x)
    with pytest.raises(DataError, match=r"wrong.npz: keys \['images'\]; expected x_train, y_train"):
        load("fashion_mnist", path=str(tmp_path / "wrong.npz"))
    with pytest.raises(DataError, match="option 'path' is required"):
        load("mnist")


def test_a_file_holding_the_full_grid_in_order_is_indexed_without_labels_and_shuffled_rows_are_looked_up() -> None:
    from workers.data.stored import StoredGridDataset

    sizes = [2, 3, 4]
    classes = _grid(sizes, 24)
    images = np.arange(24, dtype=np.uint8)[:, None]  # row i holds the value i

    def make(labels: np.ndarray, rows: np.ndarray) -> StoredGridDataset:
        return StoredGridDataset("toy", ["a", "b", "c"], sizes, [np.arange(s) for s in sizes], (1,), rows,
                                 lambda r: r.astype(np.float32), labels, 0, source="toy.file")

    full = make(classes, images)
    assert full.is_full_grid
    np.testing.assert_array_equal(full.factors_at(np.arange(24)), classes)
    np.testing.assert_array_equal(full.observations(classes[[5, 17]])[:, 0], [5, 17])
    perm = np.random.default_rng(0).permutation(24)
    shuffled = make(classes[perm], images[perm])  # row j holds combination perm[j]
    assert not shuffled.is_full_grid
    np.testing.assert_array_equal(shuffled.observations(classes[[5, 17]])[:, 0], [5, 17])
    np.testing.assert_array_equal(shuffled.factors_at(np.arange(24)), classes[perm])
    with pytest.raises(DataError, match="toy.file: the labels list some factor combination twice"):
        make(np.concatenate([classes[:3], classes[:3]]), images[:6])
