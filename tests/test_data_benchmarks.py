"""MPI3D, SmallNORB, Cars3D from tiny files of the official formats (written here), and the dSprites variants.

The fixtures shrink the factor grids (the modules' published sizes are patched for the test) and fill each image
with a value that names its factor combination, so `observations(factors)` is known by construction.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sweep.cli import main
from sweep.spec import SpecError, validate_study
from workers.data import DataError, cars3d, dsprites, load, mpi3d, smallnorb

# ---- MPI3D -------------------------------------------------------------------------------------------------

SMALL_MPI3D = (2, 3, 1, 1, 2, 2, 3)  # 72 images


def _mpi3d_images() -> np.ndarray:
    """uint8 (72, 64, 64, 3): image i is filled with i (channel 0), 2i mod 256 (1) and 255 − i (2)."""
    i = np.arange(int(np.prod(SMALL_MPI3D)), dtype=np.int64)
    return np.broadcast_to(np.stack([i, (2 * i) % 256, 255 - i], 1)[:, None, None, :],
                           (i.size, 64, 64, 3)).astype(np.uint8)


@pytest.fixture
def small_mpi3d(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "mpi3d_toy.npz"
    np.savez(path, images=_mpi3d_images())
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(mpi3d.RELEASES, "toy", mpi3d.Release("mpi3d_toy.npz", SMALL_MPI3D, md5))
    return path


def test_mpi3d_observations_are_the_files_images_at_those_factors(small_mpi3d: Path) -> None:
    ds = load("mpi3d_toy", path=str(small_mpi3d))
    assert len(ds) == 72 and ds.factor_sizes == list(SMALL_MPI3D) and ds.observation_shape == (3, 64, 64)
    assert ds.factor_names == ["object_color", "object_shape", "object_size", "camera_height", "background_color",
                               "horizontal_axis", "vertical_axis"]
    factors = np.array([[0, 0, 0, 0, 0, 0, 0], [1, 2, 0, 0, 1, 1, 2], [0, 1, 0, 0, 1, 0, 1]])
    obs = ds.observations(factors)
    index = np.ravel_multi_index(tuple(factors.T), SMALL_MPI3D)  # C order, the last factor fastest
    want = _mpi3d_images()[index].transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(obs, want)
    assert obs[1, :, 0, 0].tolist() == pytest.approx([71 / 255, 142 / 255, 184 / 255])


def _truncated_npz(path: Path) -> None:
    buf = path.parent / "images.npy"
    np.save(buf, _mpi3d_images())
    data = buf.read_bytes()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images.npy", data[:-5000])


@pytest.mark.parametrize(("case", "fragment"), [
    ("wrong key", r"no array 'images' in the .npz \(found: imgs\); expected the official MPI3D toy"),
    ("wrong shape", r"'images' has shape \(71, 64, 64, 3\) and dtype uint8; expected \(72, 64, 64, 3\) uint8"),
    ("truncated", r"'images' holds \d+ bytes of image data; expected 884736 \(a truncated or altered file\)"),
    ("checksum", r"md5 [0-9a-f]{32} differs from the published [0-9a-f]{32}"),
])
def test_bad_mpi3d_files_are_refused_at_validation_naming_the_file(small_mpi3d: Path, case: str,
                                                                  fragment: str) -> None:
    bad = small_mpi3d.with_name("bad.npz")
    if case == "wrong key":
        np.savez(bad, imgs=_mpi3d_images())
    elif case == "wrong shape":
        np.savez(bad, images=_mpi3d_images()[:-1])
    elif case == "truncated":
        _truncated_npz(bad)
    else:
        np.savez(bad, images=_mpi3d_images()[::-1])
    study = {"study": "t", "grid": {"dataset": ["mpi3d_toy"], "model": ["beta_vae"], "seeds": 1},
             "overrides": {"mpi3d_toy": {"path": str(bad)}}}
    with pytest.raises(SpecError, match=rf"dataset 'mpi3d_toy': {bad}: {fragment}"):
        validate_study(study, planned=True)
    with pytest.raises(DataError, match=fragment):
        load("mpi3d_toy", path=str(bad))


def test_mpi3d_takes_the_md5_of_another_release_when_given(small_mpi3d: Path) -> None:
    other = small_mpi3d.with_name("other.npz")
    np.savez(other, images=_mpi3d_images()[::-1])
    with pytest.raises(DataError, match="differs from the published"):
        load("mpi3d_toy", path=str(other))
    ds = load("mpi3d_toy", path=str(other), checksum=hashlib.md5(other.read_bytes()).hexdigest())
    assert ds.observations_at(np.array([0]))[0, 0, 0, 0] == np.float32(71 / 255)
    with pytest.raises(DataError, match="option 'checksum' must be an md5 digest"):
        load("mpi3d_toy", path=str(other), checksum="abc")


# ---- SmallNORB ----------------------------------------------------------------------------------------------

SMALL_NORB = [2, 2, 1, 2, 1]  # category, instance, elevation, azimuth, lighting: 8 combinations, 4 per split


def _matrix(dtype_magic: int, dims: tuple[int, ...], data: np.ndarray) -> bytes:
    head = struct.pack("<ii", dtype_magic, len(dims)) + struct.pack(f"<{max(3, len(dims))}i",
                                                                     *dims, *([1] * (3 - len(dims))))
    return head + np.ascontiguousarray(data).tobytes()


def _norb_value(c: int, i: int, e: int, a: int, li: int) -> int:
    return 10 + 40 * c + 20 * i + 7 * a + 3 * e + li


def _write_norb(folder: Path, gz: bool = False, rows: int = 4) -> None:
    """Training holds instance 1, testing instance 0; each image is constant, its value naming its factors."""
    folder.mkdir(exist_ok=True)
    for split, instance in (("training", 1), ("testing", 0)):
        combos = [(c, instance, 0, a, 0) for c in range(2) for a in range(2)][::-1][:rows]  # not in grid order
        cat = np.array([c[0] for c in combos], dtype="<i4")
        info = np.array([[c[1], c[2], 2 * c[3], c[4]] for c in combos], dtype="<i4")
        dat = np.zeros((len(combos), 2, 96, 96), dtype=np.uint8)
        for r, c in enumerate(combos):
            dat[r, 0] = _norb_value(*c)
            dat[r, 1] = 255  # the second camera, not used
        stem = smallnorb.SPLITS[split]
        for kind, blob in (("dat", _matrix(0x1E3D4C55, dat.shape, dat)), ("cat", _matrix(0x1E3D4C54, cat.shape, cat)),
                           ("info", _matrix(0x1E3D4C54, info.shape, info))):
            name = folder / f"{stem}-{kind}.mat"
            if gz:
                with gzip.open(f"{name}.gz", "wb") as fh:
                    fh.write(blob)
            else:
                name.write_bytes(blob)


@pytest.fixture
def small_norb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smallnorb, "FACTOR_SIZES", SMALL_NORB)
    monkeypatch.setattr(smallnorb, "ROWS_PER_FILE", 4)


@pytest.mark.parametrize("gz", [False, True])
def test_smallnorb_observations_are_the_files_first_camera_at_those_factors(tmp_path: Path, small_norb: None,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           gz: bool) -> None:
    _write_norb(tmp_path / "norb", gz=gz)
    if gz:  # the fixture is not the published release: expect its own md5s
        monkeypatch.setattr(smallnorb, "GZ_MD5", {k: hashlib.md5(f.read_bytes()).hexdigest() for k, f in
                                                  smallnorb.find_files(tmp_path / "norb").items()})
    ds = load("smallnorb", path=str(tmp_path / "norb"))
    assert len(ds) == 8 and ds.observation_shape == (1, 64, 64)
    assert ds.factor_names == ["category", "instance", "elevation", "azimuth", "lighting"]
    factors = ds.factors_at(np.arange(8))
    obs = ds.observations(factors)
    for f, x in zip(factors, obs, strict=True):  # a constant image stays constant through Lanczos resizing
        assert np.all(x == np.float32(_norb_value(*f) / 255)), (f, np.unique(x))


def test_bad_smallnorb_files_are_refused_naming_the_file(tmp_path: Path, small_norb: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "norb"
    _write_norb(folder)
    dat = folder / f"{smallnorb.SPLITS['testing']}-dat.mat"
    dat.write_bytes(dat.read_bytes()[:-100])
    with pytest.raises(DataError, match=rf"{dat}: holds 73652 bytes; expected 73752 \(a truncated or altered file\)"):
        load("smallnorb", path=str(folder))
    _write_norb(folder)
    info = folder / f"{smallnorb.SPLITS['training']}-info.mat"
    info.write_bytes(_matrix(0x1E3D4C54, (4, 3), np.zeros((4, 3), "<i4")))
    with pytest.raises(SpecError, match=rf"{info}: binary matrix of dtype int32 and shape \(4, 3\); expected int32 "
                                        r"\(4, 4\)"):
        validate_study({"study": "t", "grid": {"dataset": ["smallnorb"], "model": ["vae"], "seeds": 1},
                        "overrides": {"smallnorb": {"path": str(folder)}}})
    _write_norb(folder)
    (folder / f"{smallnorb.SPLITS['training']}-cat.mat").unlink()
    with pytest.raises(DataError, match=r"holds no smallnorb-5x46789x9x18x6x2x96x96-training-cat.mat \(nor .gz\)"):
        load("smallnorb", path=str(folder))
    gz = tmp_path / "gz"
    _write_norb(gz, gz=True)  # not the published release: its md5s differ
    with pytest.raises(DataError, match=r"md5 [0-9a-f]{32} differs from the published "
                                        r"66054832f9accfe74a0f4c36a75bc0a2"):
        load("smallnorb", path=str(gz))


# ---- Cars3D -------------------------------------------------------------------------------------------------

def _cars_value(e: int, a: int, o: int) -> int:
    return 100 * o + 20 * e + a


def _write_cars(folder: Path, n: int = 2, shape: tuple[int, ...] = cars3d.MESH, key: str = "im") -> None:
    from scipy.io import savemat

    folder.mkdir(exist_ok=True)
    for o in range(n):
        im = np.empty(shape, dtype=np.uint8)
        for a in range(shape[3]):
            for e in range(shape[4]):
                im[:, :, :, a, e] = _cars_value(e, a, o)
        savemat(folder / f"car_{o + 1:03d}_mesh.mat", {key: im, "mask": np.ones((4, 4), np.uint8)})


def test_cars3d_observations_are_the_renders_at_those_factors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cars3d, "FACTOR_SIZES", [4, 24, 2])
    _write_cars(tmp_path / "cars")
    ds = load("cars3d", path=str(tmp_path / "cars"))
    assert len(ds) == 4 * 24 * 2 and ds.factor_names == ["elevation", "azimuth", "object_type"]
    factors = np.array([[0, 0, 0], [3, 23, 1], [2, 5, 1], [1, 17, 0]])
    obs = ds.observations(factors)
    for f, x in zip(factors, obs, strict=True):
        assert np.all(x == np.float32(_cars_value(*f) / 255)), (f, np.unique(x))


@pytest.mark.parametrize(("case", "fragment"), [
    ("count", r"holds 1 files car_\*_mesh.mat; expected the official Cars3D `cars` folder"),
    ("shape", r"car_001_mesh.mat: 'im' is uint8 \(64, 128, 3, 24, 4\); expected uint8 \(128, 128, 3, 24, 4\)"),
    ("key", r"car_001_mesh.mat: no array 'im' \(found: img, mask\)"),
])
def test_bad_cars3d_folders_are_refused_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str,
                                                       fragment: str) -> None:
    monkeypatch.setattr(cars3d, "FACTOR_SIZES", [4, 24, 2])
    folder = tmp_path / "cars"
    if case == "count":
        _write_cars(folder, n=1)
    else:
        _write_cars(folder, shape=(64, 128, 3, 24, 4) if case == "shape" else cars3d.MESH,
                    key="img" if case == "key" else "im")
    with pytest.raises(SpecError, match=fragment):
        validate_study({"study": "t", "grid": {"dataset": ["cars3d"], "model": ["vae"], "seeds": 1},
                        "overrides": {"cars3d": {"path": str(folder)}}})


# ---- dSprites variants --------------------------------------------------------------------------------------

def _some_factors(n: int = 40) -> np.ndarray:
    return dsprites.ProceduralDSprites().sample_factors(n, np.random.default_rng(3))


def test_color_dsprites_is_the_sprite_in_one_colour_per_point_on_black() -> None:
    ds, base = load("color_dsprites"), load("dsprites")
    f = _some_factors()
    x, sprite = ds.observations(f), base.observations(f)[:, 0] > 0.5
    assert x.shape == (40, 3, 64, 64)
    assert np.all(x.transpose(1, 0, 2, 3)[:, ~sprite] == 0)
    c = np.stack([x[i][:, sprite[i]][:, 0] for i in range(40)])  # (n, 3): the first sprite pixel's colour
    for i in range(40):
        np.testing.assert_array_equal(x[i][:, sprite[i]], c[i][:, None].repeat(sprite[i].sum(), 1))  # one colour
    assert c.min() >= 128 / 255 and c.max() <= 1.0 and np.unique(c).size > 30  # U(0.5, 1)³, 8-bit levels
    np.testing.assert_array_equal(ds.observations(f), x)  # the same factors, the same images
    assert not np.array_equal(load("color_dsprites", data_seed=1).observations(f), x)


def test_noisy_dsprites_is_the_white_sprite_over_uniform_noise() -> None:
    ds, base = load("noisy_dsprites"), load("dsprites")
    f = _some_factors(20)
    x, sprite = ds.observations(f), base.observations(f)[:, 0] > 0.5
    assert np.all(x.transpose(1, 0, 2, 3)[:, sprite] == 1.0)
    noise = x.transpose(1, 0, 2, 3)[:, ~sprite]
    levels = np.rint(noise * 255)
    np.testing.assert_array_equal(noise, (levels / 255).astype(np.float32))
    assert abs(noise.mean() - 0.5) < 0.01 and abs(noise.std() - 1 / np.sqrt(12)) < 0.01
    counts = np.bincount(levels.astype(int).ravel(), minlength=256)
    assert counts.min() > 0.8 * counts.mean()  # all 256 levels, about equally often


def test_scream_dsprites_inverts_the_averaged_background_on_the_sprite(tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "flat.png"
    Image.new("RGB", (400, 300), (51, 102, 204)).save(image)
    ds, base = load("scream_dsprites", image=str(image)), load("dsprites")
    f = _some_factors(20)
    x, sprite = ds.observations(f).astype(np.float64), base.observations(f)[:, 0] > 0.5
    flat = np.array([51, 102, 204]) / 255
    for i in range(20):
        bg = x[i][:, ~sprite[i]]
        b = bg[:, 0]
        assert np.all(bg == b[:, None])  # a flat image: one background colour (flat + o) / 2 per point
        assert np.all(b >= flat / 2 - 0.5 / 255) and np.all(b <= (flat + 1) / 2 + 0.5 / 255)
        assert np.abs(x[i][:, sprite[i]] - (1 - b)[:, None]).max() <= 1 / 255 + 1e-9  # 1 − b, both rounded
    Image.new("RGB", (60, 60)).save(tmp_path / "small.png")
    with pytest.raises(DataError, match=r"small.png: 60×60 pixels once resized to fit 350×274; expected more than 64"):
        load("scream_dsprites", image=str(tmp_path / "small.png"))
    with pytest.raises(DataError, match="option 'image' is required"):
        load("scream_dsprites")


def test_variant_rows_decode_to_the_observations() -> None:
    ds = load("color_dsprites")
    idx = np.array([0, 5, 700_000])
    np.testing.assert_array_equal(ds.decode_rows(ds.rows_at(idx)), ds.observations_at(idx))
    assert ds.rows_at(idx).dtype == np.uint8 and ds.rows_at(idx).shape == (3, 64, 64, 3)


# ---- CLI ----------------------------------------------------------------------------------------------------

def test_datasets_lists_the_benchmark_datasets_with_factors(capsys: pytest.CaptureFixture) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("mpi3d_toy", "mpi3d_realistic", "mpi3d_complex", "smallnorb", "cars3d", "color_dsprites",
                 "noisy_dsprites", "scream_dsprites"):
        assert f"\n{name} " in out
    assert "object_color=4, object_shape=4, object_size=2" in out  # complex
    assert "category=5, instance=10, elevation=9, azimuth=18, lighting=6" in out
    assert "elevation=4, azimuth=24, object_type=183" in out


def test_datasets_show_and_prepare_read_the_official_files(small_mpi3d: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    assert main(["datasets", "prepare", "mpi3d_toy", "--path", str(small_mpi3d)]) == 0
    assert "mpi3d_toy: 72 points ready" in capsys.readouterr().out
    assert main(["datasets", "show", "mpi3d_toy", "--path", str(small_mpi3d), "--out", str(tmp_path / "m.png"),
                 "--columns", "2"]) == 0
    assert (tmp_path / "m.png").stat().st_size > 0
    assert main(["datasets", "show", "color_dsprites", "--out", str(tmp_path / "c.png"), "--columns", "3"]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0


def test_the_compact_device_rows_decode_to_the_observations(tmp_path: Path, small_norb: None) -> None:
    import torch

    from workers.data.device_rows import compact_form

    _write_norb(tmp_path / "norb")
    for ds in (load("smallnorb", path=str(tmp_path / "norb")), load("noisy_dsprites")):
        form = compact_form(ds)
        idx = np.array([0, 3, 7])
        assert form.decode is not None and form.row_bytes() == {"smallnorb": 4096}.get(ds.name, 12288)
        decoded = form.decode(torch.from_numpy(np.ascontiguousarray(form.rows(idx)))).numpy()
        np.testing.assert_array_equal(decoded, ds.observations_at(idx))


def test_datasets_show_draws_the_one_channel_and_the_rendered_sets(tmp_path: Path, small_norb: None,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    _write_norb(tmp_path / "norb")
    monkeypatch.setattr(cars3d, "FACTOR_SIZES", [4, 24, 2])
    _write_cars(tmp_path / "cars")
    Image.new("RGB", (400, 300), (51, 102, 204)).save(tmp_path / "flat.png")
    for args in (["smallnorb", "--path", str(tmp_path / "norb")], ["cars3d", "--path", str(tmp_path / "cars")],
                 ["noisy_dsprites"], ["scream_dsprites", "--option", f"image={tmp_path / 'flat.png'}"]):
        out = tmp_path / f"{args[0]}.png"
        assert main(["datasets", "show", *args, "--out", str(out), "--columns", "2"]) == 0, args
        assert Image.open(out).size[0] > 100
