"""dSprites: procedural 64×64 binary sprites on the exact official grid, or the official `.npz`.

Grid (official order, posY fastest): shape 3 (square, ellipse, heart; values 1, 2, 3) × scale 6
(linspace(0.5, 1, 6)) × orientation 40 (linspace(0, 2π, 40): classes 0 and 39 coincide, as in the
original) × posX 32 × posY 32 (linspace(0, 1, 32)) = 737,280 images.

Procedural rendering: each of the 720 (shape, scale, orientation) sprites is rasterised once into a
32×32 window (4×4 supersampling, a pixel is on when at least half of it is covered); the sprite's
bounding radius is 14.5·scale pixels about the window centre. Position is an integer translation of the
window by (posY, posX) pixels (posX to the right, posY downwards), so the sprite centre moves over
[16, 47] in both axes and the shape always stays within [1.5, 61.5]: the outermost row and column of
every image are empty, for every combination, and nothing is ever clipped.

Images are assembled on demand from the 720-sprite table (740 kB) until the process has rendered one
grid's worth, then read from a 377 MB bit-packed node cache (rendered.py; bench/datasets.py).
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .base import DataError, GridDataset
from .cache import cached_array, file_identity, fill_in_chunks
from .files import check_file, npz_member, open_npz, read_npy_header
from .rendered import RenderedGridDataset
from .stored import StoredGridDataset, check_classes

if TYPE_CHECKING:
    import torch

GENERATOR_VERSION = 1
FACTOR_NAMES = ["shape", "scale", "orientation", "posX", "posY"]
FACTOR_SIZES = [3, 6, 40, 32, 32]
FACTOR_VALUES = [np.array([1.0, 2.0, 3.0]), np.linspace(0.5, 1.0, 6), np.linspace(0.0, 2 * np.pi, 40),
                 np.linspace(0.0, 1.0, 32), np.linspace(0.0, 1.0, 32)]
SHAPES = ("square", "ellipse", "heart")
IMAGE = 64
WINDOW = 32  # sprite window; its centre (16, 16) is a pixel corner
RADIUS = 14.5  # bounding radius in pixels at scale 1
SUPERSAMPLE = 4
OFFICIAL_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"


def inside_unit_shape(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask: (u, v) (v up) inside the shape, each scaled to fit the unit disc about the origin."""
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.7  # circumradius 0.99
    if shape == "ellipse":
        return (u / 0.98) ** 2 + (v / 0.5) ** 2 <= 1.0
    if shape == "heart":  # (x²+y²−1)³ − x²y³ ≤ 0, rescaled so its farthest point is at radius 1
        x, y = 1.25 * u, 1.25 * v + 0.25
        return (x * x + y * y - 1.0) ** 3 - x * x * y ** 3 <= 0.0
    raise ValueError(f"unknown shape {shape!r}")


def render_sprites() -> np.ndarray:
    """uint8 (3, 6, 40, 32, 32): every (shape, scale, orientation) sprite in its 32×32 window, 0/1."""
    s = SUPERSAMPLE
    sub = (np.arange(WINDOW * s) + 0.5) / s - WINDOW / 2  # subsample centres relative to the window centre
    dx = sub[None, :]
    dy = -sub[:, None]  # rows go down, v goes up
    out = np.empty((3, 6, 40, WINDOW, WINDOW), dtype=np.uint8)
    for i, shape in enumerate(SHAPES):
        for j, scale in enumerate(FACTOR_VALUES[1]):
            r = RADIUS * scale
            for k, theta in enumerate(FACTOR_VALUES[2]):
                c, sn = np.cos(theta), np.sin(theta)
                u = (c * dx + sn * dy) / r  # rotate the sample points by −θ: the sprite turns by +θ
                v = (-sn * dx + c * dy) / r
                cover = inside_unit_shape(shape, u, v).reshape(WINDOW, s, WINDOW, s).mean(axis=(1, 3))
                out[i, j, k] = cover >= 0.5
    return out


@functools.cache
def _sprite_table() -> np.ndarray:
    """`render_sprites()`, once per process (read-only): every dSprites variant shares it."""
    table = render_sprites()
    table.flags.writeable = False
    return table


