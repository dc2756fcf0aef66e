"""A dataset's training points on the training device in compact form, decoded per step on the device.

Each dataset has one compact form (`compact_form`): the rows it stores, in their own dtype, and a torch
decode that gives `observations_at`'s float32 bit for bit on any device:

| dataset | compact row | decode on the device |
| --- | --- | --- |
| dSprites (procedural or official) | 512 bytes bit-packed (the node cache's rows) | shifts and masks, MSB first |
| Shapes3D, color/noisy/scream-dSprites, MPI3D, Cars3D | uint8 (64, 64, 3) (the cache's rows) | k/255, looked up |
| SmallNORB | uint8 (64, 64, 1) (the node cache's rows) | the same |
| synth_lin, synth_nonlin, MNIST | their float32 observations, as they are | none |

Bytes per training set: see `workers.train.TrainData`.

`DeviceRows` holds a training set's rows as one tensor on the device (copied there in chunks, so the host
never holds more than a chunk beyond the node cache's shared pages) and gathers and decodes each step's
S×B rows there. One copy per process: `device_rows` hands out the copy already resident for the same
rows on the same device (for the rendered and stored grids, whose rows are named by their cache entry)
for as long as someone holds it.
"""

from __future__ import annotations

import hashlib
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .base import Dataset, as_indices
from .dsprites import unpack_bits, unpack_bits_torch
from .rendered import RenderedGridDataset
from .shapes3d import decode_hwc, decode_hwc_torch
from .stored import StoredGridDataset

if TYPE_CHECKING:
    import torch

COPY_CHUNK_BYTES = 64 * 2**20  # host -> device copy granularity


@dataclass(frozen=True)
class CompactForm:
    """How a dataset's stored points travel to and live on the device."""

    rows: Callable[[np.ndarray], np.ndarray]  # host rows (n, *row_shape) of stored-point indices
    row_shape: tuple[int, ...]
    row_dtype: np.dtype
    decode: Callable[[torch.Tensor], torch.Tensor] | None  # device rows -> float32 observations; None = as is
    key: tuple | None = None  # names the rows' content (for sharing one copy per process); None = not shared
    prepare: Callable[[int], None] | None = None  # called once with the number of rows about to be read

    def row_bytes(self) -> int:
        return math.prod(self.row_shape) * self.row_dtype.itemsize

    def nbytes(self, n: int) -> int:
        return int(n) * self.row_bytes()


def float32_form(dataset: Dataset) -> CompactForm:
    """The observations themselves (float32): synthetic sets, MNIST, and the float32 baseline of any set."""
    return CompactForm(dataset.observations_at, tuple(dataset.observation_shape), np.dtype(np.float32), None)


def _stored_decoders() -> dict[Callable, Callable]:
    return {unpack_bits: unpack_bits_torch, decode_hwc: decode_hwc_torch}


def compact_form(dataset: Dataset) -> CompactForm:
    """The dataset's compact on-device form (see the module's table); float32 observations for the rest."""
    if isinstance(dataset, RenderedGridDataset):
        return CompactForm(dataset.rows_at, tuple(dataset.row_shape), np.dtype(dataset.row_dtype),
                           dataset.decode_rows_torch, ("rendered", dataset.cache_key), dataset.prepare_rows)
    if isinstance(dataset, StoredGridDataset):  # the official files, converted into the node cache
        images, decode = dataset._images, _stored_decoders().get(dataset._decode)
        if decode is not None:
            entry = getattr(images, "filename", None)  # the cache entry, named by the file's identity
            return CompactForm(lambda idx: images[as_indices(idx, len(dataset))], tuple(images.shape[1:]),
                               np.dtype(images.dtype), decode, None if entry is None else ("stored", str(entry)))
    return float32_form(dataset)


def device_budget(device: torch.device, gpu_fraction: float, cpu_bytes: int, share: float) -> int:
    """Bytes a trial may spend on its training set on `device`.

    CPU: `cpu_bytes`. CUDA: `share` of what this process can still allocate there: the device's free memory,
    capped by its per-process limit (total × the trial's GPU fraction) less what this process already holds.
    """
    import torch

    if device.type != "cuda":
        return int(cpu_bytes)
    free, total = torch.cuda.mem_get_info(device)
    frac = gpu_fraction if 0 < gpu_fraction < 1 else 1.0
    allowed = total * frac - torch.cuda.memory_reserved(device)
    return int(max(0.0, min(float(free), allowed)) * share)


class DeviceRows:
    """Rows (n, *row_shape) of a training set as one tensor on the device, gathered and decoded per step."""

    def __init__(self, form: CompactForm, indices: np.ndarray, device: torch.device) -> None:
        import torch

        self.form, self.device, self.n = form, device, int(indices.size)
        if form.prepare is not None:
            form.prepare(self.n)
        dtype = torch.from_numpy(np.zeros(0, dtype=form.row_dtype)).dtype
        self.rows = torch.empty((self.n, *form.row_shape), dtype=dtype, device=device)
        step = max(1, COPY_CHUNK_BYTES // max(1, form.row_bytes()))
        for a in range(0, self.n, step):
            chunk = np.ascontiguousarray(form.rows(indices[a:a + step]), dtype=form.row_dtype)
            self.rows[a:a + chunk.shape[0]].copy_(torch.from_numpy(chunk))

    @property
    def nbytes(self) -> int:
        return self.rows.numel() * self.rows.element_size()

    def gather(self, positions: torch.Tensor) -> torch.Tensor:
        """positions (...) int64 in [0, n) on the device -> float32 observations (..., *obs)."""
        rows = self.rows[positions.reshape(-1)]
        x = rows if self.form.decode is None else self.form.decode(rows)
        return x.reshape(*positions.shape, *x.shape[1:])


_RESIDENT: weakref.WeakValueDictionary[tuple, DeviceRows] = weakref.WeakValueDictionary()


def _resident_key(form: CompactForm, indices: np.ndarray, device: torch.device) -> tuple | None:
    if form.key is None:
        return None
    digest = hashlib.sha1(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()
    return (*form.key, str(device), digest)


def resident(form: CompactForm, indices: np.ndarray, device: torch.device) -> DeviceRows | None:
    """The copy of these rows this process already holds on `device`, if any."""
    key = _resident_key(form, indices, device)
    return None if key is None else _RESIDENT.get(key)


def device_rows(form: CompactForm, indices: np.ndarray, device: torch.device) -> DeviceRows:
    """These rows on `device`: the process's resident copy, or a new one (then resident while held)."""
    found = resident(form, indices, device)
    if found is not None:
        return found
    rows = DeviceRows(form, indices, device)
    key = _resident_key(form, indices, device)
    if key is not None:
        _RESIDENT[key] = rows
    return rows
