"""Shapes3D: a procedural 64×64 RGB room on the exact official grid, or the official `3dshapes.h5`.

Grid (official order, orientation fastest): floor hue 10 × wall hue 10 × object hue 10 (0.0 … 0.9) ×
scale 8 (linspace(0.75, 1.25, 8)) × shape 4 (cube, cylinder, sphere, capsule) × orientation 15
(linspace(−30°, 30°, 15)) = 480,000 images.

The scene is ray-cast once per process into small layers, with 2×2 supersampling: a floor (plane y = 0)
and two walls meeting in a corner behind the object, lit by a fixed directional light, seen by a camera
orbiting the object at azimuth = orientation (so the corner, the floor/wall edges and the object's
silhouette and shading all move with it). The object (cube, vertical cylinder, sphere, or a capsule
lying along x) sits on the floor at the origin, its size × scale. Layers per orientation: floor and wall
coverage × shading; per (scale, shape, orientation): object coverage α and coverage × shading (16 MB). An
image is then exact arithmetic on those layers with the three hue colours (HSV, s = 0.8, v = 1):

    image = (floor · rgb(floor_hue) + wall · rgb(wall_hue)) · (1 − α) + object · rgb(object_hue)

quantised to 8 bits like the official images (values k/255 in [0, 1]). Images are composed on demand
until the process has rendered one grid's worth, then read from a 5.9 GB uint8 node cache (rendered.py).
"""

from __future__ import annotations

import colorsys
import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .base import DataError, GridDataset
from .cache import cached_array, file_identity, fill_in_chunks
from .files import check_file
from .rendered import RenderedGridDataset
from .stored import StoredGridDataset

if TYPE_CHECKING:
    import torch

GENERATOR_VERSION = 1
FACTOR_NAMES = ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"]
FACTOR_SIZES = [10, 10, 10, 8, 4, 15]
FACTOR_VALUES = [np.linspace(0.0, 0.9, 10), np.linspace(0.0, 0.9, 10), np.linspace(0.0, 0.9, 10),
                 np.linspace(0.75, 1.25, 8), np.arange(4.0), np.linspace(-30.0, 30.0, 15)]
SHAPES = ("cube", "cylinder", "sphere", "capsule")
IMAGE = 64
SUPERSAMPLE = 2
LIGHT = np.array([0.45, 1.0, -0.6]) / np.linalg.norm([0.45, 1.0, -0.6])  # towards the light
CAMERA_RADIUS, CAMERA_HEIGHT, TARGET_HEIGHT, FOV_DEG = 2.6, 1.35, 0.45, 50.0
CORNER = 3.0  # walls: x + z = CORNER and −x + z = CORNER (the corner behind the object)


def hue_colours(saturation: float = 0.8) -> np.ndarray:
    """(10, 3) RGB of the ten hues 0.0 … 0.9."""
    return np.array([colorsys.hsv_to_rgb(h, saturation, 1.0) for h in FACTOR_VALUES[0]])