def place_sprites(sprites: np.ndarray, factors: np.ndarray, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """(n, 64, 64) images of class indices `factors` (n, 5): the sprite window shifted by (posY, posX)."""
    n = factors.shape[0]
    out = np.zeros((n, IMAGE, IMAGE), dtype=dtype)
    shape, scale, orient, px, py = factors.T
    win = sprites[shape, scale, orient]  # (n, 32, 32)
    ar = np.arange(WINDOW)
    rows = py[:, None, None] + ar[None, :, None]
    cols = px[:, None, None] + ar[None, None, :]
    out[np.arange(n)[:, None, None], rows, cols] = win
    return out


class ProceduralDSprites(RenderedGridDataset):
    """dSprites assembled from the 720-sprite table on demand, or read from the node cache (see rendered.py)."""

    name = "dsprites"
    factor_names = FACTOR_NAMES
    factor_sizes: list[int | None] = list(FACTOR_SIZES)
    factor_values = FACTOR_VALUES
    observation_shape = (1, IMAGE, IMAGE)
    source = "procedural"
    cache_key = f"dsprites-procedural-v{GENERATOR_VERSION}"
    row_shape = (IMAGE * IMAGE // 8,)  # bit-packed: 512 bytes per image, 377 MB for the grid
    build_chunk = 16384

    def __init__(self, data_seed: int = 0) -> None:
        super().__init__()
        self.data_seed = int(data_seed)

    @property
    def sprites(self) -> np.ndarray:
        """The 720-sprite table, rendered on first use (not needed when reading the node cache)."""
        return _sprite_table()

    def render(self, factors: np.ndarray) -> np.ndarray:
        """uint8 (n, 64, 64) 0/1 images of class indices (n, 5)."""
        return place_sprites(self.sprites, self.index_to_factors(self.factors_to_index(factors)))

    def render_observations(self, factors: np.ndarray) -> np.ndarray:
        return place_sprites(self.sprites, factors, np.float32)[:, None]

    def encode_rows(self, factors: np.ndarray) -> np.ndarray:
        return np.packbits(place_sprites(self.sprites, factors).reshape(len(factors), -1), axis=1)

    def decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return unpack_bits(rows)

    def decode_rows_torch(self, rows: torch.Tensor) -> torch.Tensor:
        return unpack_bits_torch(rows)


def unpack_bits(rows: np.ndarray) -> np.ndarray:
    """float32 (n, 1, 64, 64) images of bit-packed rows (n, 512)."""
    return np.unpackbits(rows, axis=1).reshape(-1, 1, IMAGE, IMAGE).astype(np.float32)


@functools.cache
def _bit_table(device: str):
    """float32 (256, 8) on `device`: `unpack_bits` of each byte value, computed by numpy."""
    import torch

    table = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32)
    return torch.from_numpy(table).to(device)


def unpack_bits_torch(rows: torch.Tensor) -> torch.Tensor:
    """`unpack_bits` on the rows' device: uint8 (n, 512) -> float32 (n, 1, 64, 64), the same bits.

    Each byte looks up its 8 pixels in numpy's own unpacking of the 256 byte values (most significant bit
    first); on a CPU the look-up is also about 3x faster than shifts and masks."""
    import torch

    table = _bit_table(str(rows.device))
    return table.index_select(0, rows.reshape(-1).to(torch.int32)).reshape(-1, 1, IMAGE, IMAGE)


# ---- the official file -------------------------------------------------------------------------------


_EXPECTED = f"the official {OFFICIAL_FILE} with keys imgs, latents_classes, latents_values, metadata"


def read_official_labels(path: Path) -> np.ndarray:
    """int64 (N, 5) classes (shape, scale, orientation, posX, posY) from the file's `latents_classes`."""
    with open_npz(path, _EXPECTED) as zf, zf.open(npz_member(zf, "latents_classes", path, _EXPECTED)) as fh:
        shape, dtype, _ = read_npy_header(fh, path, "latents_classes")
        if len(shape) != 2 or shape[1] != 6 or dtype.kind not in "iuf":
            raise DataError(f"{path}: 'latents_classes' has shape {shape} and dtype {dtype}; expected (N, 6) "
                            "integers (color, shape, scale, orientation, posX, posY)")
        raw = np.frombuffer(fh.read(), dtype=dtype)
    if raw.size != shape[0] * 6:
        raise DataError(f"{path}: 'latents_classes' is truncated ({raw.size} of {shape[0] * 6} values)")
    return raw.reshape(shape)[:, 1:].astype(np.int64)


def _pack_official_images(path: Path, n: int, out: np.ndarray) -> None:
    """Stream the file's `imgs` (N, 64, 64) into bit-packed rows, one chunk at a time."""
    with open_npz(path, _EXPECTED) as zf, zf.open(npz_member(zf, "imgs", path, _EXPECTED)) as fh:
        shape, dtype, _ = read_npy_header(fh, path, "imgs")
        if shape != (n, IMAGE, IMAGE):
            raise DataError(f"{path}: 'imgs' has shape {shape}; expected ({n}, 64, 64) matching latents_classes")
        row = IMAGE * IMAGE * dtype.itemsize

        def produce(a: int, b: int) -> np.ndarray:
            buf = fh.read(row * (b - a))
            if len(buf) != row * (b - a):
                raise DataError(f"{path}: 'imgs' is truncated at image {a + len(buf) // row} of {n}")
            imgs = np.frombuffer(buf, dtype=dtype).reshape(b - a, -1)
            if imgs.size and (imgs.max() > 1 or imgs.min() < 0):
                raise DataError(f"{path}: 'imgs' holds values outside {{0, 1}}; expected binary images")
            return np.packbits(imgs != 0, axis=1)

        try:
            fill_in_chunks(out, n, 16384, produce)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DataError(f"{path}: 'imgs' cannot be read ({e}); the file looks corrupt") from e


def open_official(path: Path, data_seed: int = 0) -> StoredGridDataset:
    """The official dSprites `.npz` (converted once into the node cache, bit-packed)."""
    labels = read_official_labels(path)
    check_classes(labels, FACTOR_NAMES, FACTOR_SIZES, str(path))  # before anything is cached
    n = labels.shape[0]
    key = f"dsprites-file-{file_identity(path)}-v{GENERATOR_VERSION}"
    images = cached_array(key, (n, IMAGE * IMAGE // 8), np.uint8, lambda out: _pack_official_images(path, n, out))
    return StoredGridDataset("dsprites", FACTOR_NAMES, list(FACTOR_SIZES), FACTOR_VALUES, (1, IMAGE, IMAGE),
                             images, unpack_bits, labels, data_seed, source=str(path))


def check_official(path: str | None) -> list[str]:
    """Problems with `path` as the official dSprites file, found without reading the images (their array's name,
    shape and byte size, the labels' classes); [] when fine or when no path is given (procedural)."""
    if path is None:
        return []
    try:
        p = check_file(path, f"the official {OFFICIAL_FILE}")
        labels = read_official_labels(p)
        check_classes(labels, FACTOR_NAMES, FACTOR_SIZES, str(p))
        with open_npz(p, _EXPECTED) as zf:
            info = npz_member(zf, "imgs", p, _EXPECTED)
            with zf.open(info) as fh:
                shape, dtype, offset = read_npy_header(fh, p, "imgs")
        if shape != (labels.shape[0], IMAGE, IMAGE):
            raise DataError(f"{p}: 'imgs' has shape {shape}; expected ({labels.shape[0]}, 64, 64) matching "
                            "latents_classes")
        if info.file_size != offset + int(np.prod(shape)) * dtype.itemsize:
            raise DataError(f"{p}: 'imgs' holds {info.file_size - offset} bytes of image data; expected "
                            f"{int(np.prod(shape)) * dtype.itemsize} (a truncated or altered file)")
    except DataError as e:
        return [str(e)]
    return []


def open_dsprites(path: str | None = None, data_seed: int = 0) -> GridDataset:
    """Procedural dSprites, or the official file at `path`."""
    if path is None:
        return ProceduralDSprites(data_seed)
    return open_official(check_file(path, f"the official {OFFICIAL_FILE}"), data_seed)
