"""Training sets on the device in compact form: the torch decodes and every TrainData mode give the same bits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workers.data import load
from workers.data.device_rows import compact_form
from workers.data.dsprites import unpack_bits, unpack_bits_torch
from workers.data.shapes3d import _lookup_levels, decode_hwc, decode_hwc_torch
from workers.data.stored import StoredGridDataset
from workers.train import DEVICE_DATA_BYTES, TrainData

CPU = torch.device("cpu")


def _bits(x: np.ndarray | torch.Tensor) -> np.ndarray:
    a = x.numpy() if isinstance(x, torch.Tensor) else x
    assert a.dtype == np.float32
    return np.ascontiguousarray(a).view(np.uint32)


def _some_training_points(ds, n: int) -> np.ndarray:
    train = ds.split_indices("train")
    return np.sort(np.random.default_rng(1).choice(train, size=n, replace=False))


def test_torch_decodes_match_numpy_on_every_byte_value() -> None:
    rng = np.random.default_rng(0)
    packed = rng.permutation(np.arange(40 * 512) % 256).astype(np.uint8).reshape(40, 512)  # every byte, often
    np.testing.assert_array_equal(_bits(unpack_bits_torch(torch.from_numpy(packed))), _bits(unpack_bits(packed)))
    levels = rng.permutation(np.arange(6 * 64 * 64 * 3) % 256).astype(np.uint8).reshape(6, 64, 64, 3)
    out = decode_hwc_torch(torch.from_numpy(levels))
    assert out.dtype == torch.float32 and out.shape == (6, 3, 64, 64) and out.is_contiguous()
    np.testing.assert_array_equal(_bits(out), _bits(decode_hwc(levels)))
    # the CUDA path (a look-up of numpy's levels) run on the CPU: the same bits
    looked_up = _lookup_levels(torch.from_numpy(levels).permute(0, 3, 1, 2))
    assert looked_up.is_contiguous()
    np.testing.assert_array_equal(_bits(looked_up), _bits(decode_hwc(levels)))


@pytest.mark.parametrize("name", ["dsprites", "shapes3d"])
def test_torch_decode_of_encoded_rows_is_the_observations(name: str, request) -> None:
    ds = request.getfixturevalue(name)
    idx = _some_training_points(ds, 300)
    rows = ds.rows_at(idx)
    assert rows.dtype == np.uint8 and rows.shape == (300, *ds.row_shape)
    np.testing.assert_array_equal(rows, ds.encode_rows(ds.index_to_factors(idx)))
    decoded = ds.decode_rows_torch(torch.from_numpy(rows))
    np.testing.assert_array_equal(_bits(decoded), _bits(ds.decode_rows(rows)))
    np.testing.assert_array_equal(_bits(decoded), _bits(ds.observations_at(idx)))


def _all_modes_agree(ds, idx: np.ndarray, S: int = 3, B: int = 16) -> dict[str, TrainData]:
    positions = torch.from_numpy(np.random.default_rng(2).integers(0, idx.size, size=(S, B)))
    data = {mode: TrainData(ds, idx, CPU, mode=mode) for mode in ("device", "host", "float32")}
    out = {mode: d.batch(positions) for mode, d in data.items()}
    want = torch.from_numpy(ds.observations_at(idx[positions.numpy().reshape(-1)])).view(S, B, *ds.observation_shape)
    for mode, x in out.items():
        assert x.dtype == torch.float32 and x.shape == (S, B, *ds.observation_shape), mode
        assert torch.equal(x.view(torch.int32), want.view(torch.int32)), mode
    return data


@pytest.mark.parametrize("name", ["dsprites", "shapes3d"])
def test_train_data_batches_are_identical_in_every_mode(name: str, request) -> None:
    ds = request.getfixturevalue(name)
    idx = _some_training_points(ds, 400)
    data = _all_modes_agree(ds, idx)
    assert data["device"].rows.rows.dtype == torch.uint8  # compact: bits / uint8, not float32
    assert data["device"].device_bytes == 400 * compact_form(ds).row_bytes()
    assert data["float32"].device_bytes == 400 * 4 * int(np.prod(ds.observation_shape))
    assert data["host"].device_bytes == 0 and not data["host"].on_device


def test_the_official_files_stored_rows_go_compact_too(dsprites, tmp_path: Path) -> None:
    idx = _some_training_points(dsprites, 200)
    images = np.lib.format.open_memmap(tmp_path / "rows.npy", mode="w+", dtype=np.uint8, shape=(200, 512))
    images[:] = dsprites.rows_at(idx)
    images.flush()
    ro = np.load(tmp_path / "rows.npy", mmap_mode="r")
    stored = StoredGridDataset("dsprites", dsprites.factor_names, list(dsprites.factor_sizes), dsprites.factor_values,
                               (1, 64, 64), ro, unpack_bits, dsprites.index_to_factors(idx), 0, "test file")
    form = compact_form(stored)
    assert form.decode is unpack_bits_torch and form.row_dtype == np.uint8 and form.key is not None
    _all_modes_agree(stored, np.arange(150, dtype=np.int64))


def test_synthetic_sets_stay_float32_as_they_are() -> None:
    ds = load("synth_nonlin", n=500)
    form = compact_form(ds)
    assert form.decode is None and form.row_dtype == np.float32 and form.row_shape == (6,)
    data = _all_modes_agree(ds, ds.split_indices("train"))
    assert data["device"].rows.rows.dtype == torch.float32


def test_mode_follows_the_compact_bytes_and_the_budget(dsprites, shapes3d) -> None:
    idx = _some_training_points(dsprites, 64)
    need = compact_form(dsprites).nbytes(idx.size)
    assert need == 64 * 512
    # compact=True: the rule a CUDA trial follows by default
    assert TrainData(dsprites, idx, CPU, budget=need, compact=True).mode == "device"  # compact bytes, not 4·4096
    assert TrainData(dsprites, idx[:32], CPU, budget=need - 1, compact=True).mode == "device"
    assert TrainData(dsprites, idx[:40], CPU, budget=0, compact=True).mode == "host"
    # a CPU trial by default: decoded float32 when it fits, else the node cache's shared pages
    assert TrainData(dsprites, idx, CPU, budget=need).mode == "host"
    assert TrainData(dsprites, idx, CPU, budget=64 * 4096 * 4).mode == "float32"
    assert TrainData(load("synth_lin", n=300), np.arange(240), CPU).mode == "float32"  # default CPU budget
    # the full training splits against the CPU budget: dSprites' bits fit, Shapes3D's uint8 does not
    n_dsprites, n_shapes3d = dsprites.split_indices("train").size, shapes3d.split_indices("train").size
    assert (n_dsprites, n_shapes3d) == (589_824, 384_000)
    assert compact_form(dsprites).nbytes(n_dsprites) == 301_989_888 <= DEVICE_DATA_BYTES
    assert compact_form(shapes3d).nbytes(n_shapes3d) == 4_718_592_000 > DEVICE_DATA_BYTES
    with pytest.raises(ValueError, match="mode"):
        TrainData(dsprites, idx, CPU, mode="gpu")


def test_one_copy_per_process_for_the_same_rows(dsprites) -> None:
    idx = _some_training_points(dsprites, 128)
    a = TrainData(dsprites, idx, CPU, mode="device")
    b = TrainData(load("dsprites"), idx, CPU, budget=0, compact=True)  # another trial's dataset: same rows, no copy
    assert b.mode == "device" and b.rows is a.rows
    c = TrainData(dsprites, idx[:64], CPU, mode="device")
    assert c.rows is not a.rows