def camera_rays(azimuth_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Camera position (3,) and unit ray directions (64·s, 64·s, 3) for one azimuth (s = supersampling)."""
    phi = np.deg2rad(azimuth_deg)
    pos = np.array([CAMERA_RADIUS * np.sin(phi), CAMERA_HEIGHT, -CAMERA_RADIUS * np.cos(phi)])
    fwd = np.array([0.0, TARGET_HEIGHT, 0.0]) - pos
    fwd /= np.linalg.norm(fwd)
    right = np.cross([0.0, 1.0, 0.0], fwd)
    right /= np.linalg.norm(right)
    up = np.cross(fwd, right)
    n = IMAGE * SUPERSAMPLE
    half = np.tan(np.deg2rad(FOV_DEG) / 2)
    s = ((np.arange(n) + 0.5) / n - 0.5) * 2 * half
    d = fwd + s[None, :, None] * right - s[:, None, None] * up
    return pos, d / np.linalg.norm(d, axis=-1, keepdims=True)


def _lambert(normal: np.ndarray, ambient: float) -> np.ndarray:
    return ambient + (1 - ambient) * np.clip(normal @ LIGHT, 0.0, None)


def _plane(p: np.ndarray, d: np.ndarray, n: np.ndarray, c: float) -> np.ndarray:
    """Ray parameter t where n·x = c (inf where behind or parallel)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (c - p @ n) / (d @ n)
    return np.where(t > 1e-9, t, np.inf)


def background_layers(azimuth_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Floor and wall layers (64, 64): coverage × shading of each surface, for one azimuth."""
    p, d = camera_rays(azimuth_deg)
    walls = [np.array([1.0, 0.0, 1.0]), np.array([-1.0, 0.0, 1.0])]
    t = np.stack([_plane(p, d, np.array([0.0, 1.0, 0.0]), 0.0)] + [_plane(p, d, w, CORNER) for w in walls])
    hit = np.argmin(t, axis=0)
    depth = np.take_along_axis(t, hit[None], 0)[0]
    falloff = np.clip(1.1 - 0.03 * depth, 0.6, 1.0)  # a little depth cue
    floor_shade = _lambert(np.array([0.0, 1.0, 0.0]), 0.5) * falloff
    wall_shade = np.where(hit == 1, _lambert(-walls[0] / np.sqrt(2), 0.5), _lambert(-walls[1] / np.sqrt(2), 0.5))
    floor = np.where(hit == 0, floor_shade, 0.0)
    wall = np.where(hit > 0, wall_shade * falloff, 0.0)
    return _downsample(floor), _downsample(wall)


def _downsample(x: np.ndarray) -> np.ndarray:
    s = SUPERSAMPLE
    return x.reshape(IMAGE, s, IMAGE, s).mean(axis=(1, 3))


def _sphere(p: np.ndarray, d: np.ndarray, c: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    oc = p - c
    b = d @ oc
    disc = b * b - (oc @ oc - r * r)
    t = np.where(disc >= 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    t = np.where(t > 1e-9, t, np.inf)
    normal = (p + np.where(np.isfinite(t), t, 0)[..., None] * d - c) / r
    return t, normal


def _box(p: np.ndarray, d: np.ndarray, c: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (c - a - p) / d, (c + a - p) / d
    tlo, thi = np.minimum(t1, t2), np.maximum(t1, t2)
    tmin, tmax = tlo.max(axis=-1), thi.min(axis=-1)
    t = np.where((tmax >= tmin) & (tmin > 1e-9), tmin, np.inf)
    axis = np.argmax(tlo, axis=-1)
    normal = np.zeros(d.shape)
    np.put_along_axis(normal, axis[..., None], -np.sign(np.take_along_axis(d, axis[..., None], -1)), -1)
    return t, normal


def _tube(p: np.ndarray, d: np.ndarray, axis: int, centre: np.ndarray, r: float,
          lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Side of a cylinder of radius r around the line through `centre` along `axis`, axis coordinate in [lo, hi]."""
    others = [k for k in range(3) if k != axis]
    o = (p - centre)[others]
    dd = d[..., others]
    a = (dd * dd).sum(-1)
    b = dd @ o
    disc = b * b - a * (o @ o - r * r)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
    x = p[axis] + np.where(np.isfinite(t), t, 0) * d[..., axis]
    t = np.where((t > 1e-9) & (x >= lo) & (x <= hi), t, np.inf)
    hit = p + np.where(np.isfinite(t), t, 0)[..., None] * d - centre
    hit[..., axis] = 0
    return t, hit / r


def _nearest(*hits: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    t = np.stack([h[0] for h in hits])
    k = np.argmin(t, axis=0)
    normals = np.stack([h[1] for h in hits])
    return np.take_along_axis(t, k[None], 0)[0], np.take_along_axis(normals, k[None, ..., None], 0)[0]


def object_hit(shape: str, scale: float, p: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameter t (inf = miss) and unit normals of the object on the floor at the origin."""
    if shape == "cube":
        a = 0.42 * scale
        return _box(p, d, np.array([0.0, a, 0.0]), a)
    if shape == "cylinder":
        r, h = 0.45 * scale, 0.85 * scale
        side = _tube(p, d, 1, np.zeros(3), r, 0.0, h)
        tc = _plane(p, d, np.array([0.0, 1.0, 0.0]), h)
        xz = p + np.where(np.isfinite(tc), tc, 0)[..., None] * d
        tc = np.where(xz[..., 0] ** 2 + xz[..., 2] ** 2 <= r * r, tc, np.inf)
        return _nearest(side, (tc, np.broadcast_to([0.0, 1.0, 0.0], d.shape)))
    if shape == "sphere":
        r = 0.5 * scale
        return _sphere(p, d, np.array([0.0, r, 0.0]), r)
    if shape == "capsule":  # lying along x
        r, half = 0.3 * scale, 0.42 * scale
        c = np.array([0.0, r, 0.0])
        return _nearest(_tube(p, d, 0, c, r, -half, half), _sphere(p, d, c + [half, 0, 0], r),
                        _sphere(p, d, c - [half, 0, 0], r))
    raise ValueError(f"unknown shape {shape!r}")


def render_layers() -> dict[str, np.ndarray]:
    """All layers of the scene, float32: floor, wall (15, 64, 64) by orientation; alpha, shaded
    (480, 64, 64) by object_index(scale, shape, orientation)."""
    n_o = len(FACTOR_VALUES[5])
    floor = np.empty((n_o, IMAGE, IMAGE))
    wall = np.empty_like(floor)
    alpha = np.empty((8, 4, n_o, IMAGE, IMAGE))
    shaded = np.empty_like(alpha)
    for o, az in enumerate(FACTOR_VALUES[5]):
        floor[o], wall[o] = background_layers(az)
        p, d = camera_rays(az)
        for i, scale in enumerate(FACTOR_VALUES[3]):
            for j, shape in enumerate(SHAPES):
                t, normal = object_hit(shape, scale, p, d)
                hit = np.isfinite(t)
                alpha[i, j, o] = _downsample(hit.astype(np.float64))
                shaded[i, j, o] = _downsample(np.where(hit, _lambert(normal, 0.35), 0.0))
    layers = {"floor": floor, "wall": wall, "alpha": alpha.reshape(-1, IMAGE, IMAGE),
              "shaded": shaded.reshape(-1, IMAGE, IMAGE)}
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in layers.items()}


def object_index(scale: np.ndarray, shape: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """Row of the object layers for class indices (scale, shape, orientation)."""
    return (scale * 4 + shape) * len(FACTOR_VALUES[5]) + orientation


_CHUNK = 64  # images composed at a time: small temporaries stay in cache and avoid page faults


def compose_255(layers: dict[str, np.ndarray], colours: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """float32 (n, 3, 64, 64) images of class indices (n, 6) in 8-bit levels: integers 0 … 255."""
    rgb = colours.astype(np.float32)
    out = np.empty((factors.shape[0], 3, IMAGE, IMAGE), dtype=np.float32)
    for a in range(0, factors.shape[0], _CHUNK):
        fh, wh, oh, sc, sh, o = factors[a:a + _CHUNK].T
        k = object_index(sc, sh, o)
        keep = 1.0 - layers["alpha"][k]
        floor, wall, obj = layers["floor"][o] * keep, layers["wall"][o] * keep, layers["shaded"][k]
        for c in range(3):
            oc = out[a:a + _CHUNK, c]
            np.multiply(floor, rgb[fh, c][:, None, None], out=oc)
            oc += wall * rgb[wh, c][:, None, None]
            oc += obj * rgb[oh, c][:, None, None]
    out *= 255.0
    out += 0.5
    return np.floor(out, out=out)


class ProceduralShapes3D(RenderedGridDataset):
    """Shapes3D composed from the scene layers on demand, or read from the node cache (see rendered.py)."""

    name = "shapes3d"
    factor_names = FACTOR_NAMES
    factor_sizes: list[int | None] = list(FACTOR_SIZES)
    factor_values = FACTOR_VALUES
    observation_shape = (3, IMAGE, IMAGE)
    source = "procedural"
    cache_key = f"shapes3d-procedural-v{GENERATOR_VERSION}"
    row_shape = (IMAGE, IMAGE, 3)  # uint8, the official layout: 5.9 GB for the grid
    build_chunk = 4096

    def __init__(self, data_seed: int = 0) -> None:
        super().__init__()
        self.data_seed = int(data_seed)
        self.colours = hue_colours()

    @functools.cached_property
    def layers(self) -> dict[str, np.ndarray]:
        """The ray-cast scene layers, computed on first use (not needed when reading the node cache)."""
        return render_layers()

    def render(self, factors: np.ndarray) -> np.ndarray:
        """uint8 (n, 3, 64, 64) images of class indices (n, 6)."""
        f = self.index_to_factors(self.factors_to_index(factors))
        return compose_255(self.layers, self.colours, f).astype(np.uint8)

    def render_observations(self, factors: np.ndarray) -> np.ndarray:
        out = compose_255(self.layers, self.colours, factors)
        out /= np.float32(255)
        return out

    def encode_rows(self, factors: np.ndarray) -> np.ndarray:
        return compose_255(self.layers, self.colours, factors).astype(np.uint8).transpose(0, 2, 3, 1)

    def decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return decode_hwc(rows)

    def decode_rows_torch(self, rows: torch.Tensor) -> torch.Tensor:
        return decode_hwc_torch(rows)


def decode_hwc(rows: np.ndarray) -> np.ndarray:
    """float32 (n, 3, 64, 64) in [0, 1] of uint8 rows (n, 64, 64, 3)."""
    return rows.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)


@functools.cache
def _levels(device: str):
    """float32 (256,) on `device`: `decode_hwc` of each uint8 level, computed by numpy."""
    import torch

    return torch.from_numpy(np.arange(256, dtype=np.float32) / np.float32(255)).to(device)


def decode_hwc_torch(rows: torch.Tensor) -> torch.Tensor:
    """`decode_hwc` on the rows' device: uint8 (n, 64, 64, 3) -> float32 (n, 3, 64, 64), the same bits.

    Every output is a function of one uint8 level. On CUDA each level is looked up in numpy's 256 decoded
    levels: PyTorch's CUDA kernel divides by a scalar as a multiplication by its reciprocal, which can differ
    from k / 255 in the last bit. On a CPU torch divides exactly like numpy (IEEE, correctly rounded; checked
    on all 256 levels by the tests) and a look-up is several times slower there, so it divides."""
    import torch

    x = rows.permute(0, 3, 1, 2)
    if rows.device.type == "cpu":
        return x.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
    return _lookup_levels(x)


def _lookup_levels(x: torch.Tensor) -> torch.Tensor:
    """float32 of uint8 levels `x` (any shape, any device): numpy's k / 255 of each, looked up."""
    import torch

    levels = _levels(str(x.device))
    return levels.index_select(0, x.reshape(-1).to(torch.int32)).view(x.shape)


# ---- the official file -------------------------------------------------------------------------------

OFFICIAL_FILE = "3dshapes.h5"


def labels_to_classes(values: np.ndarray, source: str) -> np.ndarray:
    """int64 (N, 6) class indices of the official float labels (N, 6).

    A column holding as many distinct values as the factor has classes maps by rank (the official rule);
    a column with fewer (a file holding part of the grid) maps each value to the nearest official value,
    which must lie within 1 % of the factor's range.
    """
    if values.ndim != 2 or values.shape[1] != 6:
        raise DataError(f"{source}: 'labels' has shape {values.shape}; expected (N, 6) "
                        f"({', '.join(FACTOR_NAMES)})")
    out = np.empty(values.shape, dtype=np.int64)
    for k, (name, size, official) in enumerate(zip(FACTOR_NAMES, FACTOR_SIZES, FACTOR_VALUES, strict=True)):
        col = values[:, k].astype(np.float64)
        uniq, inverse = np.unique(col, return_inverse=True)
        if uniq.size == size:
            out[:, k] = inverse
            continue
        nearest = np.abs(col[:, None] - official[None, :]).argmin(axis=1)
        tol = 0.01 * (official.max() - official.min())
        if uniq.size > size or (np.abs(official[nearest] - col) > tol).any():
            raise DataError(f"{source}: 'labels' column {k} ({name}) holds {uniq.size} distinct values "
                            f"(e.g. {uniq[:3].tolist()}); expected {size} values near {official.round(3).tolist()}")
        out[:, k] = nearest
    return out


def _open_h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e}); expected the official {OFFICIAL_FILE} "
                        "with datasets 'images' (N, 64, 64, 3) uint8 and 'labels' (N, 6)") from e


def _h5_array(f, key: str, path: Path):
    if key not in f:
        raise DataError(f"{path}: no dataset {key!r} (found: {', '.join(sorted(f.keys())) or 'none'}); expected "
                        f"the official {OFFICIAL_FILE} with 'images' and 'labels'")
    return f[key]


def _checked(f, path: Path):  # noqa: ANN001, ANN202 - an open h5py.File; (its 'images', the classes)
    """The file's 'images' dataset and the labels' classes, after checking names, shapes and dtypes."""
    images, labels = _h5_array(f, "images", path), _h5_array(f, "labels", path)
    try:
        values = labels[()]
    except OSError as e:
        raise DataError(f"{path}: 'labels' cannot be read ({e}); the file looks corrupt") from e
    classes = labels_to_classes(np.asarray(values), str(path))
    n = classes.shape[0]
    if images.shape != (n, IMAGE, IMAGE, 3) or images.dtype != np.uint8:
        raise DataError(f"{path}: 'images' has shape {images.shape} and dtype {images.dtype}; expected "
                        f"({n}, 64, 64, 3) uint8 matching 'labels'")
    return images, classes


def check_official(path: str | None) -> list[str]:
    """Problems with `path` as the official 3dshapes.h5, found without reading the images; [] when fine or when
    no path is given (procedural)."""
    if path is None:
        return []
    try:
        p = check_file(path, f"the official {OFFICIAL_FILE}")
        with _open_h5(p) as f:
            _checked(f, p)
    except DataError as e:
        return [str(e)]
    return []


def open_official(path: Path, data_seed: int = 0) -> StoredGridDataset:
    """The official `3dshapes.h5` (images converted once into the node cache as uint8 rows)."""
    with _open_h5(path) as f:
        images, classes = _checked(f, path)
        n = classes.shape[0]

        def produce(a: int, b: int) -> np.ndarray:
            try:
                return images[a:b]
            except OSError as e:
                raise DataError(f"{path}: 'images' cannot be read at rows {a}..{b} ({e}); the file looks "
                                "corrupt") from e

        key = f"shapes3d-file-{file_identity(path)}-v{GENERATOR_VERSION}"
        rows = cached_array(key, (n, IMAGE, IMAGE, 3), np.uint8, lambda out: fill_in_chunks(out, n, 8192, produce))
    return StoredGridDataset("shapes3d", FACTOR_NAMES, list(FACTOR_SIZES), FACTOR_VALUES, (3, IMAGE, IMAGE),
                             rows, decode_hwc, classes, data_seed, source=str(path))


def open_shapes3d(path: str | None = None, data_seed: int = 0) -> GridDataset:
    """Procedural Shapes3D, or the official file at `path`."""
    if path is None:
        return ProceduralShapes3D(data_seed)
    return open_official(check_file(path, f"the official {OFFICIAL_FILE}"), data_seed)
